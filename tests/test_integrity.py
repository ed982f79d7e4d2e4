"""Two server processes, one database, many bookings at once: nothing lost, nothing doubled."""

from harness import integrity


async def test_two_processes_keep_every_booking_exactly_once(test_dsn, pool):
    result = await integrity.run(test_dsn, same_phone=200, distinct=1000)

    same = result["same_phone"]
    assert same["rows"] == 1
    assert same["statuses"].get(201) == 1
    assert sum(same["statuses"].values()) == 200
    assert set(same["statuses"]) <= {200, 201, 409}  # repeats and conflicts, nothing else
    assert same["answers_consistent_with_winner"]

    distinct = result["distinct_phones"]
    assert distinct["created"] == 1000
    assert distinct["rows"] == 1000
    assert distinct["unique_confirmation_numbers"] == 1000
    assert distinct["read_back_matching"] == 1000
