"""``python -m offline_model``: run the offline model until SIGINT/SIGTERM.

Prints ``offline model listening on http://HOST:PORT/v1`` first, once the socket is bound (with
``--port 0`` it names the port actually chosen, which scripts and tests parse), then the URL of
its SIP control plane (give it to the SDK as ``base_url``, the first as ``websocket_base_url``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from .server import OfflineModel


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m offline_model", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--echo", action="store_true", help="echo appended audio back (benchmarks)")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument(
        "--timezone", default=None, help="default: $RESTAURANT_TIMEZONE or Asia/Singapore"
    )
    parser.add_argument(
        "--pace", type=float, default=0.025, help="seconds between 100 ms audio chunks"
    )
    parser.add_argument(
        "--rate-limits", action="store_true", help="send rate_limits.updated after responses"
    )
    parser.add_argument(
        "--no-listen", action="store_true", help="no speech recognition (spoken turns: 'type it')"
    )
    parser.add_argument(
        "--asr-workers", type=int, default=None, help="recogniser processes (default: cores / 2)"
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    model = OfflineModel(
        args.host,
        args.port,
        api_key=args.api_key,
        echo=args.echo,
        timezone=args.timezone,
        pace=args.pace,
        rate_limits=args.rate_limits,
        listen=not args.no_listen,
        asr_workers=args.asr_workers,
    )
    await model.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not available on Windows
            loop.add_signal_handler(signum, stop.set)
    print(f"offline model listening on {model.url}", flush=True)
    print(f"SIP control plane on {model.sip.url}", flush=True)  # accept/reject/refer/hangup
    try:
        await stop.wait()
    finally:
        await model.close()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvloop  # installed with uvicorn[standard]; the relay runs on it too
    except ImportError:  # pragma: no cover
        run = asyncio.run
    else:
        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(_arguments(argv)))


if __name__ == "__main__":
    main()
