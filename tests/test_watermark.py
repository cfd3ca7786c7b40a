"""The event-time watermark: advances with the events, cannot be dragged by one skewed clock."""

from __future__ import annotations

import pickle
import random
from array import array

import pytest

from config.settings import Settings
from operators import watermark
from operators.enrich import Enricher, EnrichPolicy, GraphBatch, PostInfluence
from operators.influence import Touch
from operators.watermark import IDLE_RECORDS, SAMPLES, STEP, Watermark

MINUTE = 60.0
START = 1_700_000_000.0
DAY = 86_400.0


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


# ----------------------------------------------------------------------------- one lane a worker

LATENESS = 300.0
"""The flow's default `allowed_lateness_seconds`."""

REACH = 7 * 86_400.0
"""The flow's `max_lag` (the reach horizon)."""


def run_lanes(
    events: list[tuple[str, float]], max_lag: float = REACH, wm: Watermark | None = None
) -> list[float]:
    """The watermark after each (worker, event time)."""
    wm = wm if wm is not None else Watermark()
    return [wm.observe(t, max_lag, wm.lane(worker)) for worker, t in events]


def in_bursts(workers: dict[str, list[float]], first: int, burst: int) -> list[tuple[str, float]]:
    """Each worker's times in its order: a first list of `first` of each, then bursts of
    `burst` in turns (a cluster's epochs reaching the graph stage one after the other)."""
    out = [(w, t) for w, times in workers.items() for t in times[:first]]
    for start in range(first, max(map(len, workers.values())), burst):
        for w, times in workers.items():
            out.extend((w, t) for t in times[start : start + burst])
    return out


def worst_lateness(events: list[tuple[str, float]], marks: list[float]) -> float:
    """How far the most behind event was behind the watermark before it."""
    before = [float("-inf"), *marks[:-1]]
    return max(wm - t for (_, t), wm in zip(events, before, strict=True))


@pytest.mark.parametrize(
    ("case", "tags", "late"),
    [
        ("one lane per worker", ("a", "b"), False),
        ("one lane for both (the watermark before lanes)", ("x", "x"), True),
    ],
)
def test_bursts_of_ten_thousand_do_not_make_the_worker_behind_late(
    case: str, tags: tuple[str, str], late: bool
) -> None:
    """Two workers of 40,000 events one second apart, in bursts of 10,000 each."""
    times = {"a": [float(i) for i in range(40_000)], "b": [i + 0.5 for i in range(40_000)]}
    events = [(tags[w == "b"], t) for w, t in in_bursts(times, 500, 10_000)]
    marks = run_lanes(events)
    assert marks == sorted(marks)  # never goes back
    assert (worst_lateness(events, marks) > LATENESS) is late, case
    assert marks[-1] >= 40_000 - 2 * 10_000  # and it does follow the stream


@pytest.mark.parametrize(
    ("case", "skew"),
    [
        ("one worker an hour ahead", [3600.0] * 20_000),
        ("one worker a day ahead", [86_400.0] * 20_000),
        ("one worker's first event in 2100", [4e9] + [0.0] * 19_999),
        ("one worker's clock jumps for 300 events", [0.0] * 9_000 + [3e5] * 300 + [0.0] * 10_700),
    ],
)
def test_a_skewed_clock_on_one_worker_cannot_drag_it(case: str, skew: list[float]) -> None:
    """Worker `b` sends the same times as `a`, plus its skew; the watermark stays behind `a`."""
    a = [float(i) for i in range(20_000)]
    b = [t + s for t, s in zip(a, skew, strict=True)]
    events = in_bursts({"a": a, "b": b}, 100, 3_000)
    newest_a = float("-inf")
    for (worker, t), wm in zip(events, run_lanes(events), strict=True):
        if worker == "a":
            newest_a = max(newest_a, t)
        assert wm <= newest_a, case


def test_an_idle_or_finished_worker_stops_holding_it_after_idle_records() -> None:
    """`b` sends 3,000 events and finishes; `a` goes on. `b`'s lane holds the watermark at its
    last events for `IDLE_RECORDS` events of `a` (checked every `STEP`), then is dropped."""
    wm = Watermark()
    run_lanes([(w, float(i)) for i in range(3_000) for w in ("a", "b")], wm=wm)
    b_last = 2_999.0
    at = 3_000
    held = run_lanes([("a", float(at + i)) for i in range(IDLE_RECORDS - STEP)], wm=wm)
    at += len(held)
    assert max(held) <= b_last  # b (finished) still holds it back
    assert sorted(wm.workers) == ["a", "b"]
    released = run_lanes([("a", float(at + i)) for i in range(2 * STEP)], wm=wm)
    at += len(released)
    assert wm.workers == ["a"]  # b was dropped
    assert released[-1] >= at - SAMPLES  # the watermark follows a alone
    # b sends again: a new lane, which holds the watermark at b's events again (no going back)
    before = wm.value
    events = [("b", before + 10.0)] * STEP + [("a", float(at + i)) for i in range(500)]
    again = run_lanes(events, wm=wm)
    assert sorted(wm.workers) == ["a", "b"]
    assert before <= min(again) and max(again) <= before + 10.0


