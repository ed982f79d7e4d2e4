"""The pure availability engine: each reason, each boundary, tables smallest-first, no database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from server.book import availability as av
from server.book.restaurant import (
    WEEKDAYS,
    ProfileInvalid,
    RestaurantProfile,
    merged,
    parse_profile,
    seed_profile,
)
from server.settings import Settings

SG = dt.timezone(dt.timedelta(hours=8))
# Monday 7 December 2026, 10:00 in Singapore.
NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=SG)
MON, TUE, WED = dt.date(2026, 12, 7), dt.date(2026, 12, 8), dt.date(2026, 12, 9)

ISSUE_PROFILE: dict[str, Any] = {
    "name": "Example Bistro",
    "availability": "rules",
    "timezone": "Asia/Singapore",
    "slot_minutes": 15,
    "hours": {
        "mon": [],
        "tue": [["12:00", "14:00"], ["18:00", "21:30"]],
        "wed": [["18:00", "21:30"]],
        "thu": [["18:00", "21:30"]],
        "fri": [["18:00", "22:00"]],
        "sat": [["11:30", "22:00"]],
        "sun": [["11:30", "15:00"]],
    },
    "closures": [{"from": "2026-12-24", "to": "2026-12-26", "reason": "Christmas"}],
    "covers_per_slot": 20,
    "dining_minutes": {"2": 90, "4": 120, "8": 150},
    "tables": [
        {"name": "T1", "seats": 2},
        {"name": "T2", "seats": 4, "min_party": 3},
        {"name": "T3", "seats": 2},
    ],
    "combinations": [["T1", "T3"]],
    "max_party_size": 8,
    "min_lead_minutes": 60,
    "max_days_ahead": 60,
}


def profile(**changes: Any) -> RestaurantProfile:
    return parse_profile({**ISSUE_PROFILE, **changes})


def ask(
    p: RestaurantProfile,
    day: dt.date,
    hhmm: str,
    party: int = 2,
    *,
    bookings: Any = (),
    now: dt.datetime = NOW,
) -> av.Decision:
    return av.decide(p, bookings, av.Request(day, dt.time.fromisoformat(hhmm), party), now)


def booked(
    i: int, day: dt.date, hhmm: str, party: int = 2, tables: Any = None, status: str = "confirmed"
) -> av.Booking:
    return av.Booking(i, day, dt.time.fromisoformat(hhmm), party, status, tables)


# --- the profile ---------------------------------------------------------------------------------


def test_the_issue_profile_round_trips_exactly() -> None:
    answered = profile().to_json()
    assert answered["tables"][0] == {"name": "T1", "seats": 2, "min_party": 1}  # defaults shown
    answered["tables"] = ISSUE_PROFILE["tables"]
    for table in answered["tables"]:
        table.setdefault("min_party", 1)
    assert answered == ISSUE_PROFILE


def test_the_default_is_always_and_public_view_hides_the_plan() -> None:
    default = RestaurantProfile()
    assert default.availability == "always"
    public = profile().public_json()
    assert set(public) == {
        "name",
        "timezone",
        "hours",
        "closures",
        "max_party_size",
        "availability",
        "slot_minutes",
    }
    assert "tables" not in public


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"hours": {"mon": [["18:00", "17:00"]]}}, "hours"),
        ({"hours": {"funday": []}}, "hours"),
        ({"hours": {"mon": [["18:07", "20:00"]]}}, "body"),
        ({"closures": [{"from": "2026-12-26", "to": "2026-12-24"}]}, "closures.0"),
        ({"combinations": [["T1", "T9"]]}, "body"),
        ({"dining_minutes": {"two": 90}}, "dining_minutes"),
        ({"max_party_size": 21}, "max_party_size"),
        ({"slot_minutes": 7}, "body"),
        ({"availability": "sometimes"}, "availability"),
    ],
)
def test_bad_profiles_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ProfileInvalid) as caught:
        merged(profile(), change)
    assert field in caught.value.fields


def test_a_missing_weekday_is_closed() -> None:
    p = profile(hours={"tue": [["18:00", "21:00"]]})
    assert p.hours["mon"] == [] and p.hours["sun"] == []


def test_restaurant_file_seeds_from_toml(tmp_path: Path) -> None:
    toml = tmp_path / "restaurant.toml"
    toml.write_text(
        'availability = "rules"\ncovers_per_slot = 12\n'
        '[hours]\nmon = []\ntue = [["18:00", "21:30"]]\n'
        '[[closures]]\nfrom = 2026-12-24\nto = 2026-12-26\nreason = "Christmas"\n'
    )
    settings = Settings(restaurant_file=toml, restaurant_name="Toml Bistro", _env_file=None)
    seeded = seed_profile(settings)
    assert seeded.name == "Toml Bistro" and seeded.covers_per_slot == 12
    assert seeded.closures[0].start == dt.date(2026, 12, 24)
    assert seeded.hours["tue"] == [(dt.time(18), dt.time(21, 30))]


# --- always: nothing enforced --------------------------------------------------------------------


def test_always_says_yes_to_anything() -> None:
    p = profile(availability="always")
    assert ask(p, MON, "03:00", 20, bookings=[booked(1, MON, "03:00", 20)]) == av.Decision(True)
    day = av.day_availability(p, [], MON, 2, NOW)
    assert day.open and len(day.slots) == 96
    assert day.slots[0].reason == "in_the_past" and day.slots[40].available  # 10:00 is now


# --- each reason ---------------------------------------------------------------------------------


def test_each_reason() -> None:
    p = profile()
    assert ask(p, TUE, "19:00").available
    assert ask(p, dt.date(2026, 12, 6), "19:00").reason == "in_the_past"
    assert ask(p, MON + dt.timedelta(days=61), "19:00").reason == "too_far"
    assert ask(p, MON, "19:00").reason == "closed"  # Mondays
    assert ask(p, dt.date(2026, 12, 24), "19:00").reason == "closed"  # Christmas (a Thursday)
    assert ask(p, TUE, "15:00").reason == "outside_hours"
    assert ask(p, TUE, "19:05").reason == "outside_hours"  # off the 15' grid
    now = dt.datetime(2026, 12, 8, 17, 30, tzinfo=SG)
    assert ask(p, TUE, "18:15", now=now).reason == "too_soon"
    assert ask(p, TUE, "19:00", 9).reason == "party_too_large"
    full = [booked(i, TUE, "19:00", 2) for i in range(10)]
    assert ask(p, TUE, "19:00", 2, bookings=full).reason == "full"


def test_party_too_large_is_a_request_without_alternatives() -> None:
    decision = ask(profile(), TUE, "19:00", 9)
    assert decision.request and decision.alternatives == []


# --- boundaries ----------------------------------------------------------------------------------


def test_first_and_last_arrival_are_inclusive() -> None:
    p = profile()
    assert ask(p, TUE, "12:00").available and ask(p, TUE, "14:00").available
    assert ask(p, TUE, "11:45").reason == "outside_hours"
    assert ask(p, TUE, "14:15").reason == "outside_hours"
    assert ask(p, TUE, "21:30").available and ask(p, TUE, "21:45").reason == "outside_hours"


def test_closure_edges_are_inclusive() -> None:
    p = profile(hours={d: [["18:00", "21:00"]] for d in WEEKDAYS})
    assert ask(p, dt.date(2026, 12, 23), "19:00").available
    assert ask(p, dt.date(2026, 12, 24), "19:00").reason == "closed"
    assert ask(p, dt.date(2026, 12, 26), "19:00").reason == "closed"
    assert ask(p, dt.date(2026, 12, 27), "19:00").available


def test_lead_time_edge() -> None:
    p = profile()
    now = dt.datetime(2026, 12, 8, 17, 0, tzinfo=SG)
    assert ask(p, TUE, "18:00", now=now).available  # exactly 60 minutes ahead
    assert ask(p, TUE, "18:00", now=now + dt.timedelta(seconds=1)).reason == "too_soon"


def test_max_days_ahead_edge() -> None:
    p = profile(hours={d: [["18:00", "21:00"]] for d in WEEKDAYS})
    assert ask(p, MON + dt.timedelta(days=60), "19:00").available
    assert ask(p, MON + dt.timedelta(days=61), "19:00").reason == "too_far"


def test_covers_edge() -> None:
    p = profile(tables=[], combinations=[])
    nine = [booked(i, TUE, "19:00", 2) for i in range(9)]  # 18 covers
    assert ask(p, TUE, "19:00", 2, bookings=nine).available
    assert ask(p, TUE, "19:00", 3, bookings=nine).reason == "full"
    # Requests and cancelled bookings hold no covers; a booking at 19:07 counts in the 19:00 slot.
    others = [
        booked(20, TUE, "19:00", 8, status="requested"),
        booked(21, TUE, "19:00", 8, status="cancelled"),
        booked(22, TUE, "19:07", 2),
    ]
    assert ask(p, TUE, "19:00", 2, bookings=[*nine[:8], *others]).available
    assert ask(p, TUE, "19:00", 3, bookings=[*nine[:8], *others]).reason == "full"


def test_the_restaurants_timezone_not_the_servers() -> None:
    # 23:30 in Singapore on Tuesday is still Tuesday 15:30 UTC: Tuesday's dinner is past.
    p = profile(min_lead_minutes=0)
    now = dt.datetime(2026, 12, 8, 15, 30, tzinfo=dt.UTC)
    assert ask(p, TUE, "21:30", now=now).reason == "in_the_past"
    # ...and just after midnight in Singapore (Tuesday 16:05 UTC) "today" is Wednesday.
    now = dt.datetime(2026, 12, 8, 16, 5, tzinfo=dt.UTC)
    decision = ask(p, TUE, "21:30", now=now)
    assert decision.reason == "in_the_past"
    assert decision.alternatives[0] == av.Alternative(WED, dt.time(21, 30))


def test_lead_time_across_a_dst_change_counts_real_minutes() -> None:
    # London springs forward at 01:00 on Sunday 29 March 2026: 00:30 to 02:00 is 30 real minutes.
    p = profile(timezone="Europe/London", hours={"sun": [["00:00", "03:00"]]}, min_lead_minutes=60)
    now = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
    sunday = dt.date(2026, 3, 29)
    assert ask(p, sunday, "02:00", now=now).reason == "too_soon"
    assert ask(p, sunday, "02:30", now=now).available  # 60 real minutes


def test_dining_time_across_dst_holds_the_table_its_real_length() -> None:
    p = profile(
        timezone="Europe/London",
        hours={"sun": [["00:00", "04:00"]]},
        min_lead_minutes=0,
        tables=[{"name": "T1", "seats": 2}],
        combinations=[],
        covers_per_slot=None,
    )
    sunday = dt.date(2026, 3, 29)
    now = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
    early = [booked(1, sunday, "00:00", 2, ("T1",))]  # 90 real minutes: until 02:30 local
    assert ask(p, sunday, "02:15", bookings=early, now=now).reason == "full"
    assert ask(p, sunday, "02:30", bookings=early, now=now).available


def test_a_late_booking_holds_its_table_past_midnight() -> None:
    p = profile(
        hours={d: [["00:00", "23:45"]] for d in WEEKDAYS},
        tables=[{"name": "T1", "seats": 2}],
        combinations=[],
        min_lead_minutes=0,
    )
    late = [booked(1, TUE, "23:30", 2, ("T1",))]  # until 01:00 Wednesday
    assert ask(p, WED, "00:45", bookings=late).reason == "full"
    assert ask(p, WED, "01:00", bookings=late).available


# --- tables and combinations ---------------------------------------------------------------------


def test_tables_smallest_first_then_combinations() -> None:
    p = profile()
    assert ask(p, TUE, "19:00", 2).tables == ("T1",)
    assert ask(p, TUE, "19:00", 1).tables == ("T1",)
    assert ask(p, TUE, "19:00", 3).tables == ("T2",)  # T2 takes 3 to 4
    t1 = [booked(1, TUE, "19:00", 2, ("T1",))]
    assert ask(p, TUE, "19:00", 2, bookings=t1).tables == ("T3",)
    t2 = [booked(2, TUE, "18:30", 4, ("T2",))]
    assert ask(p, TUE, "19:00", 4, bookings=t2).tables == ("T1", "T3")  # the combination
    both = [*t2, booked(3, TUE, "19:00", 2, ("T3",))]
    decision = ask(p, TUE, "19:00", 4, bookings=both)
    assert decision.reason == "full"
    assert decision.alternatives  # later that evening, or another day


def test_a_single_table_wins_a_tie_with_a_combination() -> None:
    p = profile(
        tables=[{"name": "A", "seats": 2}, {"name": "B", "seats": 2}, {"name": "C", "seats": 4}],
        combinations=[["A", "B"]],
    )
    assert ask(p, TUE, "19:00", 4).tables == ("C",)
    assert ask(p, TUE, "19:00", 2, bookings=[booked(1, TUE, "19:00", 4, ("C",))]).tables == ("A",)


def test_a_party_no_table_seats_is_too_large() -> None:
    p = profile(max_party_size=8)  # the plan seats at most 4
    assert ask(p, TUE, "19:00", 5).reason == "party_too_large"


def test_min_party_keeps_a_couple_off_the_four_top() -> None:
    p = profile()
    taken = [booked(1, TUE, "19:00", 2, ("T1",)), booked(2, TUE, "19:00", 2, ("T3",))]
    assert ask(p, TUE, "19:00", 2, bookings=taken).reason == "full"
    assert ask(p, TUE, "19:00", 3, bookings=taken).tables == ("T2",)


def test_a_table_frees_up_at_the_end_of_dining() -> None:
    p = profile(covers_per_slot=None)
    t = [booked(1, TUE, "18:00", 2, ("T1",)), booked(2, TUE, "18:00", 2, ("T3",))]
    assert ask(p, TUE, "19:15", 2, bookings=t).reason == "full"  # 18:00 + 90' = 19:30
    assert ask(p, TUE, "19:30", 2, bookings=t).tables == ("T1",)


# --- alternatives ---------------------------------------------------------------------------


def test_alternatives_same_day_nearest_first_then_next_open_days() -> None:
    p = profile(tables=[], combinations=[], covers_per_slot=2)
    full = [booked(1, TUE, "19:00", 2), booked(2, TUE, "19:15", 2), booked(3, TUE, "18:45", 2)]
    decision = ask(p, TUE, "19:00", 2, bookings=full)
    assert [a.to_json() for a in decision.alternatives] == [
        {"date": "2026-12-08", "time": "18:30"},
        {"date": "2026-12-08", "time": "19:30"},
        {"date": "2026-12-08", "time": "18:15"},
    ]
    closed = ask(p, MON, "19:00")
    assert [a.to_json() for a in closed.alternatives] == [
        {"date": "2026-12-08", "time": "19:00"},
        {"date": "2026-12-08", "time": "18:45"},
        {"date": "2026-12-08", "time": "19:15"},
    ]


def test_closed_days_are_skipped_for_alternatives() -> None:
    p = profile(hours={"mon": [], "wed": [["18:00", "18:00"]]})
    decision = ask(p, MON, "19:00")
    assert [a.to_json() for a in decision.alternatives] == [
        {"date": "2026-12-09", "time": "18:00"},
        {"date": "2026-12-16", "time": "18:00"},
        {"date": "2026-12-23", "time": "18:00"},
    ]


def test_a_change_does_not_compete_with_itself() -> None:
    p = profile(tables=[], combinations=[], covers_per_slot=2)
    mine = [booked(7, TUE, "19:00", 2)]
    request = av.Request(TUE, dt.time(19), 2)
    assert not av.decide(p, mine, request, NOW).available
    assert av.decide(p, mine, request, NOW, exclude=7).available


# --- a day's slots and conflicts -----------------------------------------------------------------


def test_day_availability_with_rules() -> None:
    p = profile(tables=[], combinations=[], covers_per_slot=2)
    day = av.day_availability(p, [booked(1, TUE, "12:15", 2)], TUE, 2, NOW)
    assert day.open and day.slots[0].to_json() == {
        "time": "12:00",
        "available": True,
        "reason": None,
    }
    assert day.slots[1].to_json() == {"time": "12:15", "available": False, "reason": "full"}
    assert len(day.slots) == 9 + 15  # 12:00..14:00 and 18:00..21:30
    closed = av.day_availability(p, [], MON, 2, NOW)
    assert not closed.open and closed.reason == "closed" and closed.slots == []


def test_conflicts_after_a_profile_change() -> None:
    p = profile(tables=[], combinations=[], covers_per_slot=4, max_party_size=4)
    bookings = [
        booked(1, MON, "19:00"),  # Mondays are closed now
        booked(2, TUE, "16:00"),  # outside the new hours
        booked(3, TUE, "19:00", 3),
        booked(4, TUE, "19:00", 2),  # the one past covers_per_slot
        booked(5, TUE, "20:00", 6),  # over max_party_size
        booked(6, TUE, "20:00", 6, status="requested"),  # a request: no conflict
    ]
    found = [(b.id, reason) for b, reason in av.conflicts(p, bookings, NOW)]
    assert found == [(1, "closed"), (2, "outside_hours"), (4, "full"), (5, "party_too_large")]
