"""Phone benchmark: Twilio media streams against the browser path, in one run on one server.

`python -m bench phone [--calls 50,100,200] [--seconds 15]` (also part of `python -m bench all`)
writes bench/results/phone-latest.json. Processes as in `bench.relay` (the echo model, the byte
proxy, our server with `TWILIO_AUTH_TOKEN` unset and the silence prompt pushed out of the run,
each load generator its own process). For each N, back to back on the same server and echo model:

* `phone`: N calls as Twilio (`bench.loadgen --twilio`: `connected` + `start`, a 160-byte μ-law
  `media` every 20 ms, every `mark` echoed), to `/twilio/media-stream`;
* `browser`: N calls to `/v1/realtime` with 160-byte frames (`--codec g711`): the page's path,
  same audio bytes per second;
* `direct`: the same g711 load straight to the echo model (what the machine costs with no
  server at all: "added" latency is a path's percentile minus this one's);
* `floor`: the same load through `bench.byteproxy` (a uvloop proxy copying bytes unparsed: the
  least CPU a Python hop can cost per message here);
* `phone-60ms`: the phone load with 60 ms (480-byte) frames both ways, the stand-in for
  coalescing the model's audio into larger Twilio media messages (see "Coalescing" below).

Reported per run: round trip p50/p99/max (send → matching echo back at the client), frames
lost, the server's CPU per call-second (CPU seconds over the steady window / (N × window)),
messages per call-second each way, and CPU µs per message. Ratios within one run (phone ÷
browser CPU per call-second, each path's CPU per message ÷ the byte proxy's) travel between
machines; absolute figures on a 2-core machine shared with the harness do not.

Messages: on the browser path each frame is 1 message in and 1 out. On the phone path each frame
is a `media` in, a `media` + a `mark` out, and the `mark` echoed back in: 4 messages a frame.

Greeting: with the offline model (not the echo one) behind a fresh server, `--greetings` calls
(default 30) send `connected` + `start` one after another and time `start` → the first `media`
frame (the server asks the model for a greeting as soon as the stream starts); then the same
number of calls start at once.

Coalescing: the server sends each model audio delta as its own `media` + `mark`. Coalescing would
merge deltas into ~40–60 ms messages. We cannot hear Twilio here, so the bench measures what
message size costs: `phone-60ms` carries the same audio in a third of the messages. It changes
both directions (Twilio itself always sends 20 ms), so the server-side saving of coalescing only
the outbound half is about half of the difference in CPU per call-second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.common import (
    machine,
    percentile,
    print_table,
    server_dsn,
    spawn_listening,
    stop,
    throwaway_database,
    write_results,
)
from bench.phoneload import MEDIA_PREFIX, MULAW_BYTES_PER_MS, PAYLOAD_KEY, start_messages
from bench.processes import (
    MODEL_QUERY,
    run_loadgen,
    start_echo_model,
    start_server,
    wait_model_idle,
)
from bench.relay import Baseline, broke

DEFAULT_CALLS = (50, 100, 200)
DEFAULT_SECONDS = 15.0
DEFAULT_GREETINGS = 30
STREAM_PATH = "/twilio/media-stream"
GREETING_TIMEOUT_S = 10.0
GREETING_LISTEN_S = 1.0  # after the first media: the offline model's greeting arrives in ~0.3 s
# The echo model has no VAD, so to the server every bench caller is silent: after
# SILENCE_PROMPT_S it would ask "are you still there?" and later hang up, mid-window. Browser
# bench calls are SDK programs, never asked after; the phone calls are kept as long too.
QUIET_CALLERS_WELCOME = {"SILENCE_PROMPT_S": "3600", "SILENCE_HANGUP_S": "3600"}


# --- the load runs --------------------------------------------------------------------------


def row(target: str, calls: int, result: dict[str, Any]) -> dict[str, Any]:
    """One run's figures; CPU per message counts every message the server read or wrote."""
    latency = result["latency"] or {}
    window = result["window_s"]
    cpu = result["cpu_s"].get("server", result["cpu_s"].get("proxy"))
    if "messages_in" in result:  # phone: media + echoed marks in, media + marks out
        messages_in, messages_out = result["messages_in"], result["messages_out"]
    else:
        messages_in, messages_out = result["frames_in"], result["frames_out"]
    connected = max(1, result["connected"])
    out: dict[str, Any] = {
        "target": target,
        "calls": calls,
        "connected": result["connected"],
        "frame_ms": result.get("frame_ms", 20),
        "p50_ms": latency.get("p50_ms"),
        "p99_ms": latency.get("p99_ms"),
        "max_ms": latency.get("max_ms"),
        "frames_sent": result["frames_sent"],
        "frames_lost": result["frames_lost"],
        "out_of_order": result["out_of_order"],
        "msgs_in_per_call_s": round(messages_in / connected / window, 1) if window else None,
        "msgs_out_per_call_s": round(messages_out / connected / window, 1) if window else None,
        "server_cpu_pct": round(100 * cpu / window, 1) if cpu is not None and window else None,
        "cpu_ms_per_call_s": round(1000 * cpu / (calls * window), 3)
        if cpu is not None and window
        else None,
        "cpu_us_per_msg": round(cpu / (messages_in + messages_out) * 1e6, 1)
        if cpu is not None and messages_in + messages_out
        else None,
        # per relayed audio message: a 20 ms frame in plus its echo out (as on the byte proxy,
        # where every message is one); marks, and frames merged into one message, not counted
        "cpu_us_per_frame": round(cpu / (result["frames_in"] + result["frames_out"]) * 1e6, 1)
        if cpu is not None and result["frames_in"] + result["frames_out"]
        else None,
        "msgs_out_per_frame": round(messages_out / result["frames_out"], 2)
        if result["frames_out"]
        else None,
        "loadgen_cpu_pct": result["loadgen_cpu_pct"],
        "machine_busy_pct": result.get("machine_busy_pct"),
        "unmatched": result["unmatched"],
        "errors": result["errors"],
        "broke": broke(result),
    }
    return out


