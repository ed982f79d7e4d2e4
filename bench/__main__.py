"""`python -m bench [all|relay|phone|store|tools|integrity] [--calls 1,10,50] [--seconds 10] ...`.

`all` (the default) runs every benchmark, one after another: store (queries and REST), relay
(audio round trip, CPU and memory per call), phone (Twilio media streams against the browser
path, time to the greeting), tools (function-call round trip), integrity (two server processes
booking at once: nothing lost, nothing doubled). `--calls`, `--seconds` and `--codec` shape the
relay run; `--tool-calls` the tools run; `--phone-calls` and `--greetings` the phone run (its
window is `--seconds`). Never part of `make test`;
`make bench BENCH_ARGS="relay --calls 1,10 --seconds 5"` for a quick look.
"""

import argparse

from bench import integrity, phone, relay, store, tools_bench


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "suite",
        nargs="?",
        default="all",
        choices=["all", "relay", "phone", "store", "tools", "integrity"],
    )
    relay.add_arguments(parser)
    parser.add_argument(
        "--tool-calls", type=relay.parse_calls, default=list(tools_bench.DEFAULT_CALLS)
    )
    parser.add_argument("--phone-calls", type=relay.parse_calls, default=list(phone.DEFAULT_CALLS))
    parser.add_argument("--greetings", type=int, default=phone.DEFAULT_GREETINGS)
    parser.add_argument("--no-audio", action="store_true", help="tools: callers send no audio")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be 1..300")
    if args.suite in ("all", "store"):
        store.main()
    if args.suite in ("all", "relay"):
        relay.run(args.calls, args.seconds, relay.codecs_of(args.codec))
    if args.suite in ("all", "phone"):
        phone.run(args.phone_calls, args.seconds, args.greetings)
    if args.suite in ("all", "tools"):
        tools_bench.run(args.tool_calls, audio=not args.no_audio)
    if args.suite in ("all", "integrity"):
        integrity.main()


if __name__ == "__main__":
    main()
