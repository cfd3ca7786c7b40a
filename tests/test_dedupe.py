"""Bounded de-duplication by event time."""

from __future__ import annotations

from operators.dedupe import RecentIds


def test_duplicates_are_seen_once() -> None:
    seen = RecentIds(horizon_seconds=100)
    assert seen.first_time("a", 0)
    assert not seen.first_time("a", 0)
    assert not seen.first_time("a", 50)
    assert seen.first_time("b", 1)


def test_memory_is_bounded_by_the_horizon() -> None:
    seen = RecentIds(horizon_seconds=10)
    for i in range(1000):
        assert seen.first_time(f"id{i}", float(i))
    assert len(seen) <= 12


def test_out_of_order_ids_are_still_deduplicated_within_horizon() -> None:
    seen = RecentIds(horizon_seconds=100)
    assert seen.first_time("late", 50)
    assert seen.first_time("new", 120)
    assert not seen.first_time("late", 50)