def compare(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios within one N: phone against browser, each against the floor and direct."""
    phone, browser, direct, floor = (rows[t] for t in ("phone", "browser", "direct", "floor"))
    out: dict[str, Any] = {"calls": phone["calls"]}

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    def minus(a: float | None, b: float | None) -> float | None:
        return round(a - b, 3) if a is not None and b is not None else None

    out["phone_added_p99_ms"] = minus(phone["p99_ms"], direct["p99_ms"])
    out["browser_added_p99_ms"] = minus(browser["p99_ms"], direct["p99_ms"])
    out["phone_vs_browser_p99"] = ratio(phone["p99_ms"], browser["p99_ms"])
    out["phone_vs_browser_cpu_per_call_s"] = ratio(
        phone["cpu_ms_per_call_s"], browser["cpu_ms_per_call_s"]
    )
    out["phone_cpu_per_msg_vs_floor"] = ratio(phone["cpu_us_per_msg"], floor["cpu_us_per_msg"])
    out["browser_cpu_per_msg_vs_floor"] = ratio(browser["cpu_us_per_msg"], floor["cpu_us_per_msg"])
    for name, r in rows.items():  # the target's figure: per relayed audio message
        if name not in ("direct", "floor", "phone-60ms"):
            out[f"{name}_cpu_per_frame_vs_floor"] = ratio(
                r["cpu_us_per_frame"], floor["cpu_us_per_frame"]
            )
            out[f"{name}_added_p99_ms"] = minus(r["p99_ms"], direct["p99_ms"])
    coalesced = rows.get("phone-60ms")
    if coalesced is not None:
        out["phone_60ms_vs_20ms_cpu_per_call_s"] = ratio(
            coalesced["cpu_ms_per_call_s"], phone["cpu_ms_per_call_s"]
        )
        out["to_twilio_msgs_per_call_s"] = {
            "20ms": phone["msgs_out_per_call_s"],
            "60ms": coalesced["msgs_out_per_call_s"],
        }
    return out


async def load_session(
    dsn: str, calls_list: list[int], seconds: float, baselines: dict[str, Baseline] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    model, model_port = await start_echo_model()
    proxy = server = None
    others: list[asyncio.subprocess.Process] = []
    try:
        proxy, proxy_port = await spawn_listening(
            "the byte proxy", "-m", "bench.byteproxy", "--upstream", str(model_port)
        )
        server, port = await start_server(dsn, model_port, extra_env=QUIET_CALLERS_WELCOME)
        urls = {
            "phone": f"ws://127.0.0.1:{port}{STREAM_PATH}",
            "browser": f"ws://127.0.0.1:{port}{MODEL_QUERY}",
            "direct": f"ws://127.0.0.1:{model_port}{MODEL_QUERY}",
            "floor": f"ws://127.0.0.1:{proxy_port}{MODEL_QUERY}",
        }
        server_pids = {"server": server.pid, "model": model.pid}
        Plan = tuple[str, str, dict[str, int], tuple[str, ...]]
        relays: list[Plan] = [  # the server's paths (ours, then each baseline's)
            ("phone", urls["phone"], server_pids, ("--twilio",)),
            ("browser", urls["browser"], server_pids, ()),
        ]
        plans: list[Plan] = [  # the references
            ("direct", urls["direct"], {"model": model.pid}, ()),
            ("floor", urls["floor"], {"proxy": proxy.pid, "model": model.pid}, ()),
        ]
        for name, (root, env) in (baselines or {}).items():  # the same paths on another tree
            other, other_port = await start_server(
                dsn, model_port, extra_env={**QUIET_CALLERS_WELCOME, **env}, root=root
            )
            others.append(other)
            pids = {"server": other.pid, "model": model.pid}
            base = f"ws://127.0.0.1:{other_port}"
            # the phone path only: `bench relay --baseline` compares the browser path
            relays.append((f"phone@{name}", f"{base}{STREAM_PATH}", pids, ("--twilio",)))
            await run_loadgen(f"{base}{STREAM_PATH}", 2, seconds=1.0, extra=("--twilio",))
        if not baselines:  # the stand-in for coalescing, from before the server coalesced
            plans.append(
                ("phone-60ms", urls["phone"], server_pids, ("--twilio", "--frame-ms", "60"))
            )
        print(f"phone bench: server pid {server.pid} on :{port}, echo model pid {model.pid}")
        await run_loadgen(urls["phone"], 2, seconds=1.0, warmup=0.2, extra=("--twilio",))
        await wait_model_idle(model_port)
        rows: list[dict[str, Any]] = []
        comparisons: list[dict[str, Any]] = []
        raw: list[dict[str, Any]] = []
        for index, calls in enumerate(calls_list):
            by_target: dict[str, dict[str, Any]] = {}
            # alternate who goes first: drift on a shared machine evens out
            for target, url, pids, extra in (relays[::-1] if index % 2 else relays) + plans:
                result = await run_loadgen(
                    url, calls, seconds=seconds, codec="g711", pids=pids, extra=extra
                )
                raw.append({"target": target, **result})
                by_target[target] = row(target, calls, result)
                await wait_model_idle(model_port)
                await asyncio.sleep(0.5)
            rows += by_target.values()
            comparison = compare(by_target)
            comparisons.append(comparison)
            phone, browser = by_target["phone"], by_target["browser"]
            print(
                f"  {calls:4d} calls: phone p50/p99 {phone['p50_ms']}/{phone['p99_ms']} ms, "
                f"browser {browser['p50_ms']}/{browser['p99_ms']} ms, lost "
                f"{phone['frames_lost']}/{phone['frames_sent']} (browser "
                f"{browser['frames_lost']}), CPU per call-second {phone['cpu_ms_per_call_s']} "
                f"vs {browser['cpu_ms_per_call_s']} ms "
                f"({comparison['phone_vs_browser_cpu_per_call_s']}x)",
                flush=True,
            )
        return rows, comparisons, raw
    finally:
        for other in others:
            await stop(other)
        if server is not None:
            await stop(server)
        if proxy is not None:
            await stop(proxy)
        await stop(model)


# --- time to the greeting -----------------------------------------------------------------------


async def first_greeting(url: str, index: int) -> dict[str, Any]:
    """`start` → the first `media` frame, and how much greeting audio came in the next second."""
    connected, start = start_messages(index)
    clock = time.perf_counter
    async with connect(url, compression=None, proxy=None, open_timeout=GREETING_TIMEOUT_S) as ws:
        await ws.send(connected)
        began = clock()
        await ws.send(start)
        first: float | None = None
        audio_bytes = 0
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(GREETING_TIMEOUT_S) as deadline:
                async for message in ws:
                    if not isinstance(message, str) or not message.startswith(MEDIA_PREFIX):
                        continue
                    if first is None:
                        first = clock() - began
                        deadline.reschedule(loop.time() + GREETING_LISTEN_S)  # the rest of it
                    at = message.index(PAYLOAD_KEY) + len(PAYLOAD_KEY)
                    payload = message[at : message.index('"', at)]
                    audio_bytes += len(payload) * 3 // 4 - payload.count("=", -2)
        except TimeoutError:
            pass  # the whole greeting has arrived (the model sends it faster than it plays)
        sid = start.split('"streamSid":"', 1)[1].split('"', 1)[0]
        stop_message = f'{{"event":"stop","streamSid":"{sid}","stop":{{}}}}'
        try:
            await ws.send(stop_message)
        except ConnectionClosed:
            pass
    return {"first_media_s": first, "audio_bytes": audio_bytes}


def _summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1),
    }


async def greeting_session(dsn: str, calls: int) -> dict[str, Any]:
    model, model_port = await spawn_listening(
        "the offline model", "-m", "offline_model", "--port", "0"
    )
    server = None
    try:
        server, port = await start_server(dsn, model_port)
        url = f"ws://127.0.0.1:{port}{STREAM_PATH}"
        await first_greeting(url, 0)  # warm-up: imports and first connections
        one_by_one = [await first_greeting(url, 1 + n) for n in range(calls)]
        at_once = await asyncio.gather(*(first_greeting(url, 1000 + n) for n in range(calls)))
        out: dict[str, Any] = {}
        for name, results in (("one_at_a_time", one_by_one), ("all_at_once", at_once)):
            times = [r["first_media_s"] for r in results if r["first_media_s"] is not None]
            out[name] = {
                **_summary(times),
                "no_greeting": sum(r["first_media_s"] is None for r in results),
                # the session is audio/pcmu both ways: 8 bytes a millisecond
                "greeting_audio_ms_p50": sorted(r["audio_bytes"] for r in results)[
                    len(results) // 2
                ]
                // MULAW_BYTES_PER_MS,
            }
        return out
    finally:
        if server is not None:
            await stop(server)
        await stop(model)


# --- entry point --------------------------------------------------------------------------------

COLUMNS = [
    "calls",
    "target",
    "frame_ms",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "frames_sent",
    "frames_lost",
    "msgs_in_per_call_s",
    "msgs_out_per_call_s",
    "server_cpu_pct",
    "cpu_ms_per_call_s",
    "cpu_us_per_msg",
    "cpu_us_per_frame",
    "msgs_out_per_frame",
    "loadgen_cpu_pct",
    "machine_busy_pct",
]


def run(
    calls_list: list[int],
    seconds: float,
    greetings: int = DEFAULT_GREETINGS,
    baselines: dict[str, Baseline] | None = None,
) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()

    async def both(admin: str) -> tuple[Any, dict[str, Any]]:
        async with throwaway_database(admin) as dsn:
            loads = await load_session(dsn, calls_list, seconds, baselines)
            greeting = await greeting_session(dsn, greetings) if greetings else {}
        return loads, greeting

    with server_dsn() as admin:
        (rows, comparisons, raw), greeting = asyncio.run(both(admin))
    lost = {r["calls"]: r["frames_lost"] for r in rows if r["target"] == "phone"}
    data = {
        "machine": at_start,
        "settings": {
            "calls": calls_list,
            "steady_window_s": seconds,
            "frame_ms": 20,
            "greeting_calls": greetings,
            "note": "phone: 4 messages per frame (media in, media + mark out, mark echoed in); "
            "browser/direct/floor: 2 (append in, delta out). phone-60ms: 60 ms frames both ways.",
        },
        "rows": rows,
        "comparisons": comparisons,
        "greeting": greeting,
        "phone_frames_lost": lost,
        "duration_s": round(time.monotonic() - started, 1),
        "runs": raw,
    }
    print_table("Phone (Twilio) against the browser path, one server, one run", rows, COLUMNS)
    print("\nComparisons (same N, same run)")
    for comparison in comparisons:
        print(f"  {comparison}")
    print(f"\nTime from start to the first greeting media (offline model): {greeting}")
    print(f"\nwritten {write_results('phone', data)}")
    return data
