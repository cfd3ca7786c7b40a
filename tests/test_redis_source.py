"""The Redis stream source (at-least-once, any worker count), push_jsonl and AlertReader,
against a real Redis."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.runtime import RedisSettings
from config.settings import Settings
from connectors.files import JsonlSource
from connectors.inputs import make_source
from connectors.placement import ClusterPlace
from connectors.redis_client import alerts_key, make_client
from connectors.redis_errors import NonTransientRedisError, OutageBudgetExceeded
from connectors.redis_retry import OUTAGE
from connectors.redis_sinks import AlertSink
from connectors.redis_source import (
    AlertReader,
    RedisStreamSource,
    StreamPartition,
    acknowledged_on_success,
    default_consumer,
    isolation_size,
    push_jsonl,
)
from connectors.redis_streams import PROCESS_TOKEN
from operators.events import DeadLetter
from operators.records import AlertRecord, CustomerView
from sense_respond import metrics

GROUP = "sense-respond"


@pytest.fixture
def key(redis_prefix: str) -> str:
    return f"{redis_prefix}in"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def build(redis_url: str, key: str) -> Iterator[Callable[..., StreamPartition]]:
    """Build partitions on `key` (their clients are closed at teardown)."""
    built: list[StreamPartition] = []

    def make(consumer: str = "c1", url: str | None = None, **kwargs: Any) -> StreamPartition:
        client = make_client(url or redis_url, RedisSettings(retries=0, socket_timeout_seconds=2))
        kwargs.setdefault("block_ms", 50)
        kwargs.setdefault("count", 100)
        part = StreamPartition(client, key, GROUP, consumer, **kwargs)
        built.append(part)
        return part

    yield make
    for part in built:
        part._client.close()


def add(client: redis.Redis, key: str, *events: bytes) -> list[bytes]:
    return [client.xadd(key, {"event": e}) for e in events]


def pending(client: redis.Redis, key: str) -> dict[str, int]:
    info = client.xpending(key, GROUP)
    return {c["name"].decode(): c["pending"] for c in info["consumers"]}


def consumers(client: redis.Redis, key: str) -> list[str]:
    return sorted(c["name"].decode() for c in client.xinfo_consumers(key, GROUP))


def read_n(part: StreamPartition, n: int, *, snapshot_between: bool = False) -> list[Any]:
    """Batches until `n` items came (fails after 60 calls)."""
    out: list[Any] = []
    for _ in range(60):
        out += part.next_batch()
        if len(out) >= n:
            return out
        if snapshot_between:
            part.snapshot()
    raise AssertionError(f"only {len(out)} of {n} items: {out}")


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


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


def test_entry_without_event_field_becomes_a_dead_letter(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    part = build()
    bad = redis_client.xadd(key, {"payload": b"{}", "n": b"1"})
    add(redis_client, key, b"ok")
    batch = part.next_batch()
    assert batch[1] == b"ok"
    letter = batch[0]
    assert isinstance(letter, DeadLetter)
    assert "no 'event' field" in letter.reason and "n, payload" in letter.reason
    assert orjson.loads(letter.raw) == {"payload": "{}", "n": "1"}
    assert letter.source == f"redis:{key}#{bad.decode()}"


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


# ---------------------------------------------------------------------------------------------
# poison entries


@pytest.mark.parametrize(
    ("delivery", "expected"), [(1, 500), (2, 500), (3, 62), (4, 7), (5, 1), (9, 1)]
)
def test_isolation_groups_shrink_to_one_entry_at_the_last_delivery(
    delivery: int, expected: int
) -> None:
    assert isolation_size(delivery, 5, 500) == expected


@pytest.mark.parametrize(
    ("delivery", "max_deliveries", "expected"), [(2, 2, 1), (2, 3, 50), (3, 3, 1), (1, 1, 50)]
)
def test_isolation_sizes_for_small_limits(
    delivery: int, max_deliveries: int, expected: int
) -> None:
    assert isolation_size(delivery, max_deliveries, 50) == expected


class _Poisoned(Exception):
    """What the flow's step raises on the poison entry."""


