"""InfluenceGraph: redelivery never counts an interaction twice, late interactions count only
within the memory of ids, exact duplicates and edits are no new interactions, and a post's
influence half is marked a duplicate when it comes again."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import pytest
from influence_harness import DAY, T0, Harness, background, cid, ev

from operators.enrich import PostInfluence
from operators.events import SocialEvent


@pytest.mark.parametrize(
    ("delay", "counted_twice"),
    [(0, False), (60, False), (10 * 60, False), (3 * DAY, False), (6.9 * DAY, False)],
)
def test_a_redelivered_interaction_never_counts_twice(delay: float, counted_twice: bool) -> None:
    h = Harness()
    h.feed(background(accounts=50))
    first = ev("r1", "fan", "reply", target="star", at=100)
    h.feed([first])
    h.feed(background(accounts=50, at=100 + delay, seed=9))  # time goes on
    h.feed([first])  # the same event again, `delay` later
    h.feed(background(accounts=50, at=100 + delay, seed=10))
    (weight,) = [w for u, v, w in h.graph.decayed_edges(h.wm, h.policy.graph) if v == cid("star")]
    once = math.exp(-h.policy.graph.lam * max(h.wm - T0.timestamp() - 100, 0))
    assert (weight > 1.5 * once) is counted_twice
    assert weight == pytest.approx(once)
    assert h.inf("star").inbound_accounts == 1


@pytest.mark.parametrize(
    ("late_by", "counted"),
    [(30, True), (299, True), (301, False), (3600, False)],
)
def test_a_distinct_late_interaction_on_a_newer_edge(late_by: float, counted: bool) -> None:
    """Older than its edge's newest: counted only inside the memory of ids (5 min)."""
    h = Harness()
    h.feed([ev("new", "fan", "reply", target="star", at=5000)])
    h.feed(background(accounts=20, at=5000))
    h.feed([ev("old", "fan", "like", target="star", at=h.wm - T0.timestamp() - late_by)])
    (weight,) = [w for u, v, w in h.graph.decayed_edges(h.wm, h.policy.graph) if v == cid("star")]
    assert (weight > 1.2) is counted


@pytest.mark.parametrize(
    "events",
    [
        [ev(1, "a", "reply", target="b"), ev(1, "a", "reply", target="b")],
        [ev(1, "a", "post", mentions=["b", "c"]), ev(1, "a", "post", mentions=["b", "c"])],
    ],
)
def test_exact_duplicates_within_the_memory_are_dropped(events: list[SocialEvent]) -> None:
    h = Harness()
    h.feed(events)
    assert h.enricher.duplicates == 1
    assert all(w == pytest.approx(1.0) for *_, w in h.graph.decayed_edges(h.wm, h.policy.graph))


def test_edits_do_not_count_as_new_interactions() -> None:
    h = Harness()
    original = ev("p1", "a", "reply", target="b")
    edit = dataclasses.replace(original, edited_at=T0 + timedelta(minutes=1), text="x")
    h.feed([original, edit])
    (weight,) = [w for *_, w in h.graph.decayed_edges(h.wm, h.policy.graph)]
    assert weight == pytest.approx(1.0)


def test_post_halves_carry_the_authors_influence() -> None:
    h = Harness()
    h.feed(background(accounts=50))
    out = h.feed([ev("p", "u3", at=100)], compound=0.1)
    halves = [rec for _, (_, rec) in out if isinstance(rec, PostInfluence)]
    assert [(r.customer_id, r.event_id) for r in halves] == [(cid("u3"), "p")]
    again = h.feed([ev("p", "u3", at=100)], compound=0.1)
    assert [rec.duplicate for _, (_, rec) in again] == [True]
