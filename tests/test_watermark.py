"""The event-time watermark: advances with the events, cannot be dragged by one skewed clock."""

from __future__ import annotations

import pickle
import random

import pytest

from operators.watermark import SAMPLES, STEP, Watermark

MINUTE = 60.0


def run(times: list[float], max_lag: float = float("inf")) -> list[float]:
    wm = Watermark()
    return [wm.observe(t, max_lag) for t in times]


def test_no_watermark_before_three_events() -> None:
    assert run([100.0, 200.0], 50.0) == [float("-inf"), float("-inf")]
    assert run([100.0, 200.0, 300.0], 50.0)[-1] == 150.0  # warm-up: the bound behind the top


@pytest.mark.parametrize(
    ("case", "times", "at_most"),
    [
        # one event dated +58 min among in-order ones
        ("one future event", [float(i) for i in range(100)] + [99 + 58 * MINUTE, 100.0], 100.0),
        # the very first event of a stream is far in the future
        ("future first", [3600.0, 0.0, 1.0, 2.0, 3.0], 3.0),
        # one source in three has a clock an hour ahead, interleaved
        (
            "skewed source",
            [i + (3600.0 if i % 3 == 0 else 0.0) for i in range(300)],
            300.0,
        ),
        # a burst of 10 skewed events in a row among 1000
        ("skewed burst", [float(i) for i in range(500)] + [9e9] * 10 + [500.0], 500.0),
    ],
)
def test_one_skewed_clock_cannot_drag_it(case: str, times: list[float], at_most: float) -> None:
    assert run(times)[-1] <= at_most, case


@pytest.mark.parametrize(("disorder", "max_lag"), [(0.0, 60.0), (30.0, 60.0), (30.0, 600.0)])
def test_it_trails_the_stream_by_at_most_its_bound(disorder: float, max_lag: float) -> None:
    rng = random.Random(1)
    times = [i + rng.uniform(-disorder, 0) for i in range(5000)]
    marks = run(times, max_lag)
    assert marks == sorted(marks)  # never goes back
    # the high quantile trails by 5% of the samples, the watermark by max_lag more at most
    assert 0 <= 4999 - marks[-1] <= max_lag + disorder + STEP + 0.05 * SAMPLES


def test_partitions_read_in_bursts_do_not_make_each_other_late() -> None:
    """Three partitions of a day each, read in turns of 300 events (5 h, like files).

    The bound: a turn must span less event time than `max_lag` (the window length)."""
    parts = [[p * 0.1 + i * 60.0 for i in range(1440)] for p in range(3)]
    times: list[float] = []
    for start in range(0, 1440, 300):
        for part in parts:
            times.extend(part[start : start + 300])
    wm = Watermark()
    worst = 0.0
    for t in times:
        worst = max(worst, wm.observe(t, 6 * 3600.0) - t)
    assert worst <= 0.0  # no event of any partition is behind the watermark when it arrives


def test_same_input_same_watermark_and_pickles() -> None:
    times = [float(i % 97) * 3 + i for i in range(500)]
    wm = Watermark()
    for t in times[:250]:
        wm.observe(t)
    clone = pickle.loads(pickle.dumps(wm))
    assert [wm.observe(t) for t in times[250:]] == [clone.observe(t) for t in times[250:]]
