"""AlertSink and DeadLetterSink against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from redis_helpers import drain_channel

from config.runtime import RedisSettings
from connectors.embedded_redis import EmbeddedRedis
from connectors.redis_client import alert_id_key, alerts_key, customer_key, dlq_ids_key, dlq_key
from connectors.redis_errors import NonTransientRedisError, OutageBudgetExceeded
from connectors.redis_sinks import (
    AlertSink,
    AlertSinkPartition,
    DeadLetterSink,
    DeadLetterSinkPartition,
    _plan,
)
from operators.events import RAW_EXCERPT_BYTES, DeadLetter
from operators.records import AlertRecord, CustomerView

END = b"__end_of_test__"


def view(customer_id: str, **fields: str) -> CustomerView:
    return CustomerView(customer_id, {k: v.encode() for k, v in fields.items()})


def alert(alert_id: str, customer_id: str = "x:1", **fields: str) -> AlertRecord:
    payload = orjson.dumps(
        {
            "specversion": "1.0",
            "id": alert_id,
            "type": "com.example.unhappy-influencer",
            "source": "urn:test",
            "subject": customer_id,
            "data": {"mean_compound": -0.7},
        }
    )
    return AlertRecord(alert_id, customer_id, payload, view(customer_id, **fields))


@pytest.fixture
def settings(redis_prefix: str) -> RedisSettings:
    return RedisSettings(prefix=redis_prefix, view_ttl_seconds=3600, alert_id_ttl_seconds=7200)


@pytest.fixture
def alert_part(redis_url: str, settings: RedisSettings) -> Iterator[AlertSinkPartition]:
    part = AlertSink(redis_url, settings).build("out", 0, 1)
    yield part
    part.close()


def test_alert_goes_to_stream_channel_and_customer_hash(
    alert_part: AlertSinkPartition,
    alerts_subscriber: redis.client.PubSub,
    redis_client: redis.Redis,
    settings: RedisSettings,
) -> None:
    a = alert("a-1", "x:42", mean="-0.71", posts="3")
    alert_part.write_batch([a])

    entries = redis_client.xrange(alerts_key(settings.prefix))
    assert [fields for _, fields in entries] == [{b"alert": a.payload, b"id": b"a-1"}]
    assert drain_channel(alerts_subscriber, redis_client, alerts_key(settings.prefix)) == [
        a.payload
    ]

    hkey = customer_key(settings.prefix, "x:42")
    assert redis_client.hgetall(hkey) == {
        b"mean": b"-0.71",
        b"posts": b"3",
        b"last_alert": a.payload,
        b"last_alert_id": b"a-1",
    }
    assert 0 < redis_client.ttl(hkey) <= settings.view_ttl_seconds
    id_ttl = redis_client.ttl(alert_id_key(settings.prefix, "a-1"))
    assert settings.view_ttl_seconds < id_ttl <= settings.alert_id_ttl_seconds
    assert (alert_part.stats.alerts_new, alert_part.stats.alerts_duplicate) == (1, 0)


def test_same_alert_is_delivered_once_within_and_across_batches(
    redis_url: str,
    alert_part: AlertSinkPartition,
    alerts_subscriber: redis.client.PubSub,
    redis_client: redis.Redis,
    settings: RedisSettings,
) -> None:
    a, b = alert("dup-1", "x:1"), alert("other-2", "x:2")
    alert_part.write_batch([a, a, b])
    alert_part.write_batch([a])
    # A recovered flow replays through a new partition (new connection).
    again = AlertSink(redis_url, settings).build("out", 0, 1)
    again.write_batch([b, a])
    again.close()

    ids = [f[b"id"] for _, f in redis_client.xrange(alerts_key(settings.prefix))]
    assert ids == [b"dup-1", b"other-2"]
    assert drain_channel(alerts_subscriber, redis_client, alerts_key(settings.prefix)) == [
        a.payload,
        b.payload,
    ]
    assert (alert_part.stats.alerts_new, alert_part.stats.alerts_duplicate) == (2, 2)
    assert (again.stats.alerts_new, again.stats.alerts_duplicate) == (0, 2)


@pytest.mark.parametrize(
    ("batch", "expected", "views_written"),
    [
        pytest.param(
            [view("c", s="1", n="1"), view("c", s="2"), view("c", s="3")],
            {b"s": b"3", b"n": b"1"},
            1,
            id="last-view-wins-field-by-field",
        ),
        pytest.param(
            [view("c", s="1"), alert("al", "c", s="2"), view("c", s="3")],
            {b"s": b"3", b"last_alert_id": b"al"},
            2,
            id="view-after-alert-wins",
        ),
        pytest.param(
            [view("c", s="3"), alert("al", "c", s="2")],
            {b"s": b"2", b"last_alert_id": b"al"},
            1,
            id="alert-after-view-wins",
        ),
    ],
)
def test_views_are_coalesced_in_order(
    alert_part: AlertSinkPartition,
    redis_client: redis.Redis,
    settings: RedisSettings,
    batch: Sequence[AlertRecord | CustomerView],
    expected: dict[bytes, bytes],
    views_written: int,
) -> None:
    alert_part.write_batch(list(batch))
    stored = redis_client.hgetall(customer_key(settings.prefix, "c"))
    stored.pop(b"last_alert", None)
    assert stored == expected
    assert alert_part.stats.views_written == views_written
    assert 0 < redis_client.ttl(customer_key(settings.prefix, "c")) <= settings.view_ttl_seconds


def test_plan_merges_only_consecutive_views_of_a_customer() -> None:
    a = alert("al", "c", s="2")
    ops = _plan([view("c", s="1"), view("d", t="1"), view("c", u="1"), a, view("c", s="3")])
    assert ops == [view("c", s="1", u="1"), a, view("d", t="1"), view("c", s="3")]
    with pytest.raises(TypeError):
        _plan(["not a record"])  # type: ignore[list-item]


def test_alerts_stream_is_trimmed_to_about_maxlen(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    settings = RedisSettings(prefix=redis_prefix, alerts_maxlen=10)
    part = AlertSink(redis_url, settings).build("out", 0, 1)
    part.write_batch([alert(f"id-{i}", f"x:{i % 7}") for i in range(1000)])
    part.close()
    length = redis_client.xlen(alerts_key(redis_prefix))
    # MAXLEN ~ trims whole stream nodes only: at least maxlen stay, far fewer than written.
    assert 10 <= length < 1000
    assert part.stats.alerts_new == 1000


def test_script_flushed_on_server_is_reloaded(
    alert_part: AlertSinkPartition, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    alert_part.write_batch([alert("before", "x:1")])
    redis_client.script_flush()
    alert_part.write_batch([view("x:1", s="1"), alert("after", "x:1", s="2"), view("x:1", s="3")])
    ids = [f[b"id"] for _, f in redis_client.xrange(alerts_key(settings.prefix))]
    assert ids == [b"before", b"after"]
    assert redis_client.hget(customer_key(settings.prefix, "x:1"), "s") == b"3"
    assert alert_part.stats.alerts_new == 2


def test_failed_write_raises_instead_of_dropping(
    alert_part: AlertSinkPartition, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    hkey = customer_key(settings.prefix, "x:9")
    redis_client.set(hkey, b"not a hash")
    with pytest.raises(NonTransientRedisError) as raised:
        alert_part.write_batch([view("x:9", s="1")])
    # the command, the key and what is wrong with it, in one line
    assert str(raised.value).startswith("Redis refused HSET during alert delivery: ")
    assert "WRONGTYPE" in str(raised.value)
    assert f"keys: {hkey} (a string)" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unreachable_redis_fails_past_the_outage_budget() -> None:
    settings = RedisSettings(
        prefix="test:gone:", outage_budget_seconds=0.5, connect_timeout_seconds=0.5
    )
    with EmbeddedRedis() as embedded:
        part = AlertSink(embedded.url, settings).build("out", 0, 1)
        dlq = DeadLetterSink(embedded.url, settings).build("dlq", 0, 1)
    with pytest.raises(OutageBudgetExceeded, match=r"past redis.outage_budget_seconds = 0.5"):
        part.write_batch([alert("lost", "x:1")])
    with pytest.raises(OutageBudgetExceeded, match="Connection refused"):
        dlq.write_batch([DeadLetter("bad", b"{", datetime.now(UTC))])
    part.close()
    dlq.close()


def test_dead_letters_go_to_the_dlq_stream(
    redis_url: str, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    big = b"x" * (RAW_EXCERPT_BYTES + 100)
    letters = [
        DeadLetter("not JSON: eof", b"{oops", at, "jsonl:feed.jsonl:3"),
        DeadLetter("line too large", big, at),
    ]
    part: DeadLetterSinkPartition = DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    part.write_batch(letters)
    part.close()
    entries = [f for _, f in redis_client.xrange(dlq_key(settings.prefix))]
    assert entries == [
        {
            b"reason": b"not JSON: eof",
            b"raw": b"{oops",
            b"at": b"2026-01-02T03:04:05+00:00",
            b"source": b"jsonl:feed.jsonl:3",
        },
        {
            b"reason": b"line too large",
            b"raw": b"x" * RAW_EXCERPT_BYTES,
            b"at": b"2026-01-02T03:04:05+00:00",
            b"source": b"",
        },
    ]
    assert part.stats.dead_letters == 2


def test_dlq_is_trimmed_to_about_maxlen(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    settings = RedisSettings(prefix=redis_prefix, dlq_maxlen=5)
    part = DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    at = datetime.now(UTC)
    part.write_batch([DeadLetter(f"bad {i}", b"?", at) for i in range(600)])
    part.close()
    assert 5 <= redis_client.xlen(dlq_key(redis_prefix)) < 600
    # the remembered dead-letter ids are as bounded as the stream
    assert redis_client.zcard(dlq_ids_key(redis_prefix)) == 5


def test_bytewax_flow_delivers_through_alert_sink(
    redis_url: str, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    items: list[AlertRecord | CustomerView] = [
        view("x:1", s="1"),
        alert("e2e-1", "x:1", s="2"),
        alert("e2e-1", "x:1", s="2"),
        alert("e2e-2", "x:2", s="5"),
        view("x:3", s="9"),
    ]

    def run() -> AlertSink:
        flow = Dataflow("alert_sink_e2e")
        stream = op.input("inp", flow, TestingSource(items, batch_size=2))
        sink = AlertSink(redis_url, settings)
        op.output("out", stream, sink)
        run_main(flow)
        return sink

    first = run()
    second = run()  # a full replay: every alert is a duplicate now
    ids = [f[b"id"] for _, f in redis_client.xrange(alerts_key(settings.prefix))]
    assert ids == [b"e2e-1", b"e2e-2"]
    assert (first.stats.alerts_new, first.stats.alerts_duplicate) == (2, 1)
    assert (second.stats.alerts_new, second.stats.alerts_duplicate) == (0, 3)
    assert redis_client.hget(customer_key(settings.prefix, "x:3"), "s") == b"9"
