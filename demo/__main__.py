"""``python -m demo`` (``make demo``): a scripted call against a running server; see `demo.page`."""

from demo.page import main

raise SystemExit(main())
