"""The sample bookings `python -m server seed` makes for demos (days counted from today)."""

from __future__ import annotations

from typing import Any

SEED_ROWS: list[dict[str, Any]] = [
    {
        "name": "Ada Lovelace",
        "phone_number": "+6591234567",
        "party_size": 2,
        "days": 1,
        "time": "19:00",
        "other_info": {"notes": "window seat"},
    },
    {
        "name": "Alan Turing",
        "phone_number": "+6581234567",
        "party_size": 4,
        "days": 2,
        "time": "20:30",
        "other_info": {},
    },
    {
        "name": "Grace Hopper",
        "phone_number": "+6561234567",
        "party_size": 6,
        "days": 3,
        "time": "12:15",
        "other_info": {"notes": "birthday"},
    },
]
