"""The rule, severity, cooldown, alert ids and the alert envelope; the customer state machine."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from config.detection import RuleSettings, WindowSettings
from operators.customer import CustomerPolicy, CustomerState
from operators.records import (
    AlertRecord,
    CustomerView,
    Influence,
    ScoredPost,
    Sentiment,
    Withdrawal,
)
from operators.rules import ALERT_TYPE, alert_id, evaluate
from operators.window import WindowSummary

RULES = RuleSettings()
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
DETECTED = datetime(2026, 11, 26, tzinfo=UTC)


def infl(
    percentile: float | None = 0.5, followers: int = 100, by_rank: bool | None = None
) -> Influence:
    return Influence(
        score=percentile or 0.0,
        percentile=percentile,
        followers=followers,
        pagerank=0.001,
        inbound_accounts=3,
        ranked_accounts=500,
        by_rank=by_rank,
    )


def summary(posts: int, mean: float) -> WindowSummary:
    return WindowSummary(posts=posts, mean=mean, min=mean, latest=mean, window_seconds=21600)


@pytest.mark.parametrize(
    ("posts", "mean", "influence", "fires", "severity"),
    [
        (1, -0.9, infl(0.99, 50_000), False, None),  # one post is not a pattern
        (2, -0.35, infl(0.95), True, "warning"),  # thresholds are inclusive
        (2, -0.34, infl(0.95), False, None),
        (3, -0.5, infl(0.89), False, None),
        (3, -0.5, infl(0.90), True, "warning"),
        (3, -0.5, infl(None, 10_000), True, "warning"),  # followers alone, before ranking
        (3, -0.5, infl(None, 9_999), False, None),  # not enough accounts to rank yet
        (3, -0.6, infl(0.95), True, "critical"),  # very unhappy
        (3, -0.5, infl(0.99), True, "critical"),  # very influential
        (3, -0.5, infl(0.2, 100_000), True, "critical"),  # huge audience
        # the graph stage's verdict (reach gate, hysteresis) decides when it is given
        (3, -0.5, infl(0.95, by_rank=False), False, None),  # e.g. fewer than 3 inbound
        (3, -0.5, infl(0.87, by_rank=True), True, "warning"),  # held by hysteresis
        (3, -0.5, infl(None, 10_000, by_rank=False), True, "warning"),  # followers: own path
        (5, 0.3, infl(0.99, 1_000_000), False, None),  # happy
    ],
)
def test_evaluate(posts, mean, influence, fires, severity) -> None:
    decision = evaluate(summary(posts, mean), influence, RULES)
    assert decision.fires is fires
    assert decision.severity == severity
    if fires:
        assert decision.reasons


def test_alert_ids_are_deterministic() -> None:
    assert alert_id("twitter:1", "e9", "warning") == alert_id("twitter:1", "e9", "warning")
    assert alert_id("twitter:1", "e9", "warning") != alert_id("twitter:1", "e9", "critical")
    assert alert_id("twitter:1", "e9", "warning") != alert_id("twitter:2", "e9", "warning")


POLICY = CustomerPolicy(WindowSettings(), RULES, "urn:test")


def sp(
    i: int, compound: float, minutes: float, influence: Influence | None = None, **kw
) -> ScoredPost:
    return ScoredPost(
        event_id=f"p{i}",
        customer_id="twitter:c1",
        platform="twitter",
        handle="cara",
        created_at=T0 + timedelta(minutes=minutes),
        text=f"post {i} " + "x" * 400,
        sentiment=Sentiment(compound, 0.0, 0.5, 0.5),
        influence=influence or infl(0.95, 500),
        **kw,
    )


def alerts_of(output: list[AlertRecord]) -> list[AlertRecord]:
    """The firing events among a step's lifecycle events."""
    return [a for a in output if orjson.loads(a.payload)["type"] == ALERT_TYPE]


def test_alert_fires_on_the_event_that_makes_the_rule_true() -> None:
    state = CustomerState()
    assert alerts_of(state.on_post(sp(1, -0.7, 0), POLICY, DETECTED)) == []
    fired = alerts_of(state.on_post(sp(2, -0.5, 10), POLICY, DETECTED))
    assert len(fired) == 1
    alert = orjson.loads(fired[0].payload)
    assert alert["specversion"] == "1.0"
    assert alert["type"] == ALERT_TYPE
    assert alert["id"] == fired[0].alert_id == alert_id("twitter:c1", "p2", "critical")
    assert alert["subject"] == "twitter:c1"
    assert alert["source"] == "urn:test"
    assert alert["time"] == "2026-11-26T00:00:00Z"
    assert alert["datacontenttype"] == "application/json"
    data = alert["data"]
    assert data["trigger_event_id"] == "p2"
    assert data["event_time"] == "2026-03-02T08:10:00Z"
    assert data["severity"] == "critical"  # mean -0.6
    assert data["sentiment"]["posts"] == 2
    assert data["sentiment"]["mean"] == pytest.approx(-0.6)
    assert data["sentiment"]["min"] == -0.7
    assert data["sentiment"]["latest"] == -0.5
    assert data["influence"]["percentile"] == 0.95
    assert [e["id"] for e in data["evidence"]] == ["p1", "p2"]  # most negative first
    assert all(len(e["text"]) <= RULES.evidence_text_chars for e in data["evidence"])
    assert data["evidence"][0]["text"].endswith("…")
    assert data["reasons"]
    assert fired[0].view.fields["last_alert_id"] == fired[0].alert_id.encode()


