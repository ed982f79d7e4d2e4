"""`python -m demo`: the command line of the demo callers.

    python -m demo [--url ws://127.0.0.1:8000/v1/realtime] [--name NAME]
                   [--phone PHONE] [--wav FILE] [--timeout 30]     # the page's protocol
    python -m demo --phone [--url URL] [--wav FILE]                # a caller over Twilio's protocol
    python -m demo --sip [--name NAME] [--phone PHONE]             # a SIP call, see demo/sip.py

``--phone`` alone (no number after it) calls as a phone over Twilio's protocol instead:
``demo.phone``. ``--sip`` starts a server in this process (``demo.sip``), so it is imported only
when asked.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from demo.page import Options, run_demo
from demo.steps import DEFAULT_NAME, DEFAULT_TIMEOUT_S, DEFAULT_URL, random_sg_mobile

PHONE_LINE = "<phone line>"  # `--phone` with no number: the Twilio caller of demo.phone


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run a scripted call (book a table, then look it up) against a running "
        "server. Exits 0 when the booking is confirmed and found again.",
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"relay endpoint (default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--name", default=DEFAULT_NAME, help=f"caller name (default {DEFAULT_NAME})"
    )
    parser.add_argument(
        "--phone",
        nargs="?",
        const=PHONE_LINE,
        default="",
        help="caller phone (default: a random +65 9xxx xxxx mobile); alone: call over Twilio's "
        "media-stream protocol (webhook, greeting, barge-in, keypad, hang-up)",
    )
    parser.add_argument(
        "--wav", type=Path, help="a 16-bit mono WAV to stream first as the microphone"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for each step (default %(default)s)",
    )
    parser.add_argument(
        "--sip",
        action="store_true",
        help="a phone call over SIP instead, with the offline model playing OpenAI and the "
        "carrier and the server started in this process (see demo/sip.py)",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return Options(args.url, args.name, args.phone, args.wav, args.timeout, args.sip)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a C-locale console must not crash on "✓"
            stream.reconfigure(errors="replace")
    if options.phone == PHONE_LINE:
        from demo import phone as phone_demo

        return phone_demo.main(phone_demo.options_from(options.url, options.wav, options.timeout))

    def out(line: str) -> None:
        print(line, flush=True)

    def err(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if options.sip:
            from demo.sip import run_sip_demo  # starts a server: only when asked

            phone = options.phone or random_sg_mobile()
            return asyncio.run(run_sip_demo(options.name, phone, options.timeout, out, err))
        return asyncio.run(run_demo(options, out, err))
    except KeyboardInterrupt:
        err("demo interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
