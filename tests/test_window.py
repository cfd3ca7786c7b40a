"""The per-customer sliding window: arithmetic, out-of-order input, lateness, withdrawal, expiry."""

from __future__ import annotations

import pickle
import random

import pytest

from config.detection import WindowSettings
from operators.window import CustomerWindow, Placement, WindowPost

H = 3600.0
POLICY = WindowSettings()  # 6 h, 300 s lateness, 200 posts
NO_WATERMARK = float("-inf")


def post(ts: float, compound: float, event_id: str | None = None) -> WindowPost:
    return WindowPost(ts, event_id or f"e{ts:g}", compound, "text")


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
    w = CustomerWindow()
    for ts, c in posts:
        w.add(post(ts, c), POLICY)
    s = w.summary(POLICY)
    assert s.posts == expected_count
    assert s.mean == pytest.approx(expected_mean)
    assert s.min == pytest.approx(expected_min)
    assert s.latest == pytest.approx(expected_latest)
    assert s.window_seconds == 6 * H


def test_out_of_order_within_lateness_equals_in_order() -> None:
    rng = random.Random(3)
    items = [(i * 120.0 + rng.uniform(-60, 60), rng.uniform(-1, 1)) for i in range(300)]
    ordered, shuffled = CustomerWindow(), CustomerWindow()
    for ts, c in sorted(items):
        ordered.add(post(ts, c), POLICY, watermark=ts)
    # every item arrives up to 60 s late relative to its neighbours; the watermark follows
    late = sorted(items, key=lambda it: it[0] + rng.uniform(0, 60))
    watermark = NO_WATERMARK
    for ts, c in late:
        assert shuffled.add(post(ts, c), POLICY, watermark) is not Placement.LATE
        watermark = max(watermark, ts - 60)
    assert shuffled.current() == ordered.current()
    assert shuffled.summary(POLICY) == ordered.summary(POLICY)


@pytest.mark.parametrize(
    ("lateness", "behind_watermark", "placement", "counts"),
    [
        (300, 0, Placement.ADDED, 2),
        (300, 299, Placement.ADDED, 2),
        (300, 300, Placement.ADDED, 2),  # exactly at the bound still counts
        (300, 301, Placement.LATE, 1),
        (0, 0, Placement.ADDED, 2),
        (0, 1, Placement.LATE, 1),
        (6 * H, 6 * H - 1, Placement.ADDED, 2),  # lateness up to the window: still inside it
        (6 * H, 6 * H, Placement.LATE, 1),  # on the window's edge: outside, never counts
    ],
)
def test_lateness_is_measured_against_the_watermark(
    lateness: float, behind_watermark: float, placement: Placement, counts: int
) -> None:
    policy = WindowSettings(allowed_lateness_seconds=int(lateness))
    w = CustomerWindow()
    watermark = 10 * H
    w.add(post(watermark, -0.5), policy, watermark)
    late = post(watermark - behind_watermark, -0.5, "late")
    assert w.add(late, policy, watermark) is placement
    assert w.summary(policy).posts == counts


def test_a_post_inside_lateness_always_counts_and_a_late_one_never_does() -> None:
    # The customer's own newest post may be ahead of the watermark (its clock): the bound is
    # still the watermark's.
    w = CustomerWindow()
    w.add(post(10 * H, -0.5), POLICY, watermark=9 * H)
    assert w.add(post(9 * H - 200, -0.5), POLICY, watermark=9 * H) is Placement.ADDED
    assert w.add(post(9 * H - 400, -0.5), POLICY, watermark=9 * H) is Placement.LATE
    assert w.summary(POLICY).posts == 2


@pytest.mark.parametrize(
    ("edited_after", "placement", "mean"),
    [
        (60, Placement.REPLACED, 0.9),  # inside the lateness margin
        (30 * 60, Placement.REPLACED, 0.9),  # far beyond it: the post is still in the window
        (6 * H - 1, Placement.REPLACED, 0.9),  # just before the post leaves the window
        (6 * H, Placement.LATE, None),  # the post has left the window: nothing to replace
    ],
)
def test_an_edit_replaces_its_post_while_the_post_is_in_the_window(
    edited_after: float, placement: Placement, mean: float | None
) -> None:
    # An edit keeps its post's event time; it arrives when it was made, the watermark there.
    w = CustomerWindow()
    w.add(post(10 * H, -0.8, "p"), POLICY, watermark=10 * H)
    watermark = 10 * H + edited_after
    assert w.add(post(10 * H, 0.9, "p"), POLICY, watermark) is placement
    assert [p.compound for p in w.current()] == ([] if mean is None else [mean])


def test_lateness_still_refuses_a_new_post_with_an_unknown_id() -> None:
    w = CustomerWindow()
    w.add(post(10 * H, -0.8, "p"), POLICY, watermark=10 * H)
    assert w.add(post(10 * H, 0.9, "other"), POLICY, 10 * H + 30 * 60) is Placement.LATE
    assert [p.event_id for p in w.current()] == ["p"]


def test_lateness_beyond_the_window_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="allowed_lateness_seconds"):
        WindowSettings(length_seconds=600, allowed_lateness_seconds=601)


def test_same_id_replaces_the_post() -> None:
    w = CustomerWindow()
    w.add(post(0, -0.9, "p1"), POLICY)
    assert w.add(post(0, 0.6, "p1"), POLICY) is Placement.REPLACED
    assert [p.compound for p in w.current()] == [0.6]


def test_withdrawal_removes_the_post() -> None:
    w = CustomerWindow()
    w.add(post(0, -0.9, "p1"), POLICY)
    w.add(post(10, -0.1, "p2"), POLICY)
    assert w.remove("p1") is True
    assert w.remove("p1") is False
    assert w.summary(POLICY).posts == 1


def test_advance_expires_and_never_goes_back() -> None:
    w = CustomerWindow()
    w.add(post(0, -0.9), POLICY)
    w.advance(100, POLICY)
    w.advance(50, POLICY)
    assert w.now == 100
    w.advance(6 * H + 1, POLICY)
    assert w.is_empty()
    assert w.summary(POLICY).posts == 0


def test_max_posts_bounds_state() -> None:
    policy = WindowSettings(max_posts=5)
    w = CustomerWindow()
    for i in range(20):
        w.add(post(i, -0.1), policy)
    assert [p.ts for p in w.posts] == [15, 16, 17, 18, 19]


def test_state_holds_no_settings_and_pickles_round() -> None:
    w = CustomerWindow()
    w.add(post(5, -0.2), POLICY)
    clone = pickle.loads(pickle.dumps(w))
    assert clone.current() == w.current()
    assert clone.now == w.now
    # a shorter window applies to the restored state at once: no reconfigure
    short = WindowSettings(length_seconds=60, allowed_lateness_seconds=0)
    clone.advance(100, short)
    assert clone.is_empty()