def test_cooldown_suppresses_repeats_until_escalation_or_expiry() -> None:
    state = CustomerState()
    state.on_post(sp(1, -0.4, 0), POLICY, DETECTED)
    assert len(alerts_of(state.on_post(sp(2, -0.4, 5), POLICY, DETECTED))) == 1  # warning
    assert alerts_of(state.on_post(sp(3, -0.4, 10), POLICY, DETECTED)) == []  # cooldown
    # the customer's reach jumps into the top percentile: critical, despite the cooldown
    escalated = alerts_of(state.on_post(sp(4, -0.4, 15, infl(0.995)), POLICY, DETECTED))
    assert [orjson.loads(a.payload)["data"]["severity"] for a in escalated] == ["critical"]
    assert alerts_of(state.on_post(sp(5, -0.99, 20, infl(0.995)), POLICY, DETECTED)) == []
    # 6 h later (event time) the incident has gone quiet and a new spell opens a new one
    quiet = state.on_post(sp(6, -0.9, 400), POLICY, DETECTED)
    assert [orjson.loads(a.payload)["data"]["resolved_reason"] for a in quiet] == ["quiet"]
    again = alerts_of(state.on_post(sp(7, -0.9, 410), POLICY, DETECTED))
    assert [orjson.loads(a.payload)["data"]["incident_seq"] for a in again] == [2]


def test_brand_accounts_are_never_alerted() -> None:
    state = CustomerState()
    big = infl(0.999, 1_000_000)
    outs = [state.on_post(sp(i, -0.9, i, big, is_brand=True), POLICY, DETECTED) for i in range(5)]
    assert outs == [[]] * 5
    view = state.view("twitter:c1", POLICY)
    assert isinstance(view, CustomerView)
    assert orjson.loads(view.fields["sentiment"])["posts"] == 5


def test_one_bad_post_then_good_ones_does_not_alert() -> None:
    state = CustomerState()
    big = infl(0.99, 50_000)
    fired = []
    for i, c in enumerate([-0.8, 0.6, 0.7, 0.5]):
        fired += alerts_of(state.on_post(sp(i, c, i * 10, big), POLICY, DETECTED))
    assert fired == []


def test_negative_posts_far_apart_do_not_alert() -> None:
    state = CustomerState()
    big = infl(0.99, 50_000)
    fired = []
    for i in range(4):
        fired += alerts_of(state.on_post(sp(i, -0.9, i * 7 * 60, big), POLICY, DETECTED))
    assert fired == []


def test_withdrawn_post_no_longer_counts_or_shows() -> None:
    state = CustomerState()
    state.on_post(sp(1, -0.9, 0), POLICY, DETECTED)
    assert state.on_withdrawal(Withdrawal("p1", "twitter:c1", T0)) is True
    assert state.on_withdrawal(Withdrawal("p1", "twitter:c1", T0)) is False
    assert orjson.loads(state.view("twitter:c1", POLICY).fields["sentiment"])["posts"] == 0
    assert alerts_of(state.on_post(sp(2, -0.9, 5), POLICY, DETECTED)) == []  # only one post now
    fired = alerts_of(state.on_post(sp(3, -0.9, 6), POLICY, DETECTED))
    assert [e["id"] for e in orjson.loads(fired[0].payload)["data"]["evidence"]] == ["p2", "p3"]


def test_late_post_is_placed_and_can_trigger() -> None:
    state = CustomerState()
    state.on_post(sp(1, -0.8, 10), POLICY, DETECTED)
    fired = alerts_of(state.on_post(sp(2, -0.8, 9), POLICY, DETECTED))  # 60 s late
    assert len(fired) == 1
    assert orjson.loads(fired[0].payload)["data"]["sentiment"]["posts"] == 2


def test_idle_state_can_be_dropped_and_pickles_small() -> None:
    state = CustomerState()
    state.on_post(sp(1, -0.8, 0), POLICY, DETECTED)
    assert not state.is_idle(POLICY)
    assert state.advance(state.window.now + 7 * 3600, POLICY, DETECTED) == []
    assert state.is_idle(POLICY)
    blob = pickle.dumps(state)
    assert len(blob) < 2_000
    assert pickle.loads(blob).window.now == state.window.now
