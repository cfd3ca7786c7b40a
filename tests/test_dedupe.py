"""RecentIds: duplicates seen once, memory bounded by the watermark, not by the newest event."""

from __future__ import annotations

import pickle

import pytest

from operators.dedupe import RecentIds
from operators.watermark import Watermark

HORIZON = 300.0


def test_duplicates_are_seen_once() -> None:
    ids = RecentIds()
    assert ids.first_time("a", 0.0, 0.0, HORIZON)
    assert not ids.first_time("a", 0.0, 0.0, HORIZON)
    assert ids.first_time("b", 1.0, 1.0, HORIZON)


def test_memory_is_bounded_by_the_horizon_behind_the_watermark() -> None:
    ids = RecentIds()
    for i in range(1000):
        ids.first_time(f"e{i}", float(i), float(i), HORIZON)
    assert len(ids) <= HORIZON + 2


@pytest.mark.parametrize("ahead", [58 * 60, 3600, 86_400])
def test_a_future_dated_event_evicts_nothing(ahead: float) -> None:
    ids = RecentIds()
    watermark = Watermark()
    for i in range(100):
        t = 1000.0 + i
        assert ids.first_time(f"e{i}", t, watermark.observe(t), HORIZON)
    skewed = 1100.0 + ahead
    assert ids.first_time("future", skewed, watermark.observe(skewed), HORIZON)
    for i in range(100):  # every earlier id is still remembered
        t = 1000.0 + i
        assert not ids.first_time(f"e{i}", t, watermark.observe(1101.0), HORIZON)


def test_out_of_order_ids_are_still_deduplicated_within_horizon() -> None:
    ids = RecentIds()
    assert ids.first_time("late", 50.0, 100.0, HORIZON)
    assert ids.first_time("x", 340.0, 340.0, HORIZON)
    assert not ids.first_time("late", 50.0, 340.0, HORIZON)


def test_pickle_round_trip() -> None:
    ids = RecentIds()
    for i in range(10):
        ids.first_time(f"e{i}", float(i), float(i), HORIZON)
    clone = pickle.loads(pickle.dumps(ids))
    assert len(clone) == 10 and "e3" in clone
