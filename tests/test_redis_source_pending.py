"""Pending entries of the Redis stream source, against a real Redis: a consumer's own after a
restart, those of dead processes of this host at once and of idle consumers elsewhere after
`claim_idle_ms`; a resumed partition's snapshot (done entries, last entry seen), also when the
consumer group vanished."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis
from redis_source_helpers import GROUP, add, consumers, pending, read_n

# The `key` and `build` fixtures (see redis_source_helpers).
from redis_source_helpers import build_fixture as build_fixture
from redis_source_helpers import key_fixture as key_fixture

from connectors.redis_source import StreamPartition, default_consumer
from connectors.redis_streams import PROCESS_TOKEN


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# pending entries: own, dead consumers, resume


def test_a_restart_with_the_same_consumer_hands_out_its_pending_entries_first(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    add(redis_client, key, b"1", b"2")
    assert build("stable").next_batch() == [b"1", b"2"]
    # Crash: never asked again nor closed.
    add(redis_client, key, b"3")
    second = build("stable")
    assert read_n(second, 3) == [b"1", b"2", b"3"]


def test_pending_entries_of_a_dead_process_of_this_host_are_claimed_at_once(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    host = socket.gethostname()
    dead = f"{host}-{dead_pid()}-abcdef-0"
    alive = f"{host}-{os.getpid()}-{PROCESS_TOKEN}-7"  # this very process: alive
    add(redis_client, key, b"a", b"b", b"c")
    redis_client.xgroup_create(key, GROUP, id="0")
    redis_client.xreadgroup(GROUP, dead, {key: ">"}, count=2)
    redis_client.xreadgroup(GROUP, alive, {key: ">"}, count=1)
    add(redis_client, key, b"d")
    part = build(default_consumer(0), claim_idle_ms=60_000, count=1)
    # The dead one's entries first, in order, then new ones; never the live one's.
    assert read_n(part, 3) == [b"a", b"b", b"d"]
    assert pending(redis_client, key) == {part.consumer: 3, alive: 1}
    part.snapshot()
    part.next_batch()
    assert dead not in consumers(redis_client, key)  # the dead name is removed once empty


def test_idle_consumers_of_other_hosts_are_claimed_after_claim_idle_ms(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    add(redis_client, key, b"a", b"b")
    redis_client.xgroup_create(key, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "elsewhere-1-abcdef", {key: ">"}, count=10)
    part = build("alive", claim_idle_ms=300, claim_every_seconds=0.0)
    assert part.next_batch() == []  # not idle long enough yet
    time.sleep(0.4)
    assert read_n(part, 2) == [b"a", b"b"]
    assert pending(redis_client, key) == {"alive": 2}


def test_a_resumed_partition_acks_its_done_entries_and_hands_out_the_rest_again(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = [i.decode() for i in add(redis_client, key, *[str(i).encode() for i in range(1, 7)])]
    first = build("p0")
    assert first.next_batch() == [b"1", b"2", b"3", b"4", b"5", b"6"]
    # Bytewax committed a snapshot after 1..3 (2 and 3 not acked yet), then 4..6 were read
    # and the process died.
    state = {"v": 1, "consumer": "p0", "done": ids[1:3], "last_seen": ids[2]}
    redis_client.xack(key, GROUP, ids[0])
    add(redis_client, key, b"7")
    resumed = build("p0", resume=state)
    assert read_n(resumed, 4) == [b"4", b"5", b"6", b"7"]
    assert pending(redis_client, key) == {"p0": 4}


def test_a_lost_group_is_recreated_from_the_last_entry_this_consumer_saw(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    part = build()
    add(redis_client, key, b"1", b"2", b"3")
    assert part.next_batch() == [b"1", b"2", b"3"]
    redis_client.xgroup_destroy(key, GROUP)
    add(redis_client, key, b"4")
    assert read_n(part, 1) == [b"4"]  # not 1..3 again
    assert "vanished; recreating it after entry" in caplog.text
    info = redis_client.xinfo_groups(key)[0]
    assert info["name"].decode() == GROUP


def test_a_resumed_partition_whose_group_vanished_continues_after_its_snapshot(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = [i.decode() for i in add(redis_client, key, b"1", b"2", b"3")]
    state = {"v": 1, "consumer": "p0", "done": [], "last_seen": ids[1]}
    assert read_n(build("p0", resume=state), 1) == [b"3"]


def test_a_partition_stopped_before_its_first_read_keeps_its_restored_done_entries(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    ids = [i.decode() for i in add(redis_client, key, b"1", b"2")]
    assert build("p0").next_batch() == [b"1", b"2"]
    state = {"v": 1, "consumer": "p0", "done": ids, "last_seen": ids[1]}
    stopped = build("p0", resume=state, stop=lambda: True)
    with pytest.raises(StopIteration):
        stopped.next_batch()
    assert stopped.snapshot()["done"] == ids  # a later resume must not hand them out again
