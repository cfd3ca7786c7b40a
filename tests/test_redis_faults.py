"""The sinks through real transient errors (BUSY, READONLY, MASTERDOWN, a restart) of a private
redis-server, and their idempotent dead letters and key checks against the shared one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from private_redis import PrivateRedis, free_port, private_redis

from config.runtime import RedisSettings
from connectors.dead_letter_delivery import dead_letter_id
from connectors.redis_client import alerts_key, dlq_ids_key, dlq_key, make_client
from connectors.redis_errors import NonTransientRedisError
from connectors.redis_retry import Outage, RedisRetry, RetryPolicy
from connectors.redis_sinks import AlertSinkPartition, DeadLetterSink, DeadLetterSinkPartition
from operators.events import DeadLetter
from operators.records import AlertRecord, CustomerView
from sense_respond.metrics import REDIS_RETRIES, REDIS_UP

BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then return 1 end
end
"""


def alert(alert_id: str, customer_id: str = "x:1") -> AlertRecord:
    payload = orjson.dumps({"id": alert_id, "subject": customer_id})
    return AlertRecord(alert_id, customer_id, payload, CustomerView(customer_id, {"s": b"1"}))


def sample(metric: Any) -> float:
    return next(iter(metric.collect())).samples[0].value


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = private_redis(tmp_path)
    yield srv
    srv.stop()


def alert_partition(server: PrivateRedis, outage: Outage) -> AlertSinkPartition:
    settings = RedisSettings(prefix="sr:", socket_timeout_seconds=5)
    client = make_client(server.url, settings, retries=0)
    return AlertSinkPartition(client, settings, retry=RedisRetry(RetryPolicy(60), outage))


