"""Delivering lifecycle events to a real Redis: atomic script, team channels, incident records,
history, silences, and people's actions against the dataflow's own incident state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
from redis_helpers import confirm_subscribed, drain_messages, stream_alerts

from config.detection import RuleSettings, WindowSettings
from config.notify import RouteSettings
from config.runtime import RedisSettings
from config.settings import Settings
from connectors import incident_store as store
from connectors.incident_keys import (
    customer_incidents_key,
    customer_silences_key,
    incident_key,
    incidents_index_key,
    open_incidents_key,
)
from connectors.redis_client import alert_id_key, alerts_key, customer_key
from connectors.redis_errors import NonTransientRedisError
from connectors.redis_sinks import AlertSink, AlertSinkPartition
from operators.customer import CustomerPolicy, CustomerState
from operators.incident_events import NotActionable
from operators.records import AlertRecord, Influence, ScoredPost, Sentiment
from operators.routing import Router

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
DETECTED = datetime(2026, 11, 26, tzinfo=UTC)
ROUTER = Router.from_settings(
    [
        RouteSettings(team="vip", min_followers=10_000, **{"continue": True}),
        RouteSettings(name="money", team="billing", any_words=["refund"]),
    ],
    "service",
)
POLICY = CustomerPolicy(WindowSettings(), RuleSettings(), "urn:test", router=ROUTER)


class Conversation:
    """One customer's state driven post by post: the lifecycle events it produces."""

    def __init__(self, customer: str = "twitter:ann", followers: int = 50_000) -> None:
        self.customer = customer
        self.followers = followers
        self.state = CustomerState()
        self.n = 0

    def post(self, minute: float, compound: float, pct: float = 0.95) -> list[AlertRecord]:
        self.n += 1
        influence = Influence(pct, pct, self.followers, 0.001, 3, 500)
        sp = ScoredPost(
            f"{self.customer}-{self.n}",
            self.customer,
            "twitter",
            self.customer.split(":")[1],
            T0 + timedelta(minutes=minute),
            "I want a refund, this is awful",
            Sentiment(compound, 0.0, 0.5, 0.5),
            influence,
        )
        return self.state.on_post(sp, POLICY, DETECTED)

    def advance(self, minute: float) -> list[AlertRecord]:
        return self.state.advance((T0 + timedelta(minutes=minute)).timestamp(), POLICY, DETECTED)


@pytest.fixture
def settings(redis_prefix: str) -> RedisSettings:
    return RedisSettings(prefix=redis_prefix)


@pytest.fixture
def full_settings(redis_url: str, settings: RedisSettings) -> Settings:
    return Settings(redis=settings).with_redis_url(redis_url)


@pytest.fixture
def sink(redis_url: str, settings: RedisSettings) -> Iterator[AlertSinkPartition]:
    part = AlertSink(redis_url, settings).build("out", 0, 1)
    yield part
    part.close()


