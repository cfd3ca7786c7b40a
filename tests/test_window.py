"""The per-customer sliding window: arithmetic, out-of-order input, withdrawal, expiry."""

from __future__ import annotations

import pickle
import random

import pytest

from operators.window import CustomerWindow, Placement, WindowPost

H = 3600.0


def post(ts: float, compound: float, event_id: str | None = None) -> WindowPost:
    return WindowPost(ts, event_id or f"e{ts:g}", compound, "text")


def window(length: float = 6 * H, lateness: float = 300, max_posts: int = 200) -> CustomerWindow:
    return CustomerWindow(length, lateness, max_posts)


@pytest.mark.parametrize(
    ("posts", "expected_count", "expected_mean", "expected_min", "expected_latest"),
    [
        ([(0, -0.5)], 1, -0.5, -0.5, -0.5),
        ([(0, -0.5), (60, -0.7)], 2, -0.6, -0.7, -0.7),
        # the first post falls out once the clock passes 6 h after it
        ([(0, -0.9), (6 * H, 0.5)], 1, 0.5, 0.5, 0.5),
        ([(0, -0.9), (6 * H - 1, 0.5)], 2, -0.2, -0.9, 0.5),
        # out of order: the late post is placed by its event time, "latest" is by event time
        ([(100, -0.4), (40, 0.8)], 2, 0.2, -0.4, -0.4),
        ([(7 * H, 0.1), (7 * H - 59, -0.3), (7 * H - 30, -0.5)], 3, -0.7 / 3, -0.5, 0.1),
    ],
)
def test_summary(posts, expected_count, expected_mean, expected_min, expected_latest) -> None:
    w = window()
    for ts, c in posts:
        w.add(post(ts, c))
    s = w.summary()
    assert s.posts == expected_count
    assert s.mean == pytest.approx(expected_mean)
    assert s.min == pytest.approx(expected_min)
    assert s.latest == pytest.approx(expected_latest)
    assert s.window_seconds == 6 * H


def test_out_of_order_equals_in_order() -> None:
    rng = random.Random(3)
    items = [(i * 120.0 + rng.uniform(-60, 60), rng.uniform(-1, 1)) for i in range(300)]
    ordered, shuffled = window(), window()
    for ts, c in sorted(items):
        ordered.add(post(ts, c))
    # every item arrives up to 60 s late relative to its neighbours
    late = sorted(items, key=lambda it: it[0] + rng.uniform(0, 60))
    for ts, c in late:
        shuffled.add(post(ts, c))
    assert shuffled.current() == ordered.current()
    assert shuffled.summary() == ordered.summary()


@pytest.mark.parametrize(
    ("late_by", "placement"),
    [(60, Placement.ADDED), (6 * H, Placement.ADDED), (6 * H + 300, Placement.LATE)],
)
def test_too_late_posts_are_reported(late_by: float, placement: Placement) -> None:
    w = window(lateness=300)
    w.add(post(10 * H, -0.5))
    assert w.add(post(10 * H - late_by, -0.5)) is placement


def test_late_post_inside_lateness_but_outside_window_does_not_count() -> None:
    w = window(lateness=300)
    w.add(post(10 * H, -0.5))
    assert w.add(post(4 * H - 100, -0.9)) is Placement.ADDED
    assert w.summary().posts == 1


def test_same_id_replaces_the_post() -> None:
    w = window()
    w.add(post(0, -0.9, "p1"))
    assert w.add(post(0, 0.6, "p1")) is Placement.REPLACED
    assert [p.compound for p in w.current()] == [0.6]


def test_withdrawal_removes_the_post() -> None:
    w = window()
    w.add(post(0, -0.9, "p1"))
    w.add(post(10, -0.1, "p2"))
    assert w.remove("p1") is True
    assert w.remove("p1") is False
    assert w.summary().posts == 1


def test_advance_expires_and_never_goes_back() -> None:
    w = window()
    w.add(post(0, -0.9))
    w.advance(100)
    w.advance(50)
    assert w.now == 100
    w.advance(6 * H + 1)
    assert w.is_empty()
    assert w.summary().posts == 0


def test_max_posts_bounds_state() -> None:
    w = window(max_posts=5)
    for i in range(20):
        w.add(post(i, -0.1))
    assert len(w.posts) == 5
    assert [p.ts for p in w.posts] == [15, 16, 17, 18, 19]


def test_pickle_round_trip() -> None:
    w = window()
    w.add(post(5, -0.2))
    clone = pickle.loads(pickle.dumps(w))
    assert clone.current() == w.current()
    assert clone.now == w.now
