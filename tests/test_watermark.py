"""The event-time watermark: advances with the events, cannot be dragged by one skewed clock."""

from __future__ import annotations

import pickle
import random

import pytest

from operators.watermark import Watermark

MINUTE = 60.0


def run(times: list[float]) -> list[float]:
    wm = Watermark()
    return [wm.observe(t) for t in times]


def test_no_watermark_before_three_events() -> None:
    assert run([100.0, 200.0]) == [float("-inf"), float("-inf")]
    assert run([100.0, 200.0, 300.0])[-1] == 200.0


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


@pytest.mark.parametrize(("disorder", "lag_at_most"), [(0.0, 20.0), (30.0, 40.0)])
def test_it_follows_the_stream_closely(disorder: float, lag_at_most: float) -> None:
    rng = random.Random(1)
    times = [i + rng.uniform(-disorder, 0) for i in range(2000)]
    marks = run(times)
    assert 0 <= 1999 - marks[-1] <= lag_at_most
    assert marks == sorted(marks)  # never goes back


def test_same_input_same_watermark_and_pickles() -> None:
    times = [float(i % 97) * 3 + i for i in range(500)]
    wm = Watermark()
    for t in times[:250]:
        wm.observe(t)
    clone = pickle.loads(pickle.dumps(wm))
    assert [wm.observe(t) for t in times[250:]] == [clone.observe(t) for t in times[250:]]
