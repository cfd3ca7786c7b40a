"""The incident lifecycle in the customer state: open, escalate, repeat, recover, quiet, spell."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from config.detection import RuleSettings, WindowSettings
from config.notify import RouteSettings
from operators.customer import CustomerPolicy, CustomerState
from operators.enrich import PostInfluence
from operators.incident_events import (
    ACKNOWLEDGED_TYPE,
    RESOLVED_TYPE,
    NotActionable,
    build_human_action,
)
from operators.incidents import (
    IncidentPolicy,
    IncidentState,
    check_instants,
    incident_id,
    lifecycle_event_id,
)
from operators.records import AlertRecord, Influence, ScoredPost, Sentiment
from operators.routing import Router
from operators.rules import ALERT_TYPE
from operators.window import WindowSummary

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
DETECTED = datetime(2026, 11, 26, tzinfo=UTC)
CUSTOMER = "twitter:c1"
POLICY = CustomerPolicy(WindowSettings(), RuleSettings(), "urn:test")


def infl(percentile: float = 0.95) -> Influence:
    return Influence(percentile, percentile, 500, 0.001, 3, 500)


def post(i: int, minute: float, compound: float, percentile: float = 0.95) -> ScoredPost:
    return ScoredPost(
        event_id=f"p{i}",
        customer_id=CUSTOMER,
        platform="twitter",
        handle="cara",
        created_at=T0 + timedelta(minutes=minute),
        text=f"post {i}: refund please",
        sentiment=Sentiment(compound, 0.0, 0.5, 0.5),
        influence=infl(percentile),
    )


def summarise(record: AlertRecord) -> tuple:
    """(status, incident seq, transition or resolved reason, event minute) of one event."""
    event = orjson.loads(record.payload)
    data = event["data"]
    minute = (datetime.fromisoformat(data["event_time"]) - T0).total_seconds() / 60
    detail = data.get("transition") or data.get("resolved_reason")
    seq = data["incident_seq"]
    assert data["incident_id"] == incident_id(CUSTOMER, seq)
    assert event["type"] == {"firing": ALERT_TYPE, "resolved": RESOLVED_TYPE}[data["status"]]
    return (data["status"], seq, detail, round(minute, 3))


def drive(steps: list[tuple], policy: CustomerPolicy = POLICY) -> list[tuple]:
    state = CustomerState()
    out: list[AlertRecord] = []
    for i, step in enumerate(steps):
        if step[0] == "post":
            _, minute, compound, *pct = step
            out += state.on_post(post(i, minute, compound, *pct), policy, DETECTED)
        else:
            _, minute = step
            ts = (T0 + timedelta(minutes=minute)).timestamp()
            out += state.advance(ts, policy, DETECTED)
    return [summarise(r) for r in out]


BAD, WORSE, GOOD = -0.5, -0.9, 0.9

LIFECYCLES = {
    "first alert opens": (
        [("post", 0, BAD), ("post", 10, BAD)],
        [("firing", 1, "opened", 10)],
    ),
    "escalation fires at once, same incident": (
        [("post", 0, BAD), ("post", 10, BAD), ("post", 20, WORSE), ("post", 30, WORSE)],
        [("firing", 1, "opened", 10), ("firing", 1, "escalated", 20)],
    ),
    "reach escalation fires at once": (
        [("post", 0, BAD), ("post", 10, BAD), ("post", 20, BAD, 0.995)],
        [("firing", 1, "opened", 10), ("firing", 1, "escalated", 20)],
    ),
    "repeat only after the cooldown": (
        [("post", m, BAD) for m in range(0, 421, 30)],
        [("firing", 1, "opened", 30), ("firing", 1, "repeat", 390)],
    ),
    "recovered with posts since the alert": (
        [("post", 0, WORSE), ("post", 10, WORSE), ("post", 20, GOOD), ("post", 30, GOOD)],
        [
            ("firing", 1, "opened", 10),
            ("resolved", 1, "sentiment_recovered", 30),
        ],
    ),
    "recovered as the bad posts leave the window": (
        [
            ("post", 0, WORSE),
            ("post", 5, WORSE),
            ("post", 60, 0.3),
            ("post", 70, 0.3),
            ("advance", 400),
        ],
        [("firing", 1, "opened", 5), ("resolved", 1, "sentiment_recovered", 365)],
    ),
    "quiet on the watermark, at last post + window": (
        [("post", 0, WORSE), ("post", 10, WORSE), ("advance", 369), ("advance", 2000)],
        [("firing", 1, "opened", 10), ("resolved", 1, "quiet", 370)],
    ),
    "quiet on the customer's own next post": (
        [("post", 0, WORSE), ("post", 10, WORSE), ("post", 500, BAD)],
        [("firing", 1, "opened", 10), ("resolved", 1, "quiet", 370)],
    ),
    "a new spell after a resolution opens a new incident": (
        [
            ("post", 0, WORSE),
            ("post", 10, WORSE),
            ("post", 20, GOOD),
            ("post", 30, GOOD),
            ("post", 40, GOOD),
            ("post", 50, WORSE),
            ("post", 60, WORSE),
            ("post", 70, WORSE),
            ("post", 80, WORSE),
            ("post", 90, WORSE),  # the window's mean is down to -0.36 again
        ],
        [
            ("firing", 1, "opened", 10),
            ("resolved", 1, "sentiment_recovered", 30),
            ("firing", 2, "opened", 90),
        ],
    ),
    "nothing while happy": (
        [("post", m, GOOD) for m in range(0, 100, 10)] + [("advance", 5000)],
        [],
    ),
}


@pytest.mark.parametrize(("steps", "expected"), LIFECYCLES.values(), ids=LIFECYCLES.keys())
def test_lifecycle(steps: list[tuple], expected: list[tuple]) -> None:
    assert drive(steps) == expected


def test_resolution_does_not_depend_on_how_the_watermark_jumps() -> None:
    posts = [("post", 0, WORSE), ("post", 5, WORSE), ("post", 60, 0.3), ("post", 70, 0.3)]
    one_jump = drive([*posts, ("advance", 2000)])
    small_steps = drive(posts + [("advance", m) for m in range(71, 2000, 7)])
    assert (
        one_jump
        == small_steps
        == [
            ("firing", 1, "opened", 5),
            ("resolved", 1, "sentiment_recovered", 365),
        ]
    )


@pytest.mark.parametrize("look_at", [None, 369, 371, 400, 2000])
def test_a_look_never_overtakes_a_record_waiting_for_its_post(look_at: float | None) -> None:
    """The graph stage's half of the post at minute 365 is there, its post is still on its way,
    when the customer is looked at (`catch_up`, on the wall clock) with a watermark that other
    customers' records brought. The post must count as if nobody had looked: it keeps the
    incident from going quiet at 370."""
    state = CustomerState()
    out: list[AlertRecord] = []

    def arrive(i: int, minute: float, compound: float, post_first: bool = True) -> None:
        p = post(i, minute, compound)
        half = (p.created_at.timestamp(), PostInfluence(CUSTOMER, p.event_id, infl(), False))
        nonlocal out
        if post_first:
            out += state.receive_post(CUSTOMER, p, POLICY, DETECTED)
        out += state.receive(CUSTOMER, half, POLICY, DETECTED)
        if look_at is not None and not post_first:
            out += state.catch_up((T0 + timedelta(minutes=look_at)).timestamp(), POLICY, DETECTED)
        if not post_first:
            out += state.receive_post(CUSTOMER, p, POLICY, DETECTED)

    arrive(0, 0, WORSE)
    arrive(1, 10, WORSE)
    arrive(2, 365, WORSE, post_first=False)
    out += state.catch_up((T0 + timedelta(minutes=3000)).timestamp(), POLICY, DETECTED)
    assert [summarise(r) for r in out] == [
        ("firing", 1, "opened", 10),
        ("resolved", 1, "quiet", 725),
    ]


@pytest.mark.parametrize(
    ("quiet", "resolved_at"), [(None, 370), (1800, 40), (3600, 70)], ids=["window", "30m", "1h"]
)
def test_quiet_seconds_is_a_setting(quiet: int | None, resolved_at: float) -> None:
    policy = CustomerPolicy(WindowSettings(), RuleSettings(resolve_quiet_seconds=quiet), "urn:t")
    got = drive([("post", 0, WORSE), ("post", 10, WORSE), ("advance", 3000)], policy)
    assert got[-1] == ("resolved", 1, "quiet", resolved_at)


def test_resolve_mean_is_a_setting() -> None:
    strict = CustomerPolicy(WindowSettings(), RuleSettings(resolve_mean_compound=0.5), "urn:t")
    steps = [("post", 0, WORSE), ("post", 10, WORSE), ("post", 20, GOOD), ("post", 30, GOOD)]
    assert drive(steps, strict) == [("firing", 1, "opened", 10)]  # mean 0.0 < 0.5: still open


def test_incident_events_carry_routing_and_ids() -> None:
    router = Router.from_settings(
        [RouteSettings(team="billing", any_words=["refund"], name="money")], "service"
    )
    policy = CustomerPolicy(WindowSettings(), RuleSettings(), "urn:t", router=router)
    state = CustomerState()
    state.on_post(post(1, 0, WORSE), policy, DETECTED)
    [fired] = state.on_post(post(2, 10, WORSE), policy, DETECTED)
    data = orjson.loads(fired.payload)["data"]
    assert data["status"] == "firing"
    assert data["routing"]["team"] == "billing"
    assert data["routing"]["route"] == "money"
    assert data["routing"]["matched"] == ["words refund"]
    assert fired.incident is not None
    assert fired.incident.teams == ("billing",)
    assert fired.incident.incident_id == data["incident_id"] == incident_id(CUSTOMER, 1)
    [resolved] = state.advance((T0 + timedelta(hours=9)).timestamp(), policy, DETECTED)
    rdata = orjson.loads(resolved.payload)
    assert rdata["id"] == lifecycle_event_id(data["incident_id"], "resolved")
    assert rdata["data"]["routing"]["team"] == "billing"
    assert rdata["data"]["severity"] == "critical"
    for key in ("incident_id", "customer_id", "platform", "handle", "opened_at"):
        assert rdata["data"][key] == data[key]
    assert rdata["data"]["event_time"] == "2026-03-02T14:10:00Z"  # quiet: last post + 6 h
    assert resolved.incident is not None and resolved.incident.status == "resolved"


def test_same_input_gives_the_same_ids() -> None:
    steps = LIFECYCLES["a new spell after a resolution opens a new incident"][0]

    def ids() -> list[str]:
        state = CustomerState()
        out = []
        for i, (_, minute, compound) in enumerate(steps):
            out += state.on_post(post(i, minute, compound), POLICY, DETECTED)
        return [r.alert_id for r in out]

    first = ids()
    assert first == ids()
    assert len(set(first)) == 3


def test_purge_resolves_the_open_incident_and_keeps_the_counter() -> None:
    state = CustomerState()
    state.on_post(post(1, 0, WORSE), POLICY, DETECTED)
    state.on_post(post(2, 10, WORSE), POLICY, DETECTED)
    fresh, closing = state.purged(
        CUSTOMER, (T0 + timedelta(minutes=20)).timestamp(), POLICY, DETECTED
    )
    assert [summarise(r) for r in closing] == [("resolved", 1, "quiet", 20)]
    assert fresh.incidents.seq == 1 and fresh.incidents.open is None
    fresh.on_post(post(3, 30, WORSE), POLICY, DETECTED)
    [again] = fresh.on_post(post(4, 40, WORSE), POLICY, DETECTED)
    assert summarise(again) == ("firing", 2, "opened", 40)


def test_state_with_an_incident_is_kept_small_and_versioned() -> None:
    state = CustomerState()
    state.on_post(post(1, 0, WORSE), POLICY, DETECTED)
    state.on_post(post(2, 10, WORSE), POLICY, DETECTED)
    state.advance((T0 + timedelta(days=1)).timestamp(), POLICY, DETECTED)
    # the window is empty, but the incident counter must survive for the next incident's id
    assert not state.is_idle(POLICY)
    blob = pickle.dumps(state)
    assert len(blob) < 2_000
    back = pickle.loads(blob)
    assert back.incidents.seq == 1 and back.incidents.open is None
    old = IncidentState()
    with pytest.raises(ValueError, match="version"):
        old.__setstate__((99, 0, None, None))


@pytest.mark.parametrize(
    ("posts", "now", "to", "deadline", "expected"),
    [
        ([0.0, 10.0], 10.0, 100.0, None, []),
        ([0.0, 10.0], 10.0, 400.0, None, [360.0, 370.0]),
        ([0.0, 10.0], 10.0, 400.0, 370.0, [360.0, 370.0]),
        ([0.0, 10.0], 365.0, 400.0, 370.0, [370.0]),
        ([], 0.0, 50.0, 30.0, [30.0]),
    ],
)
def test_check_instants(posts, now, to, deadline, expected) -> None:
    policy = IncidentPolicy(21600, -0.05, 21600, 360.0)
    assert check_instants(posts, now, to, policy, deadline) == expected


RECORD = {
    "id": "inc-1",
    "customer_id": CUSTOMER,
    "platform": "twitter",
    "handle": "cara",
    "severity": "critical",
    "opened_at": "2026-03-02T08:10:00Z",
    "opened_ts": "1772439000.0",
    "routing": '{"team": "billing", "teams": ["billing", "exec"], "route": "money", "matched": []}',
    "team": "billing",
}


@pytest.mark.parametrize(
    ("status", "action", "error"),
    [
        ("firing", "acknowledged", None),
        ("firing", "resolved", None),
        ("acknowledged", "resolved", None),
        ("acknowledged", "acknowledged", "already acknowledged"),
        ("resolved", "acknowledged", "already resolved"),
        ("resolved", "resolved", "already resolved"),
    ],
)
def test_human_actions(status: str, action: str, error: str | None) -> None:
    record = RECORD | {"status": status, "acknowledged_by": "ann", "resolved_by": "bob"}
    if error:
        with pytest.raises(NotActionable, match=error):
            build_human_action(record, action, "zoe", None, DETECTED, "urn:t")  # type: ignore[arg-type]
        return
    event, update = build_human_action(record, action, "zoe", "called her", DETECTED, "urn:t")  # type: ignore[arg-type]
    again, _ = build_human_action(record, action, "zoe", "called her", DETECTED, "urn:t")  # type: ignore[arg-type]
    assert event["id"] == again["id"]  # the same command twice is one event
    assert event["type"] == {"acknowledged": ACKNOWLEDGED_TYPE, "resolved": RESOLVED_TYPE}[action]
    data = event["data"]
    assert data["status"] == action
    assert data["routing"]["teams"] == ["billing", "exec"]
    assert data["event_time"] == "2026-11-26T00:00:00Z"
    if action == "acknowledged":
        assert data["acknowledged_by"] == "zoe"
    else:
        assert (data["resolved_reason"], data["resolved_by"]) == ("manual", "zoe")
    assert update.teams == ("billing", "exec")
    assert orjson.loads(update.note or b"{}")["text"] == "called her"
    assert list(event)[-1] == "data"


def test_resolving_below_the_unhappy_mark_is_a_config_error() -> None:
    from pydantic import ValidationError

    from config.settings import Settings

    with pytest.raises(ValidationError, match="resolve_mean_compound must be >"):
        Settings(rules={"resolve_mean_compound": -0.5})


def test_an_unscored_post_keeps_the_incident_from_going_quiet_but_does_not_recover_it() -> None:
    policy = IncidentPolicy(21600, -0.05, 3600, 21600)
    state = IncidentState()
    state.posted(0.0)
    state.fire(CUSTOMER, "warning", Router((), "service").route(_facts()), 0.0, 0.0, policy)
    state.posted(3000.0, scored=False)
    assert state.quiet_deadline(policy) == 6600.0
    happy = WindowSummary(posts=2, mean=0.5, min=0.4, latest=0.6, window_seconds=21600)
    assert state.check(happy, 3000.0, policy) is None  # no scored post since the firing
    state.posted(3100.0)
    resolution = state.check(happy, 3100.0, policy)
    assert resolution is not None and resolution.reason == "sentiment_recovered"


def _facts():
    from operators.routing import RoutingFacts

    return RoutingFacts(("x",), "warning", "twitter", 1)


@pytest.mark.parametrize(("by", "note"), [("x" * 101, None), ("zoe", "n" * 2001), ("  ", None)])
def test_names_and_notes_are_bounded(by: str, note: str | None) -> None:
    with pytest.raises(NotActionable):
        build_human_action(RECORD | {"status": "firing"}, "acknowledged", by, note, DETECTED, "u")