class Background:
    """`fn()` in a thread; `result()` joins it and re-raises what it raised."""

    def __init__(self, fn: Any) -> None:
        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Any) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as exc:
            self._out["error"] = exc

    def result(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running"
        if "error" in self._out:
            raise self._out["error"]
        return self._out.get("value")


def wait_until(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.01)


def test_a_busy_script_on_the_server_is_waited_out(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = server.client()
    admin.config_set("busy-reply-threshold", 50)
    outage = Outage()
    part = alert_partition(server, outage)
    retries = sample(REDIS_RETRIES)
    busy = Background(lambda: server.client().eval(BUSY_SCRIPT, 0, 2_000_000))

    def server_is_busy() -> bool:
        try:
            admin.ping()
        except redis.ResponseError as exc:
            return str(exc).startswith("BUSY")
        return False

    wait_until(server_is_busy, "BUSY reply")
    with caplog.at_level(logging.INFO, logger="connectors.redis_retry"):
        part.write_batch([alert("after-busy")])
    assert busy.result() == 1
    assert [f[b"id"] for _, f in admin.xrange(alerts_key("sr:"))] == [b"after-busy"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("Redis unavailable (ResponseError: BUSY Redis is busy")
    assert len(messages) == 2 and messages[1].startswith("Redis is back after"), messages
    assert sample(REDIS_RETRIES) > retries
    assert sample(REDIS_UP) == 1 and not outage.down
    part.close()


@pytest.mark.parametrize(
    ("config", "code"),
    [({}, "READONLY"), ({"replica-serve-stale-data": "no"}, "MASTERDOWN")],
    ids=["replica-after-failover", "replica-without-master"],
)
def test_a_server_that_became_a_replica_is_waited_out(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture, config: dict[str, str], code: str
) -> None:
    admin = server.client()
    outage = Outage()
    part = alert_partition(server, outage)
    for name, value in config.items():
        admin.config_set(name, value)
    admin.replicaof("127.0.0.1", free_port())  # a master that is not there
    with caplog.at_level(logging.INFO, logger="connectors.redis_retry"):
        writing = Background(lambda: part.write_batch([alert("after-failover")]))
        wait_until(lambda: outage.down, "outage")
        time.sleep(0.3)  # a few retries against the replica
        admin.replicaof("no", "one")  # promoted: writes are accepted again
        writing.result()
    assert [f[b"id"] for _, f in admin.xrange(alerts_key("sr:"))] == [b"after-failover"]
    assert admin.exists("sr:alert-id:after-failover")
    messages = [r.getMessage() for r in caplog.records]
    assert f"{code} " in messages[0], messages[0]
    # an error reply saying "not now" continues the outage: one line at each end, no flapping
    assert len(messages) == 2 and messages[1].startswith("Redis is back after"), messages
    assert part.stats.alerts_new == 1
    part.close()


def test_a_server_still_loading_its_data_is_waited_for(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    admin = server.client()
    admin.eval("for i = 1, 2000 do redis.call('SET', 'k' .. i, 'v') end", 0)
    admin.bgrewriteaof()  # the keys go to the RDB base of the AOF, loaded key by key
    wait_until(lambda: not admin.info("persistence")["aof_rewrite_in_progress"], "AOF rewrite")
    server.stop()
    # 1 ms per key: two seconds of LOADING replies (events are served while loading)
    slow = ("--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024")
    server.start(None, *slow, loaded=False)
    with pytest.raises(redis.BusyLoadingError):
        server.client().ping()
    outage = Outage()
    with caplog.at_level(logging.INFO, logger="connectors.redis_retry"):
        part = alert_partition(server, outage)  # its start-up checks wait for the data
        part.write_batch([alert("after-loading")])
    assert [f[b"id"] for _, f in admin.xrange(alerts_key("sr:"))] == [b"after-loading"]
    assert admin.dbsize() == 2000 + 3  # the data, the stream, the marker, the view
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("Redis unavailable (BusyLoadingError: LOADING Redis is loading")
    assert len(messages) == 2 and messages[1].startswith("Redis is back after"), messages
    part.close()


def test_a_restart_between_batches_is_a_reconnect(server: PrivateRedis) -> None:
    outage = Outage()
    part = alert_partition(server, outage)
    part.write_batch([alert("before")])
    server.stop()  # the pooled connection is dead now
    server.start()
    part.write_batch([alert("after")])
    ids = [f[b"id"] for _, f in server.client().xrange(alerts_key("sr:"))]
    assert ids == [b"before", b"after"]
    part.close()


# ---------------------------------------------------------------------------------------------
# dead letters: idempotent, bounded, checked


@pytest.fixture
def settings(redis_prefix: str) -> RedisSettings:
    return RedisSettings(prefix=redis_prefix)


def letter(reason: str, raw: bytes, source: str = "jsonl:feed.jsonl") -> DeadLetter:
    return DeadLetter(reason, raw, datetime.now(UTC), source)


def dlq_entries(client: redis.Redis, prefix: str) -> list[tuple[bytes, bytes]]:
    return [(f[b"source"], f[b"raw"]) for _, f in client.xrange(dlq_key(prefix))]


def test_a_replayed_dead_letter_is_appended_once(
    redis_url: str, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    batch = [letter("not JSON", b"{oops"), letter("not JSON", b"{oops", "redis:in#1-0")]
    part = DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    part.write_batch(batch)
    part.write_batch(batch)
    part.close()
    # a recovered flow replays through a new partition, with a new receive time
    again = DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    again.write_batch([letter("not JSON", b"{oops"), letter("not JSON", b"[1]")])
    again.close()
    assert dlq_entries(redis_client, settings.prefix) == [
        (b"jsonl:feed.jsonl", b"{oops"),
        (b"redis:in#1-0", b"{oops"),
        (b"jsonl:feed.jsonl", b"[1]"),
    ]
    assert (part.stats.dead_letters, part.stats.dead_letters_duplicate) == (2, 2)
    assert (again.stats.dead_letters, again.stats.dead_letters_duplicate) == (1, 1)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (letter("r", b"x"), letter("r", b"x"), True),
        (letter("r", b"x", "s1"), letter("r", b"x", "s2"), False),
        (letter("r1", b"x"), letter("r2", b"x"), False),
        (letter("r", b"x"), letter("r", b"y"), False),
        (letter("ab", b"c"), letter("a", b"bc"), False),  # no ambiguity at the seams
    ],
)
def test_dead_letter_ids_are_deterministic(a: DeadLetter, b: DeadLetter, same: bool) -> None:
    assert (dead_letter_id(a) == dead_letter_id(b)) is same
    assert len(dead_letter_id(a)) == 32


def test_a_wrong_dlq_type_fails_before_writing_anything(
    redis_url: str, redis_client: redis.Redis, settings: RedisSettings
) -> None:
    stream = dlq_key(settings.prefix)
    redis_client.hset(stream, "not", "a stream")
    with pytest.raises(NonTransientRedisError, match=rf"key {stream} is a hash, .* a stream"):
        DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    redis_client.delete(stream)

    part: DeadLetterSinkPartition = DeadLetterSink(redis_url, settings).build("dlq", 0, 1)
    redis_client.set(stream, b"turned into a string mid-run")
    bad = letter("not JSON", b"{")
    with pytest.raises(NonTransientRedisError) as raised:
        part.write_batch([bad])
    message = str(raised.value)
    assert "EVALSHA (dead-letter script) during dead-letter delivery" in message
    assert f"WRONGTYPE {stream} is a string, not a stream" in message
    assert redis_client.zcard(dlq_ids_key(settings.prefix)) == 0  # not marked as appended
    redis_client.delete(stream)
    part.write_batch([bad])  # the replay after the fix appends it once
    part.write_batch([bad])
    assert dlq_entries(redis_client, settings.prefix) == [(b"jsonl:feed.jsonl", b"{")]
    part.close()


def test_a_full_redis_is_reported_and_nothing_is_marked_delivered(server: PrivateRedis) -> None:
    admin = server.client()
    part = alert_partition(server, Outage())
    admin.config_set("maxmemory", 1)  # noeviction: every write is refused with OOM
    with pytest.raises(NonTransientRedisError) as raised:
        part.write_batch([alert("too-much", "x:7")])
    message = str(raised.value)
    assert message.startswith("Redis refused EVALSHA (alert script) during alert delivery: ")
    assert "OOM command not allowed" in message
    assert "keys: sr:alert-id:too-much (absent), sr:alerts (absent)" in message
    assert raised.value.exit_code == 78
    admin.config_set("maxmemory", 0)
    assert admin.keys("sr:*") == []  # not marked delivered: the replay below delivers it
    part.write_batch([alert("too-much", "x:7")])
    assert [f[b"id"] for _, f in admin.xrange(alerts_key("sr:"))] == [b"too-much"]
    part.close()


def test_a_command_the_acl_denies_is_reported_and_nothing_is_recorded(
    server: PrivateRedis,
) -> None:
    admin = server.client()
    admin.acl_setuser(
        "sr", enabled=True, passwords=["+s3cret-pw"], keys=["*"], commands=["+@all", "-xadd"]
    )
    settings = RedisSettings(prefix="sr:")
    url = server.url.replace("redis://", "redis://sr:s3cret-pw@")
    client = make_client(url, settings, retries=0)
    part = DeadLetterSinkPartition(client, settings, retry=RedisRetry(RetryPolicy(60), Outage()))
    with pytest.raises(NonTransientRedisError) as raised:
        part.write_batch([letter("not JSON", b"{")])
    message = str(raised.value)
    assert "EVALSHA (dead-letter script) during dead-letter delivery" in message
    # Redis 7.0 says it as "ERR The user executing the script can't run this command"
    assert "can't run this command" in message and "s3cret-pw" not in message
    assert "keys: sr:dlq (absent), sr:dlq:ids (absent)" in message
    assert admin.keys("sr:*") == []
    part.close()
