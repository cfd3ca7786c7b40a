"""InfluenceGraph: rises of unhappy customers (by the 15th distinct account, only for customers
who posted something negative, within the watch window) and their hysteresis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from influence_harness import HOUR, T0, Harness, background, cid, crowd, ev

from operators.events import SocialEvent
from operators.records import InfluenceRise


@pytest.mark.parametrize("kind", ["reply", "repost", "quote", "mention", "like"])
def test_an_unhappy_customer_rises_by_the_15th_distinct_account(kind: str) -> None:
    h = Harness()
    h.feed(background(accounts=400))
    h.feed(crowd("busy", 6, at=70, prefix="x"))  # some ordinary reach elsewhere
    h.refresh()
    h.feed([ev("c-1", "cust", at=100), ev("c-2", "cust", at=110)], compound=-0.8)
    rises = []
    for i, event in enumerate(crowd("cust", 40, at=200, kind=kind)):
        for _, (_, record) in h.feed([event]):
            if isinstance(record, InfluenceRise):
                rises.append((i + 1, record))
    assert len(rises) == 1  # once: no flapping, no second trigger
    nth, rise = rises[0]
    assert nth <= 15
    assert rise.customer_id == cid("cust")
    assert rise.event_id == f"c{nth - 1}-cust"  # the interaction toward the customer
    assert rise.created_at == T0 + timedelta(seconds=200)
    assert rise.influence.by_rank and rise.influence.inbound_accounts >= 3


@pytest.mark.parametrize(("compound", "rises"), [(-0.8, 1), (-0.36, 1), (0.4, 0), (None, 0)])
def test_only_customers_who_posted_something_negative_are_watched(
    compound: float | None, rises: int
) -> None:
    h = Harness()
    h.feed(background(accounts=400))
    h.refresh()
    h.feed([ev("c-1", "cust", at=100)], compound=compound)
    h.feed(crowd("cust", 30, at=200))
    assert len(h.rises()) == rises


def test_watch_ends_after_the_window() -> None:
    h = Harness()
    h.feed(background(accounts=400))
    h.refresh()
    h.feed([ev("c-1", "cust", at=100)], compound=-0.9)
    h.feed(background(accounts=100, at=13 * HOUR, seed=3))  # the watermark passes the window
    assert h.wm > T0.timestamp() + 6 * HOUR + 400
    h.feed(crowd("cust", 30, at=13 * HOUR))
    assert h.rises() == []


def reach_from(sources: range, target: str, at: float) -> list[SocialEvent]:
    """Background accounts (each used once: equal votes) reply to `target`."""
    return [ev(f"r-{target}-{i}", f"u{i}", "reply", target=target, at=at) for i in sources]


def test_hysteresis_holds_until_threshold_minus_margin() -> None:
    h = Harness()
    h.feed(background(accounts=400))
    h.refresh()
    h.feed([ev("c-1", "cust", at=100)], compound=-0.9)
    h.feed(reach_from(range(80, 84), "cust", at=200))  # 4 accounts: top of a thin feed
    assert len(h.rises()) == 1 and h.inf("cust").by_rank
    held = []
    # One by one, background accounts get more reach (5 accounts each) than the customer.
    for k in range(60):
        h.feed(reach_from(range(100 + 5 * k, 105 + 5 * k), f"u{k}", at=300))
        h.refresh()
        influence = h.inf("cust")
        held.append((influence.percentile, influence.by_rank))
    assert all(by_rank for pct, by_rank in held if pct >= 0.85)  # 0.85 <= pct < 0.9: held
    assert any(0.85 <= pct < 0.9 for pct, _ in held)
    assert not any(by_rank for pct, by_rank in held if pct < 0.85)
    assert len(h.rises()) == 1  # never re-alerted while held


@pytest.mark.parametrize(("margin", "rises"), [(0.0, 2), (0.05, 1)])
def test_a_new_rise_needs_a_real_drop_first(margin: float, rises: int) -> None:
    h = Harness(percentile_hysteresis=margin)
    h.feed(background(accounts=400))
    h.refresh()
    h.feed([ev("c-1", "cust", at=100)], compound=-0.9)
    h.feed(reach_from(range(80, 84), "cust", at=200))
    for k in range(42):  # the customer's percentile just below 0.9 (above 0.85)
        h.feed(reach_from(range(100 + 5 * k, 105 + 5 * k), f"u{k}", at=300))
    h.refresh()
    assert 0.85 <= h.inf("cust").percentile < 0.9
    h.feed(reach_from(range(84, 86), "cust", at=400))  # back above 0.9 on an interaction
    assert len(h.rises()) == rises
