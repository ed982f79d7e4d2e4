"""A small keep-alive HTTP/1.1 load generator, run as its own process.

`python -m bench.httpload --url http://127.0.0.1:PORT --method POST --concurrency 50 --seconds 5`
prints one JSON line: requests, requests/s, latency percentiles, status counts. Hand-rolled on
asyncio streams because a full client (httpx) would be the bottleneck, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.common import summary_ms

_counter = itertools.count()


def post_body(worker: int) -> bytes:
    n = next(_counter)
    phone = f"+659{worker:02d}{n:05d}"
    date = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    return json.dumps(
        {
            "name": "Load Test",
            "phone_number": phone,
            "reservation_date": date,
            "reservation_time": "19:00",
            "party_size": 2,
        }
    ).encode()


async def worker(
    host: str,
    port: int,
    method: str,
    worker_id: int,
    deadline: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            if method == "POST":
                body = post_body(worker_id)
                head = (
                    f"POST /api/reservations HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                request = head.encode() + body
            else:
                request = (
                    f"GET /api/reservations/+6590000{worker_id:03d} HTTP/1.1\r\n"
                    f"Host: {host}\r\n\r\n"
                ).encode()
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[int(status_line.split()[1])] += 1
    finally:
        writer.close()


async def run(url: str, method: str, concurrency: int, seconds: float) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            worker(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                method,
                i,
                deadline,
                latencies,
                statuses,
            )
            for i in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - started
    return {
        "method": method,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "statuses": dict(statuses),
        **summary_ms(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", choices=["GET", "POST"], default="GET")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.method, args.concurrency, args.seconds))))


if __name__ == "__main__":
    main()
