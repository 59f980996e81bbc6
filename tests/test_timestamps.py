"""``timestamps.format_utc``: the one wire format of a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from crowdsky.timestamps import format_utc


def test_utc_ends_in_z_and_keeps_microseconds() -> None:
    moment = datetime(2025, 3, 27, 1, 20, 2, 500000, tzinfo=UTC)
    assert format_utc(moment) == "2025-03-27T01:20:02.500000Z"


def test_other_zones_are_converted_and_naive_is_taken_as_utc() -> None:
    local = datetime(2025, 3, 26, 21, 20, 2, tzinfo=timezone(timedelta(hours=-4)))
    assert format_utc(local) == "2025-03-27T01:20:02Z"
    assert format_utc(datetime(2025, 3, 27, 1, 20, 2)) == "2025-03-27T01:20:02Z"


def test_none_stays_none() -> None:
    assert format_utc(None) is None
