"""Pure wire facts shared by every program in the repository: the Realtime API's event names
(`realtime`) and the G.711 codec (`g711`). No I/O; imports nothing of the project."""
