"""Around the Redis stream source, against a real Redis: its partitions and consumer names, the
worker count of a `bytewax.run` command line, the events and lag metrics, push_jsonl and
AlertReader."""

from __future__ import annotations

import os
from collections.abc import Callable

import orjson
import pytest
import redis
from redis_source_helpers import add

# The `key` and `build` fixtures (see redis_source_helpers).
from redis_source_helpers import build_fixture as build_fixture
from redis_source_helpers import key_fixture as key_fixture

from config.runtime import RedisSettings
from config.settings import Settings
from connectors.files import JsonlSource
from connectors.inputs import make_source
from connectors.placement import ClusterPlace
from connectors.redis_client import alerts_key
from connectors.redis_sinks import AlertSink
from connectors.redis_source import (
    AlertReader,
    RedisStreamSource,
    StreamPartition,
    default_consumer,
    push_jsonl,
)
from connectors.redis_streams import PROCESS_TOKEN
from operators.records import AlertRecord, CustomerView
from sense_respond import metrics

# ---------------------------------------------------------------------------------------------
# the source, metrics, inputs


def test_the_source_has_one_partition_per_worker_with_distinct_consumers(
    redis_url: str, redis_prefix: str, key: str
) -> None:
    source = RedisStreamSource(redis_url, key, RedisSettings(consumer="svc"), partitions=3)
    assert source.list_parts() == [f"{key}#0", f"{key}#1", f"{key}#2"]
    assert [source.consumer_name(i) for i in range(3)] == ["svc-0", "svc-1", "svc-2"]
    single = RedisStreamSource(redis_url, key, RedisSettings(), partitions=1)
    assert single.consumer_name(0) == default_consumer()
    assert default_consumer().endswith(f"-{os.getpid()}-{PROCESS_TOKEN}")
    resumed = source.build_part("in", f"{key}#1", {"v": 1, "consumer": "old", "done": [],
                                                     "last_seen": None})  # fmt: skip
    try:
        assert resumed.consumer == "old"  # a resumed partition keeps its PEL's name
    finally:
        resumed.close()
    with pytest.raises(ValueError, match="not a Redis stream position"):
        source.build_part("in", f"{key}#0", "5-0")  # type: ignore[arg-type]
    settings = Settings(redis=RedisSettings(prefix=redis_prefix))
    made = make_source(f"redis:{key}", settings, redis_url, workers=4)
    assert isinstance(made, RedisStreamSource) and made.partitions == 4
    assert isinstance(make_source("jsonl:-", settings, redis_url), JsonlSource)


@pytest.mark.parametrize(
    ("argv", "env", "workers"),
    [
        ([], {}, 1),
        (["-w", "3", "flows.pipeline:flow"], {}, 3),
        (["flows.pipeline:flow", "-w2", "-i", "0", "-a", "a:1;b:2"], {}, 4),
        ([], {"BYTEWAX_WORKERS_PER_PROCESS": "2", "BYTEWAX_ADDRESSES": "a:1;b:2;c:3"}, 6),
    ],
)
def test_bytewax_run_worker_count(argv: list[str], env: dict[str, str], workers: int) -> None:
    assert ClusterPlace.from_bytewax_args(argv, env).workers == workers


def test_events_and_lag_metrics(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    name = f"redis:{key}"
    part = build(input_name=name)
    add(redis_client, key, *[b"x"] * 7)
    part.next_batch()  # creates the group at 0 and reads everything
    events = metrics.REGISTRY.get_sample_value("sense_respond_events_total", {"input": name})
    assert events == 7
    add(redis_client, key, b"y", b"z")
    part._lag_due = 0.0
    part.snapshot()
    part._update_lag()
    assert metrics.REGISTRY.get_sample_value("sense_respond_source_lag", {"input": name}) == 2


def test_push_jsonl_adds_each_non_blank_line(redis_client: redis.Redis, key: str) -> None:
    lines = [b'{"n":1}\n', b"\n", '{"n":2}\r\n', b"   \n", b'{"n":3}']
    assert push_jsonl(redis_client, key, lines, chunk=2) == 3
    events = [f[b"event"] for _, f in redis_client.xrange(key)]
    assert events == [b'{"n":1}', b'{"n":2}', b'{"n":3}']


def test_push_jsonl_paces_and_trims(redis_client: redis.Redis, key: str) -> None:
    naps: list[float] = []
    lines = [b"{}"] * 600
    assert push_jsonl(redis_client, key, lines, rate=1000, maxlen=50, sleep=naps.append) == 600
    assert naps and all(n > 0 for n in naps)
    assert 50 <= redis_client.xlen(key) < 600
    with pytest.raises(ValueError):
        push_jsonl(redis_client, key, lines, rate=0)


def _alert(alert_id: str) -> AlertRecord:
    payload = orjson.dumps({"specversion": "1.0", "id": alert_id, "subject": "x:1"})
    return AlertRecord(alert_id, "x:1", payload, CustomerView("x:1", {"s": b"1"}))


def test_alert_reader_returns_parsed_alerts_until_acked(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    sink = AlertSink(redis_url, RedisSettings(prefix=redis_prefix)).build("out", 0, 1)
    sink.write_batch([_alert("a1"), _alert("a2")])
    sink.close()
    redis_client.xadd(alerts_key(redis_prefix), {"alert": b"garbage", "id": b"zz"})

    reader = AlertReader(redis_client, redis_prefix, consumer="me", block_ms=50, start_id="0")
    got = reader.read()
    assert [alert["id"] for _, alert in got] == ["a1", "a2"]
    reader.ack([got[0][0]])
    assert reader.read() == []

    # Restarted: the unacknowledged alert comes back; the garbage entry was acked.
    again = AlertReader(redis_client, redis_prefix, consumer="me", block_ms=50)
    assert [alert["id"] for _, alert in again.read()] == ["a2"]
