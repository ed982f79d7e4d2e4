"""A booking's ETag and the `If-Match` rule: two staff editing one booking never overwrite each
other silently.

The tag is a digest of the booking as the API shows it (`Reservation.to_json()`): every write
changes `updated_at` (a trigger) and the confirmation number tells bookings of one phone apart,
so any change gives a new tag. Being a function of the JSON alone, the same tag can be computed
from a history row's `before`/`after`, which is how the live feed hands every open page the
new tag of a booking someone else just changed (no extra request per change).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

DIGEST_CHARS = 22  # 132 bits of SHA-256: no two versions of a booking ever share a tag


def etag_of(booking: Mapping[str, Any]) -> str:
    """The strong ETag (quotes included) of a booking's JSON; an `etag` key in it is ignored."""
    fields = {key: value for key, value in booking.items() if key != "etag"}
    digest = hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).digest()
    return '"' + base64.urlsafe_b64encode(digest).decode()[:DIGEST_CHARS] + '"'


def with_etag(booking: Mapping[str, Any]) -> dict[str, Any]:
    """The booking's JSON with its `etag` beside the fields (list items, feed events)."""
    return {**booking, "etag": etag_of(booking)}


def if_match_allows(header: str | None, current: str) -> bool:
    """RFC 9110's If-Match with strong comparison: absent (the old behaviour) or `*` allow any
    current booking; otherwise one listed tag must equal `current`, and a weak tag never does."""
    if header is None:
        return True
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or current in tags
