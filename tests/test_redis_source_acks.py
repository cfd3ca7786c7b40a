"""The Redis stream source's acknowledgements, against a real Redis: an entry is acknowledged only
once the epoch that handed it out closed and Bytewax asked again (its sinks are done), a stopped
run only once it succeeded, and with several workers only after the sink wrote it (the process
killed between reading and writing); how partitions leave the consumer group."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis_source_helpers import GROUP, add, consumers, pending

# The `key` and `build` fixtures (see redis_source_helpers).
from redis_source_helpers import build_fixture as build_fixture
from redis_source_helpers import key_fixture as key_fixture

from connectors.redis_source import StreamPartition, acknowledged_on_success


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------
# acknowledgement follows the epochs


def test_entries_are_acked_only_after_their_epoch_closed_and_bytewax_asked_again(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    add(redis_client, key, b'{"a":1}', b'{"a":2}', b"not json is still bytes")
    assert part.next_batch() == [b'{"a":1}', b'{"a":2}', b"not json is still bytes"]
    # More reads in the same epoch: nothing is known written yet.
    assert part.next_batch() == []
    assert pending(redis_client, key) == {"c1": 3}
    state = part.snapshot()  # the epoch closes...
    assert state["consumer"] == "c1" and len(state["done"]) == 3
    assert pending(redis_client, key) == {"c1": 3}
    add(redis_client, key, b"4")
    assert part.next_batch() == [b"4"]  # ...and Bytewax asks again: its sinks are done
    assert pending(redis_client, key) == {"c1": 1}
    assert len(part.snapshot()["done"]) == 1


def test_empty_stream_read_returns_after_block(build: Callable[..., StreamPartition]) -> None:
    part = build()
    assert part.next_batch() == []
    assert part.next_batch() == []


def test_idle_exit_waits_for_the_acks_then_ends_and_leaves_the_group(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    clock = Clock()
    part = build(idle_exit_seconds=1.0, clock=clock)
    add(redis_client, key, b"1")
    assert part.next_batch() == [b"1"]
    clock.now += 2
    assert part.next_batch() == []  # idle, but entry 1 is not known written yet
    part.snapshot()
    with pytest.raises(StopIteration):  # acknowledged with this call's read, then the end
        part.next_batch()
    assert pending(redis_client, key) == {}
    part.close()
    assert consumers(redis_client, key) == []


class _SinkFailed(Exception):
    """A run that failed after the partition ended."""


@pytest.mark.parametrize("run_fails", [False, True])
def test_a_stopped_partition_is_acknowledged_only_once_the_run_succeeded(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str, run_fails: bool
) -> None:
    stop = [False]
    part = build(stop=lambda: stop[0])
    add(redis_client, key, b"1")
    with contextlib.suppress(_SinkFailed), acknowledged_on_success():
        assert part.next_batch() == [b"1"]
        stop[0] = True
        with pytest.raises(StopIteration):
            part.next_batch()
        part.snapshot()  # Bytewax's final snapshot
        part.close()
        assert pending(redis_client, key) == {"c1": 1}  # not before the run succeeded
        if run_fails:
            raise _SinkFailed
    if run_fails:
        assert pending(redis_client, key) == {"c1": 1}  # handed out again by the next start
    else:
        assert pending(redis_client, key) == {}
        assert consumers(redis_client, key) == []  # and the consumer left the group


def test_close_keeps_a_consumer_with_unfinished_entries_and_retires_an_empty_one(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    busy, idle = build("busy"), build("idle")
    add(redis_client, key, b"1")
    assert busy.next_batch() == [b"1"]
    assert idle.next_batch() == []
    busy.close()  # Bytewax also closes partitions when a step failed
    idle.close()
    assert consumers(redis_client, key) == ["busy"]
    assert pending(redis_client, key) == {"busy": 1}


# ---------------------------------------------------------------------------------------------
# several workers in one process: acknowledged only once the sink wrote (kill -9 between)

CHILD = Path(__file__).with_name("stream_flow_child.py")


def test_with_several_workers_an_entry_is_acked_only_after_the_sink_wrote_it(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, key: str
) -> None:
    n = 600
    add(redis_client, key, *[str(i).encode() for i in range(n)])
    written = f"{redis_prefix}written"
    cmd = [sys.executable, str(CHILD), redis_url, key, written, "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while redis_client.scard(written) < n // 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    proc.wait(10)
    time.sleep(0.3)
    # Every acknowledged entry (delivered to the group, not pending) was written by the sink.
    group = redis_client.xinfo_groups(key)[0]
    in_flight = {e["message_id"] for e in redis_client.xpending_range(key, GROUP, "-", "+", n)}
    delivered = redis_client.xrange(key, max=group["last-delivered-id"])
    acked = {f[b"event"] for eid, f in delivered if eid not in in_flight}
    done = redis_client.smembers(written)
    assert acked and acked <= done
    assert len(in_flight) > 0  # killed between reading and writing
    assert len({c["name"] for c in redis_client.xinfo_consumers(key, GROUP)}) == 3
    # The restart (new consumer names) takes the dead process's entries over at once.
    rerun = subprocess.run([*cmd, "--idle-exit"], capture_output=True, timeout=90, check=False)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert redis_client.smembers(written) == {str(i).encode() for i in range(n)}
    assert redis_client.xpending(key, GROUP)["pending"] == 0
    assert redis_client.xinfo_consumers(key, GROUP) == []  # removed on clean exit
