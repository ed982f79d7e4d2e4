"""`python -m server [serve|migrate|seed] [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from server import logs
from server.book import restaurant
from server.book.database import DatabaseUnreachable, open_database
from server.book.reservations import seed
from server.serving import serve
from server.settings import Settings

log = logging.getLogger("server")


async def _migrate(settings: Settings) -> None:
    database = await open_database(settings)
    await database.close()
    print("migrations applied")


async def _seed(settings: Settings) -> None:
    database = await open_database(settings)
    try:
        today = await restaurant.today(database.pool, settings)
        for result in await seed(database.pool, today):
            r = result.reservation
            print(
                f"{result.outcome:9} {r.name:14} {r.reservation_date} {r.reservation_time:%H:%M}"
                f" party of {r.party_size}  #{r.confirmation_number}"
            )
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "seed"])
    parser.add_argument("--host", help="bind address (env HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one port)")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "seed":
            asyncio.run(_seed(settings))
        else:
            serve(settings, args.workers)
    except DatabaseUnreachable as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
