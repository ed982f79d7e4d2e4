"""`python -m bench [all|relay|phone|store|tools|integrity|sip|speech|records|availability|
messages] ...`.

`all` (the default) runs every benchmark, one after another: store (queries and REST), relay
(audio round trip, CPU and memory per call), phone (Twilio media streams against the browser
path, time to the greeting; `--phone-calls`, `--greetings`, its window is `--seconds`), tools
(function-call round trip), integrity (two server processes booking at once: nothing lost,
nothing doubled), sip (server CPU per call-second of SIP calls, control events only, against
relayed calls at the same N), speech (the offline model's recognition per fixture, decoding CPU
per second of speech, concurrent speaking calls; `--speech-calls`, `--speech-seconds`,
`--asr-workers`), records (server CPU per call-second at 100 calls with call records and metrics
on, against off), availability (check_availability and a booking at 1 and 100 concurrent
callers, `always` against `rules`), messages (booking latency with the guest-message outbox
against without, at 1 and 50 clients). `--calls`, `--seconds` and `--codec` shape the relay
run; `--tool-calls` the tools run. Never part of `make test`;
`make bench BENCH_ARGS="relay --calls 1,10 --seconds 5"` for a quick look.
"""

import argparse

from bench import (
    availability,
    integrity,
    messages,
    phone,
    records_bench,
    relay,
    sip,
    speech,
    store,
    tools_bench,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "suite",
        nargs="?",
        default="all",
        choices=[
            "all",
            "relay",
            "phone",
            "store",
            "tools",
            "integrity",
            "sip",
            "speech",
            "records",
            "availability",
            "messages",
        ],
    )
    relay.add_arguments(parser)
    relay.add_keep_going(parser)
    parser.add_argument(
        "--tool-calls", type=relay.parse_calls, default=list(tools_bench.DEFAULT_CALLS)
    )
    parser.add_argument("--phone-calls", type=relay.parse_calls, default=list(phone.DEFAULT_CALLS))
    parser.add_argument("--greetings", type=int, default=phone.DEFAULT_GREETINGS)
    parser.add_argument("--no-audio", action="store_true", help="tools: callers send no audio")
    parser.add_argument("--sip-calls", type=relay.parse_calls, default=list(sip.DEFAULT_CALLS))
    speech.add_arguments(parser)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be 1..300")
    if args.suite in ("all", "store"):
        store.main()
    if args.suite in ("all", "relay"):
        relay.run(
            args.calls,
            args.seconds,
            relay.codecs_of(args.codec),
            dict(args.baseline),
            args.keep_going,
        )
    if args.suite in ("all", "phone"):
        phone.run(args.phone_calls, args.seconds, args.greetings, dict(args.baseline))
    if args.suite in ("all", "tools"):
        tools_bench.run(args.tool_calls, audio=not args.no_audio)
    if args.suite in ("all", "integrity"):
        integrity.main()
    if args.suite in ("all", "sip"):
        sip.run(args.sip_calls, args.seconds, sip.TURN_EVERY_S)
    if args.suite in ("all", "speech"):
        speech.run(
            args.speech_calls,
            args.speech_seconds,
            args.speech_repeat,
            args.asr_workers,
            args.reply_budget_s,
            args,
        )
    if args.suite in ("all", "records"):
        records_bench.run(100, args.seconds, 3)
    if args.suite in ("all", "availability"):
        availability.main()
    if args.suite in ("all", "messages"):
        messages.main()


if __name__ == "__main__":
    main()