@pytest.mark.parametrize(
    ("case", "idle_bursts", "late"),
    [
        ("patience grows with the bursts seen", watermark.IDLE_BURSTS, False),
        ("a fixed IDLE_RECORDS", 0, True),
    ],
)
def test_bursts_longer_than_idle_records_do_not_drop_the_worker_waiting_its_turn(
    case: str, idle_bursts: int, late: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Epochs of 20,000 events of each worker, then of 50,000 (longer epochs, or faster
    processes): longer than `IDLE_RECORDS`, yet the worker waiting behind one is not idle."""
    monkeypatch.setattr(watermark, "IDLE_BURSTS", idle_bursts)
    assert IDLE_RECORDS < 50_000
    times = {"a": [float(i) for i in range(170_000)], "b": [i + 0.5 for i in range(170_000)]}
    warm = in_bursts({w: t[:20_500] for w, t in times.items()}, 500, 20_000)
    rest = in_bursts({w: t[20_500:] for w, t in times.items()}, 0, 50_000)
    events = warm + rest
    wm = Watermark()
    marks = run_lanes(events, wm=wm)
    assert (worst_lateness(events, marks) > LATENESS) is late, case
    assert marks[-1] >= 170_000 - 2 * 50_000  # and it does follow the stream


@pytest.mark.parametrize(
    ("case", "busy", "idle_last", "held"),
    [
        ("silent for less than IDLE_RECORDS", IDLE_RECORDS - 2 * STEP, 999.0, True),
        ("silent for IDLE_RECORDS and a step", IDLE_RECORDS + 2 * STEP, 999.0, False),
    ],
)
def test_the_idle_rule_counts_records(case: str, busy: int, idle_last: float, held: bool) -> None:
    wm = Watermark()
    run_lanes([(w, float(i)) for i in range(1_000) for w in ("a", "b")], wm=wm)
    marks = run_lanes([("a", 1_000.0 + i) for i in range(busy)], wm=wm)
    assert (marks[-1] <= idle_last) is held, case


def test_a_resumed_watermark_keeps_every_lane() -> None:
    rng = random.Random(5)
    times = {w: [i + rng.uniform(-30, 0) for i in range(12_000)] for w in ("a", "b", "c")}
    events = in_bursts(times, 200, 2_500)
    live = Watermark()
    cut = len(events) // 2
    run_lanes(events[:cut], wm=live)
    clone = pickle.loads(pickle.dumps(live))
    assert clone.workers == live.workers == ["a", "b", "c"]
    assert run_lanes(events[cut:], wm=clone) == run_lanes(events[cut:], wm=live)


@pytest.mark.parametrize(
    ("case", "state"),
    [
        ("version 2: one ring, no lanes", (2, array("d", [1.0, 2.0]), 2, 3, float("-inf"))),
        ("a later version", (99, {}, 0, 3, float("-inf"))),
        ("not a tuple", {"v": 3}),
    ],
)
def test_a_watermark_of_another_version_is_refused(case: str, state: object) -> None:
    wm = Watermark.__new__(Watermark)
    with pytest.raises(ValueError, match="unsupported Watermark state"):
        wm.__setstate__(state)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the graph stage


def worker_touches(worker: int, n: int) -> list[Touch]:
    """`n` events of one worker's accounts, one a second; a fifth are posts, and after the
    first 3,000 every 1,000th is a post dated a day back (late whatever the batching)."""
    out = []
    for i in range(n):
        key = f"twitter:{worker}-{i}"
        late = i > 3_000 and i % 1_000 == 999
        post = late or i % 5 == 0
        out.append(
            Touch(
                key=key,
                event_id=key,
                ts=START + i + worker * 0.5 - (DAY if late else 0.0),
                kind="post" if post else "reply",
                author=f"twitter:{worker}-{i % 97}",
                handle=None,
                followers=100,
                target=None if post else f"twitter:{1 - worker}-{i % 89}",
                mentions=(),
                compound=-0.5 if post else None,
                post=post,
            )
        )
    return out


def late_posts(batches: list[GraphBatch]) -> set[str]:
    """The posts whose influence came stamped with a watermark more than the lateness past
    them (the customer stage drops those as late)."""
    enricher = Enricher()
    policy = EnrichPolicy.from_settings(Settings())
    out: list = []
    for batch in batches:
        enricher.process_batch(batch, policy, out)
    ts = {t.event_id: t.ts for b in batches for t in b.records}
    return {
        rec.event_id
        for _, (wm, rec) in out
        if isinstance(rec, PostInfluence) and ts[rec.event_id] < wm - LATENESS
    }


@pytest.mark.parametrize(
    ("case", "tags", "same"),
    [
        ("two workers tagged apart", ("w0", "w1"), True),
        ("two workers under one tag (the watermark before lanes)", ("w", "w"), False),
    ],
)
def test_bursts_longer_than_the_samples_are_late_as_in_time_order(
    case: str, tags: tuple[str, str], same: bool
) -> None:
    """The same records, in bursts of 10 lists of 500 per worker (5,000 > 4,096 samples), are
    late exactly where they are in time order (the two workers' lists alternating, one tag)."""
    streams = [worker_touches(w, 20_000) for w in (0, 1)]
    lists = [[s[i : i + 500] for i in range(0, len(s), 500)] for s in streams]
    in_order = [GraphBatch("one", b) for pair in zip(*lists, strict=True) for b in pair]
    bursts = [GraphBatch(tags[0], b) for b in lists[0][:1]]
    bursts += [GraphBatch(tags[1], b) for b in lists[1][:1]]
    for start in range(1, len(lists[0]), 10):
        for w in (0, 1):
            bursts.extend(GraphBatch(tags[w], b) for b in lists[w][start : start + 10])
    expected = late_posts(in_order)
    assert expected == {f"twitter:{w}-{i}" for w in (0, 1) for i in range(3_999, 20_000, 1_000)}
    assert (late_posts(bursts) == expected) is same, case
