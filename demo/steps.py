"""What the page demo says and to whom: the two steps, the caller's details, the endpoint.

The script is phrased so both the offline model's parser and a real model understand it: book a
table, then look it up with the same phone and name. `DemoFailed` is how every part of the demo
says, in words for the person running it, that the script cannot succeed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from protocol import realtime as p

DEFAULT_URL = "ws://127.0.0.1:8000/v1/realtime"
REALTIME_PATH = "/v1/realtime"
DEFAULT_NAME = "Ada Lovelace"
DEFAULT_TIMEOUT_S = 30.0


class DemoFailed(Exception):
    """The script cannot succeed; the message says why, in words for the person running it."""


@dataclass(frozen=True)
class Step:
    """One typed turn, the page event that proves it worked, and what to say if asked back."""

    name: str
    text: str
    expect: str
    nudge: str


def script(name: str, phone: str) -> list[Step]:
    """Booking then lookup, phrased so both the offline parser and a real model understand."""
    return [
        Step(
            "booking",
            f"I'd like to book a table for 4 tomorrow at 7pm. "
            f"My name is {name} and my phone is {phone}.",
            p.RESERVATION_CONFIRMED,
            "Yes, that's all correct, please go ahead and book it.",
        ),
        Step(
            "lookup",
            f"Can you look up my reservation? My phone is {phone} and my name is {name}.",
            p.RESERVATION_FOUND,
            "Yes, please look up that reservation now.",
        ),
    ]


def random_sg_mobile(rng: random.Random | None = None) -> str:
    """A valid Singapore mobile (+65 9xxx xxxx): repeated demos must not share a phone number,
    since each number may hold only one upcoming booking."""
    import phonenumbers  # a server dependency; imported here so the pure part needs nothing

    rng = rng or random.Random()
    for _ in range(100):  # about 90 % of 9xxxxxxx numbers are valid
        digits = f"9{rng.randrange(10**7):07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse("+65" + digits)):
            return f"+65 {digits[:4]} {digits[4:]}"
    raise RuntimeError("could not draw a valid Singapore mobile number")


def realtime_url(url: str) -> str:
    """Accept ``ws://host:port``, ``http://host:port`` or the full endpoint URL."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else REALTIME_PATH
    return urlunsplit(parts._replace(scheme=scheme, path=path))
