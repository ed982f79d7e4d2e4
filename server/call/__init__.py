"""The call core: one call's model connection, tool loop, watchdogs and end, whatever carries it."""