def test_a_poison_entry_goes_to_the_dead_letters_after_max_deliveries_and_the_others_complete(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, key: str
) -> None:
    events = [orjson.dumps({"n": i}) for i in range(12)]
    events[7] = b"poison"
    add(redis_client, key, *events)
    settings = RedisSettings(
        prefix=redis_prefix, consumer="flow", block_ms=20, max_deliveries=5,
        input_idle_exit_seconds=0.3,
    )  # fmt: skip
    processed: list[Any] = []

    def step(item: Any) -> Any:
        if item == b"poison":
            raise _Poisoned
        processed.append(item)
        return item

    runs = 0
    while True:
        runs += 1
        assert runs <= 12, "the poison entry was never isolated"
        flow = Dataflow("poison")
        stream = op.input("inp", flow, RedisStreamSource(redis_url, key, settings, batch_size=5))
        op.inspect("out", op.map("step", stream, step))
        try:
            with acknowledged_on_success():
                run_main(flow, epoch_interval=timedelta(seconds=0.05))
            break
        except Exception as exc:  # Bytewax wraps what the step raised
            chain: list[BaseException] = []
            cause: BaseException | None = exc
            while cause is not None:
                chain.append(cause)
                cause = cause.__cause__
            assert any(isinstance(c, _Poisoned) for c in chain), exc
    letters = [p for p in processed if isinstance(p, DeadLetter)]
    assert len(letters) == 1
    assert "delivered 5 times without completing" in letters[0].reason
    assert letters[0].raw == b"poison"
    assert {p for p in processed if isinstance(p, bytes)} == set(events) - {b"poison"}
    assert pending(redis_client, key) == {}  # the poison entry is acknowledged too
    assert runs == 6  # five failed deliveries, then the dead letter


# ---------------------------------------------------------------------------------------------
# a lost XREADGROUP reply (private redis-server behind a proxy that cuts one reply)


class CuttingProxy:
    """A loopback TCP proxy to `port` that, when armed, forwards the next XREADGROUP '>' to
    the server, drops the server's reply and closes the connection."""

    def __init__(self, port: int) -> None:
        self.armed = threading.Event()
        self.cut = threading.Event()
        self._target = port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            dropping = threading.Event()
            threading.Thread(target=self._requests, args=(conn, upstream, dropping),
                             daemon=True).start()  # fmt: skip
            threading.Thread(target=self._replies, args=(upstream, conn, dropping),
                             daemon=True).start()  # fmt: skip

    def _requests(self, client: socket.socket, upstream: socket.socket,
                  dropping: threading.Event) -> None:  # fmt: skip
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                cutting = self.armed.is_set() and b"XREADGROUP" in data and b">" in data
                if cutting:
                    self.armed.clear()
                    dropping.set()
                upstream.sendall(data)
                if cutting:
                    time.sleep(0.3)  # the server runs it and answers into the void
                    self.cut.set()
                    break
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _replies(self, upstream: socket.socket, client: socket.socket,
                 dropping: threading.Event) -> None:  # fmt: skip
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if not dropping.is_set():
                    client.sendall(data)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.skip("no redis-server binary")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield port
    client.close()
    proc.terminate()
    proc.wait(10)


def test_a_lost_read_reply_does_not_skip_entries(
    build: Callable[..., StreamPartition], private_redis: int, key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    proxy = CuttingProxy(private_redis)
    direct = redis.Redis(port=private_redis)
    try:
        part = build("c1", url=f"redis://127.0.0.1:{proxy.port}/0")
        add(direct, key, b"1", b"2")
        assert part.next_batch() == [b"1", b"2"]
        add(direct, key, b"3", b"4")
        proxy.armed.set()
        assert part.next_batch() == []  # the reply was lost
        assert proxy.cut.is_set()
        assert pending(direct, key) == {"c1": 4}  # ...after the server handed 3 and 4 to c1
        got: list[Any] = []
        for _ in range(60):
            got += part.next_batch()
            if len(got) >= 2:
                break
            time.sleep(0.05)
        # The server handed 3 and 4 to the lost reply; they come from the PEL, once.
        assert got == [b"3", b"4"]
        assert "Redis unavailable" in caplog.text and "Redis is back" in caplog.text
        add(direct, key, b"5")
        assert read_n(part, 1) == [b"5"]
    finally:
        proxy.close()
        direct.close()


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


def test_a_key_of_the_wrong_type_stops_the_run_with_the_command_named(
    build: Callable[..., StreamPartition], redis_client: redis.Redis, key: str
) -> None:
    redis_client.set(key, b"not a stream")
    with pytest.raises(NonTransientRedisError, match="WRONGTYPE"):
        build().next_batch()


def test_redis_gone_past_the_outage_budget_stops_the_run(
    build: Callable[..., StreamPartition], private_redis: int
) -> None:
    part = build(url=f"redis://127.0.0.1:{private_redis}/0", outage_budget_seconds=0.5)
    assert part.next_batch() == []
    # No retries: the reply to SHUTDOWN is the connection closing, which a client with the
    # default retries would answer with seconds of reconnect attempts to a stopped server.
    redis.Redis(port=private_redis, retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
    deadline = time.monotonic() + 30
    with pytest.raises(OutageBudgetExceeded, match="outage_budget_seconds"):
        while time.monotonic() < deadline:
            assert part.next_batch() == []  # paused, not failed, within the budget
            time.sleep(0.05)
    OUTAGE.answered()  # the process-wide tracker: later tests start with Redis "up"
