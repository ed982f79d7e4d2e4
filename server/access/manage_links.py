"""The guest's manage link, `/r/<token>`: who may see and change one booking without logging in.

A token is the booking's row id and an HMAC of it and its confirmation number, keyed by
`MANAGE_LINK_SECRET` (or, unset, a random key the processes share through the database). It is
unguessable (128 bits of MAC), names no phone number, and works in every process. A booking whose
row was reused for a new booking (a new confirmation number) no longer matches its old links;
one in the past is refused by the page ("expired"). Reading a token only parses it: the page
checks the MAC against the booking it names (`matches`), in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

MAC_BYTES = 16
_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{22})")


def _mac(key: bytes, reservation_id: int, confirmation_number: str) -> str:
    message = f"manage:{reservation_id}:{confirmation_number}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(key: bytes, reservation_id: int, confirmation_number: str) -> str:
    return f"{reservation_id}.{_mac(key, reservation_id, confirmation_number)}"


def reservation_id(token: str) -> int | None:
    """The row id a well-formed token names (not yet checked against that row), else None."""
    match = _TOKEN.fullmatch(token)
    return int(match.group(1)) if match else None


def matches(key: bytes, token: str, reservation_id: int, confirmation_number: str) -> bool:
    expected = mint(key, reservation_id, confirmation_number)
    return hmac.compare_digest(token.encode(), expected.encode())
