"""``python -m demo`` (``make demo``): a scripted call against a running server; see `demo.cli`."""

from demo.cli import main

raise SystemExit(main())