@pytest.fixture
def channels(redis_client: redis.Redis, redis_prefix: str) -> Iterator[redis.client.PubSub]:
    """Subscribed to the main and every team channel, `{prefix}alerts*`."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(f"{redis_prefix}alerts*")
    confirm_subscribed(pubsub, "psubscribe")
    yield pubsub
    pubsub.close()


def published(pubsub: redis.client.PubSub, client: redis.Redis, prefix: str) -> list[tuple]:
    """(channel suffix, event id) of everything published so far, in order."""
    return [
        (channel.decode()[len(prefix) :], orjson.loads(data)["id"])
        for channel, data in drain_messages(pubsub, client, alerts_key(prefix))
    ]


def open_spell(conv: Conversation, compound: float = -0.9) -> AlertRecord:
    conv.post(0, compound)
    [firing] = conv.post(10, compound)
    return firing


def test_firing_goes_to_stream_channels_record_history_and_view(
    sink: AlertSinkPartition,
    channels: redis.client.PubSub,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    from sense_respond.metrics import REGISTRY

    def alerts_total() -> float:
        labels = {"severity": "critical"}
        return REGISTRY.get_sample_value("sense_respond_alerts_total", labels) or 0.0

    before = alerts_total()
    firing = open_spell(Conversation())
    sink.write_batch([firing])
    sink.write_batch([firing])  # a replay is not counted again
    assert alerts_total() == before + 1
    [event] = stream_alerts(redis_client, redis_prefix)
    assert event["id"] == firing.alert_id
    data = event["data"]
    assert data["routing"]["team"] == "vip"
    assert data["routing"]["teams"] == ["vip", "billing"]
    assert published(channels, redis_client, redis_prefix) == [
        ("alerts", firing.alert_id),
        ("alerts:team:vip", firing.alert_id),
        ("alerts:team:billing", firing.alert_id),
    ]
    iid = data["incident_id"]
    record = store.get_incident(redis_client, redis_prefix, iid)
    assert record["status"] == "firing"
    assert (record["team"], record["teams"]) == ("vip", ["vip", "billing"])
    assert record["customer_id"] == "twitter:ann"
    assert record["opened_at"] == "2026-03-02T08:10:00Z"
    assert record["firings"] == "1" and record["pushed"] == "1"
    assert [a["action"] for a in record["activity"]] == ["opened"]
    hist = customer_incidents_key(redis_prefix, "twitter:ann")
    assert [i.decode() for i in redis_client.zrange(hist, 0, -1)] == [iid]
    assert redis_client.sismember(open_incidents_key(redis_prefix), iid)
    assert redis_client.zscore(incidents_index_key(redis_prefix), iid) is not None
    view = redis_client.hgetall(customer_key(redis_prefix, "twitter:ann"))
    incident = orjson.loads(view[b"incident"])
    assert {k: incident[k] for k in ("id", "status", "team", "severity", "opened_at")} == {
        "id": iid,
        "status": "firing",
        "team": "vip",
        "severity": "critical",
        "opened_at": "2026-03-02T08:10:00Z",
    }
    assert incident["acknowledged_by"] is None and incident["notes"] == []
    assert view[b"last_alert_id"] == firing.alert_id.encode()
    assert redis_client.ttl(incident_key(redis_prefix, iid)) > 0
    assert (sink.stats.alerts_new, sink.stats.alerts_duplicate) == (1, 1)


WRONG_KEYS = {
    "marker": lambda p, e: alert_id_key(p, e.alert_id),
    "stream": lambda p, e: alerts_key(p),
    "view": lambda p, e: customer_key(p, e.customer_id),
    "record": lambda p, e: incident_key(p, e.incident.incident_id),
    "history": lambda p, e: customer_incidents_key(p, e.customer_id),
    "index": lambda p, e: incidents_index_key(p),
    "open set": lambda p, e: open_incidents_key(p),
    "silences": lambda p, e: customer_silences_key(p, e.customer_id),
}


@pytest.mark.parametrize("which", WRONG_KEYS)
def test_wrongtype_on_any_key_writes_nothing_and_a_replay_delivers_once(
    which: str,
    sink: AlertSinkPartition,
    channels: redis.client.PubSub,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    firing = open_spell(Conversation())
    bad = WRONG_KEYS[which](redis_prefix, firing)
    if which == "marker":
        redis_client.hset(bad, "x", "1")
    else:
        redis_client.set(bad, b"not the right type")
    with pytest.raises(NonTransientRedisError, match=f"WRONGTYPE key {bad} holds a"):
        sink.write_batch([firing])
    marker = alert_id_key(redis_prefix, firing.alert_id)
    if which != "marker":
        assert not redis_client.exists(marker)
        assert redis_client.type(alerts_key(redis_prefix)) in (b"none", b"string")
    assert published(channels, redis_client, redis_prefix) == []
    for name, key_of in WRONG_KEYS.items():
        if name not in (which, "marker"):
            assert not redis_client.exists(key_of(redis_prefix, firing)), name

    redis_client.delete(bad)  # the operator fixes the key; the flow replays the batch
    sink.write_batch([firing])
    sink.write_batch([firing])
    assert [e["id"] for e in stream_alerts(redis_client, redis_prefix)] == [firing.alert_id]
    assert [c for c, _ in published(channels, redis_client, redis_prefix)] == [
        "alerts",
        "alerts:team:vip",
        "alerts:team:billing",
    ]
    assert redis_client.exists(marker)
    assert (sink.stats.alerts_new, sink.stats.alerts_duplicate) == (1, 1)


def test_silenced_customer_is_recorded_but_not_pushed_to_teams(
    sink: AlertSinkPartition,
    channels: redis.client.PubSub,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    now = datetime.now(UTC)
    silence = store.add_silence(
        redis_client, redis_prefix, "twitter:ann", timedelta(hours=24), "zoe", "talking to her", now
    )
    ann, bob = Conversation("twitter:ann"), Conversation("twitter:bob")
    a, b = open_spell(ann, -0.5), open_spell(bob)
    sink.write_batch([a, b])
    events = {e["data"]["customer_id"]: e for e in stream_alerts(redis_client, redis_prefix)}
    assert events["twitter:ann"]["data"]["silenced_by"] == silence["id"]
    assert events["twitter:ann"]["data"]["silence"]["by"] == "zoe"
    assert "silenced_by" not in events["twitter:bob"]["data"]
    assert events["twitter:ann"]["id"] == a.alert_id  # the id does not change
    assert published(channels, redis_client, redis_prefix) == [
        ("alerts", a.alert_id),
        ("alerts", b.alert_id),
        ("alerts:team:vip", b.alert_id),
        ("alerts:team:billing", b.alert_id),
    ]
    rec = store.get_incident(redis_client, redis_prefix, a.incident.incident_id)
    assert rec["silenced_by"] == silence["id"] and "pushed" not in rec
    assert sink.stats.alerts_silenced == 1
    assert [s["id"] for s in store.list_silences(redis_client, redis_prefix, now)] == [
        silence["id"]
    ]

    # expired: the next firing (an escalation) is pushed again
    store.expire_silence(redis_client, redis_prefix, silence["id"])
    assert store.list_silences(redis_client, redis_prefix, now) == []
    [escalated] = ann.post(20, -0.5, pct=0.999)
    sink.write_batch([escalated])
    assert ("alerts:team:vip", escalated.alert_id) in published(
        channels, redis_client, redis_prefix
    )


def test_silence_never_holds_back_the_end_of_a_pushed_incident(
    sink: AlertSinkPartition,
    channels: redis.client.PubSub,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    ann = Conversation()
    sink.write_batch([open_spell(ann)])
    store.add_silence(
        redis_client, redis_prefix, "twitter:ann", timedelta(hours=1), "zoe", "x", datetime.now(UTC)
    )
    published(channels, redis_client, redis_prefix)
    [resolved] = ann.advance(24 * 60)
    sink.write_batch([resolved])
    assert "silenced_by" not in stream_alerts(redis_client, redis_prefix)[-1]["data"]
    assert ("alerts:team:vip", resolved.alert_id) in published(channels, redis_client, redis_prefix)


def test_manual_resolve_suppresses_the_dataflows_later_events_of_that_incident(
    sink: AlertSinkPartition,
    full_settings: Settings,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    ann = Conversation(followers=20_000)
    ann.post(0, -0.5)
    [firing] = ann.post(10, -0.5, pct=0.95)  # warning
    sink.write_batch([firing])
    iid = firing.incident.incident_id
    done = store.act(redis_client, full_settings, iid, "resolved", "zoe", "refunded", DETECTED)
    assert done.outcome == "delivered"
    assert done.record["status"] == "resolved" and done.record["resolved_by"] == "zoe"
    with pytest.raises(NotActionable, match=r"already resolved \(manual by zoe"):
        store.act(redis_client, full_settings, iid, "acknowledged", "max", None, DETECTED)
    # the dataflow still sees the spell: its repeat after the cooldown is suppressed ...
    repeats = [r for m in range(40, 400, 30) for r in ann.post(m, -0.5, pct=0.95)]
    assert [orjson.loads(r.payload)["data"]["transition"] for r in repeats] == ["repeat"]
    sink.write_batch(repeats)
    assert [e["type"].rsplit(".", 1)[-1] for e in stream_alerts(redis_client, redis_prefix)] == [
        "unhappy_influential_customer",
        "resolved",
    ]
    assert sink.stats.alerts_suppressed == 1
    # ... but an escalation is news: the incident reopens (same id), and resolves later
    [escalated] = ann.post(400, -0.95, pct=0.999)
    sink.write_batch([escalated])
    rec = store.get_incident(redis_client, redis_prefix, iid)
    assert (rec["status"], rec["reopened"], rec.get("resolved_by")) == ("firing", "1", None)
    [resolved] = ann.advance(24 * 60)
    sink.write_batch([resolved])
    rec = store.get_incident(redis_client, redis_prefix, iid)
    assert (rec["status"], rec["resolved_reason"]) == ("resolved", "quiet")
    kinds = [
        (e["data"]["status"], e["data"].get("resolved_reason"))
        for e in stream_alerts(redis_client, redis_prefix)
    ]
    assert kinds == [
        ("firing", None),
        ("resolved", "manual"),
        ("firing", None),
        ("resolved", "quiet"),
    ]
    assert not redis_client.sismember(open_incidents_key(redis_prefix), iid)


def test_ack_keeps_the_incident_acknowledged_through_repeats(
    sink: AlertSinkPartition, full_settings: Settings, redis_client: redis.Redis, redis_prefix: str
) -> None:
    ann = Conversation()
    firing = open_spell(ann)
    sink.write_batch([firing])
    iid = firing.incident.incident_id
    first = store.act(redis_client, full_settings, iid, "acknowledged", "zoe", "on it", DETECTED)
    assert first.outcome == "delivered"
    with pytest.raises(NotActionable, match="already acknowledged by zoe"):
        store.act(redis_client, full_settings, iid, "acknowledged", "max", None, DETECTED)
    repeats = [r for m in range(40, 400, 30) for r in ann.post(m, -0.9)]
    sink.write_batch(repeats)
    rec = store.get_incident(redis_client, redis_prefix, iid)
    assert rec["status"] == "acknowledged" and rec["firings"] == "2"
    assert rec["notes"] == [{"at": "2026-11-26T00:00:00Z", "by": "zoe", "text": "on it"}]
    view = orjson.loads(redis_client.hget(customer_key(redis_prefix, "twitter:ann"), "incident"))
    assert (view["status"], view["acknowledged_by"]) == ("acknowledged", "zoe")
    assert view["acknowledged_at"] == "2026-11-26T00:00:00Z"
    ack = stream_alerts(redis_client, redis_prefix)[1]
    assert ack["type"] == "sense_respond.unhappy_influential_customer.acknowledged"
    assert ack["data"]["acknowledged_by"] == "zoe"
    assert ack["data"]["routing"]["teams"] == ["vip", "billing"]


def test_view_shows_the_newest_incident(
    sink: AlertSinkPartition, full_settings: Settings, redis_client: redis.Redis, redis_prefix: str
) -> None:
    ann = Conversation()
    first = open_spell(ann)
    [resolved] = ann.advance(24 * 60)
    ann.post(24 * 60 + 1, -0.9)
    [second] = ann.post(24 * 60 + 2, -0.9)
    sink.write_batch([first, resolved, second])
    view = orjson.loads(redis_client.hget(customer_key(redis_prefix, "twitter:ann"), "incident"))
    assert view["id"] == second.incident.incident_id != first.incident.incident_id
    shown = store.customer_view(redis_client, redis_prefix, "twitter:ann")
    assert shown is not None
    assert [i["id"] for i in shown["incidents"]] == [
        second.incident.incident_id,
        first.incident.incident_id,
    ]
    assert [i["status"] for i in shown["incidents"]] == ["firing", "resolved"]
    listed = store.list_incidents(redis_client, redis_prefix, open_only=True)
    assert [i["id"] for i in listed] == [second.incident.incident_id]
    assert store.list_incidents(redis_client, redis_prefix, team="billing")
    assert store.list_incidents(redis_client, redis_prefix, team="nobody") == []
    prefix_id = second.incident.incident_id[:8]
    assert store.resolve_id(redis_client, redis_prefix, prefix_id) == second.incident.incident_id


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("2d", 172800), ("1h30m", 5400), ("1w", 604800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert store.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "1h 30x", "0m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        store.parse_duration(text)


def test_the_dataflows_resolution_after_a_manual_one_is_not_pushed_again(
    sink: AlertSinkPartition,
    full_settings: Settings,
    channels: redis.client.PubSub,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    ann = Conversation()
    firing = open_spell(ann)
    sink.write_batch([firing])
    iid = firing.incident.incident_id
    store.act(redis_client, full_settings, iid, "resolved", "zoe", None, DETECTED)
    published(channels, redis_client, redis_prefix)
    [own] = ann.advance(24 * 60)  # the dataflow's own view: quiet
    sink.write_batch([own])
    sink.write_batch([own])
    assert published(channels, redis_client, redis_prefix) == []
    assert [e["data"]["status"] for e in stream_alerts(redis_client, redis_prefix)] == [
        "firing",
        "resolved",
    ]
    rec = store.get_incident(redis_client, redis_prefix, iid)
    assert (rec["resolved_reason"], rec["resolved_by"], rec["suppressed"]) == ("manual", "zoe", "1")
    assert (sink.stats.alerts_suppressed, sink.stats.alerts_duplicate) == (1, 1)
    # and the customer's next spell is a new incident, delivered
    ann.post(24 * 60 + 1, -0.9)
    [second] = ann.post(24 * 60 + 2, -0.9)
    sink.write_batch([second])
    assert second.incident.incident_id != iid
    assert ("alerts:team:vip", second.alert_id) in published(channels, redis_client, redis_prefix)


@pytest.mark.parametrize("key_of", [incidents_index_key, open_incidents_key])
def test_the_fixed_incident_keys_are_checked_at_start(
    key_of, redis_url: str, settings: RedisSettings, redis_client: redis.Redis
) -> None:
    redis_client.set(key_of(settings.prefix), b"in the way")
    with pytest.raises(NonTransientRedisError, match=key_of(settings.prefix)):
        AlertSink(redis_url, settings).build("out", 0, 1)
