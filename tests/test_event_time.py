"""Event time decides: pairing order, replay speed, partitions and processes change no alert."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSource, cluster_main, run_main
from redis_helpers import delete_prefix, stream_alerts
from stages import Stages

import flows.stateful_stages as stateful_stages
from config.settings import Settings
from connectors.placement import ClusterPlace
from connectors.redis_streams import push_jsonl
from flows.pipeline import build_flow
from flows.stateful_stages import InfluenceLogic
from flows.stateless_steps import GRAPH_KEY
from operators.events import SocialEvent, parse_event
from operators.scoring import score_texts
from sense_respond.scenario import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scenario() -> tuple[list[bytes], list[str]]:
    sc = generate(seed=11, background=400)
    return sc.jsonl_bytes().splitlines(), list(sc.brand_accounts)


def settings_for(url: str, prefix: str, brands: list[str], **extra: Any) -> Settings:
    s = Settings(brand_accounts=brands, **extra).with_redis_url(url)
    return s.model_copy(update={"redis": s.redis.model_copy(update={"prefix": prefix})})


# ----------------------------------------------------------------------------- pairing


def scored_pairs(lines: list[bytes]) -> list[tuple[SocialEvent, Any]]:
    """The scenario's events, each with its VADER sentiment (None without text)."""
    now = datetime.now(UTC)
    events = [e for e in (parse_event(line, now) for line in lines) if isinstance(e, SocialEvent)]
    scores = iter(score_texts([e.text for e in events if e.text is not None]))
    return [(e, next(scores) if e.text is not None else None) for e in events]


@pytest.mark.parametrize("posts_behind", [-9, -1, 1, 9, 200])
def test_posts_and_their_influence_pair_up_in_any_order(
    scenario: tuple[list[bytes], list[str]], posts_behind: int
) -> None:
    lines, brands = scenario
    pairs = scored_pairs(lines)
    settings = Settings(brand_accounts=brands)
    in_step = Stages(settings)
    expected = [x for x in in_step.feed(pairs) if isinstance(x, str)]
    shifted = Stages(settings, posts_behind=posts_behind)
    got = [x for x in shifted.feed(pairs) + shifted.flush() if isinstance(x, str)]
    assert expected  # the scenario alerts
    assert got == expected  # the same alert ids in the same order
    assert all(not s.pending and not s.waiting for s in shifted.customers.values())


@pytest.mark.parametrize("posts_behind", [1, 9, 200])
def test_a_look_at_any_moment_changes_no_alert(
    scenario: tuple[list[bytes], list[str]], posts_behind: int
) -> None:
    """Bytewax looks at idle-looking customers when the wall clock says (`on_notify`), with the
    newest watermark of the process. Even when every customer is looked at after every record,
    while their influence records wait for posts still on their way, the alerts are the same."""
    lines, brands = scenario
    pairs = scored_pairs(lines)
    settings = Settings(brand_accounts=brands)
    expected = [x for x in Stages(settings).feed(pairs) if isinstance(x, str)]
    looked = Stages(settings, posts_behind=posts_behind, look_always=True)
    got = [x for x in looked.feed(pairs) + looked.flush() if isinstance(x, str)]
    assert expected
    assert sorted(got) == sorted(expected)


# ----------------------------------------------------------------------------- speed


class _Trickle(StatelessSourcePartition[bytes]):
    def __init__(self, lines: list[bytes], batch: int, pause: float) -> None:
        self._lines, self._batch, self._pause, self._at = lines, batch, pause, 0

    def next_batch(self) -> list[bytes]:
        if self._at >= len(self._lines):
            raise StopIteration
        time.sleep(self._pause)
        batch = self._lines[self._at : self._at + self._batch]
        self._at += self._batch
        return batch


class Trickle(DynamicSource[bytes]):
    """The lines in small batches with a pause between them: a slow replay."""

    def __init__(self, lines: list[bytes], batch: int, pause: float) -> None:
        self.lines, self.batch, self.pause = lines, batch, pause

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Trickle:
        return _Trickle(self.lines if worker_index == 0 else [], self.batch, self.pause)


@pytest.mark.parametrize("slow_workers", [1, 2])
def test_a_replay_at_two_speeds_gives_identical_alert_ids(
    scenario: tuple[list[bytes], list[str]],
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    slow_workers: int,
) -> None:
    lines, brands = scenario
    fast = f"{redis_prefix}fast:"
    run_main(build_flow(settings_for(redis_url, fast, brands), TestingSource(lines, 500)))
    # Slow: 3 lines at a time, idle customers looked at every 10 ms of wall time, so that idle
    # expiry, which a fast replay never reaches, runs throughout (on the watermark). On two
    # workers the customers are spread over both while one holds the graph: a look uses its
    # own worker's watermark, never the other's (whose records may still be on their way).
    monkeypatch.setattr(stateful_stages, "NOTIFY_FLOOR_SECONDS", 0.01)
    slow = f"{redis_prefix}slow:"
    flow = build_flow(settings_for(redis_url, slow, brands), Trickle(lines, 3, 0.002))
    if slow_workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=slow_workers)
    fast_ids = [a["id"] for a in stream_alerts(redis_client, fast)]
    slow_ids = [a["id"] for a in stream_alerts(redis_client, slow)]
    assert fast_ids
    assert sorted(slow_ids) == sorted(fast_ids)  # delivery order across customers may differ


def quiet_after_complaints() -> list[bytes]:
    """A big account complains twice, then says nothing more while the stream goes on for 2 h:
    its incident goes quiet after `resolve_quiet_seconds` (15 min here) of event time. (The
    watermark, a low quantile of the last 4,096 event times, needs that many events to pass
    the deadline.)"""
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def post(i: int, author: str, text: str, seconds: float, followers: int = 10) -> bytes:
        at = t0 + timedelta(seconds=seconds)
        return orjson.dumps(
            {
                "id": str(i),
                "platform": "twitter",
                "kind": "post",
                "created_at": at.isoformat(),
                "author": {"id": author, "followers": followers},
                "text": text,
            }
        )

    lines = [
        post(1, "loud", "@acme awful, useless and terrible service", 0, 50_000),
        post(2, "loud", "@acme horrible again, I hate it, pathetic", 60, 50_000),
    ]
    lines += [post(100 + k, f"bg{k % 50}", "@acme ok", 120 + 1.5 * k) for k in range(5000)]
    return lines


def test_a_quiet_resolution_is_sent_at_any_replay_speed(
    redis_url: str, redis_prefix: str, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the quiet customer's own reaches its stage after the complaints: what
    resolves the incident is a look at the watermark, which a fast replay gets only at the end
    of the input (`on_eof`), a slow one on its wake-ups."""
    lines = quiet_after_complaints()
    rules = {"resolve_quiet_seconds": 900}
    fast = f"{redis_prefix}fast:"
    flow = build_flow(
        settings_for(redis_url, fast, ["acme"], rules=rules), TestingSource(lines, 500)
    )
    run_main(flow)
    monkeypatch.setattr(stateful_stages, "NOTIFY_FLOOR_SECONDS", 0.01)
    monkeypatch.setattr(stateful_stages, "NOTIFY_CEILING_SECONDS", 0.05)
    slow = f"{redis_prefix}slow:"
    flow = build_flow(
        settings_for(redis_url, slow, ["acme"], rules=rules), Trickle(lines, 20, 0.005)
    )
    run_main(flow)
    fast_alerts = stream_alerts(redis_client, fast)
    slow_alerts = stream_alerts(redis_client, slow)
    assert [(a["data"]["status"], a["data"].get("resolved_reason")) for a in fast_alerts] == [
        ("firing", None),
        ("resolved", "quiet"),
    ]
    assert [a["id"] for a in slow_alerts] == [a["id"] for a in fast_alerts]
    view = redis_client.hgetall(f"{fast}customer:twitter:loud")
    assert orjson.loads(view[b"incident"])["status"] == "resolved"


class _Halves(DynamicSource[bytes]):
    """Each of two workers reads every other batch of the lines."""

    def __init__(self, lines: list[bytes], batch: int) -> None:
        self.lines, self.batch = lines, batch

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Trickle:
        mine = [
            line
            for start in range(worker_index * self.batch, len(self.lines), 2 * self.batch)
            for line in self.lines[start : start + self.batch]
        ]
        return _Trickle(mine, self.batch, 0.0)


def test_each_graph_list_is_tagged_with_its_worker_index(
    scenario: tuple[list[bytes], list[str]],
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The graph stage's watermark lane of a list is the Bytewax index of the worker that sent
    it: stable across a resume with the same workers."""
    lines, brands = scenario
    workers: list[Any] = []
    apply = InfluenceLogic._apply

    def watched(logic: InfluenceLogic, batch: Any, out: Any) -> None:
        workers.append(batch.worker)
        apply(logic, batch, out)

    monkeypatch.setattr(InfluenceLogic, "_apply", watched)
    flow = build_flow(settings_for(redis_url, redis_prefix, brands), _Halves(lines, 100))
    cluster_main(flow, [], 0, worker_count_per_proc=2)
    assert sorted(set(workers)) == [0, 1]
    assert len(workers) >= len(lines) // 100


# ----------------------------------------------------------------------------- partitions


def split_into(lines: list[bytes], directory: Path, parts: int, by_author: bool) -> None:
    directory.mkdir()
    files = [(directory / f"part-{k}.jsonl").open("wb") for k in range(parts)]
    for n, line in enumerate(lines):
        if by_author:
            author = orjson.loads(line)["author"]["id"]
            k = sum(author.encode()) % parts
        else:
            k = n % parts
        files[k].write(line + b"\n")
    for f in files:
        f.close()


def alerted_customers(client: Any, prefix: str) -> set[str]:
    return {a["data"]["customer_id"] for a in stream_alerts(client, prefix)}


@pytest.mark.parametrize(("parts", "by_author"), [(3, True), (4, False)])
def test_partitioned_input_alerts_the_same_customers(
    scenario: tuple[list[bytes], list[str]],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
    parts: int,
    by_author: bool,
) -> None:
    lines, brands = scenario
    one = tmp_path / "one.jsonl"
    one.write_bytes(b"\n".join(lines) + b"\n")
    split_into(lines, tmp_path / "parts", parts, by_author)
    # Partitions are read in turns of `source_batch_size` lines: their event times drift apart
    # by what a turn spans (here ~10 min of the 20 h feed), well inside the watermark's bound
    # (a window length). Whole files read in one turn each would drift by the whole feed.
    flow = {"source_batch_size": 25}
    single = f"{redis_prefix}single:"
    run_main(build_flow(settings_for(redis_url, single, brands, input=f"jsonl:{one}", flow=flow)))
    split = f"{redis_prefix}split:"
    spec = f"jsonl:{tmp_path / 'parts'}"
    run_main(build_flow(settings_for(redis_url, split, brands, input=spec, flow=flow)))
    expected = alerted_customers(redis_client, single)
    assert expected
    assert alerted_customers(redis_client, split) == expected


DEFAULT_BATCH = Settings().flow.source_batch_size


@pytest.fixture(scope="module")
def long_scenario(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[list[bytes], list[str], set[str]]]:
    """A feed of ~14k lines (28 default batches), and the customers one file of it alerts."""
    sc = generate(seed=7, background=6000)
    lines, brands = sc.jsonl_bytes().splitlines(), list(sc.brand_accounts)
    one = tmp_path_factory.mktemp("long") / "one.jsonl"
    one.write_bytes(b"\n".join(lines) + b"\n")
    prefix = f"test:{uuid.uuid4().hex}:long-single:"
    client = redis.Redis.from_url(redis_url)
    try:
        run_main(build_flow(settings_for(redis_url, prefix, brands, input=f"jsonl:{one}")))
        yield lines, brands, alerted_customers(client, prefix)
    finally:
        client.close()
        delete_prefix(redis_url, prefix)


@pytest.mark.parametrize(("parts", "by_author"), [(3, True), (9, False)])
def test_partitioned_input_at_the_default_batch_size_alerts_the_same_customers(
    long_scenario: tuple[list[bytes], list[str], set[str]],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
    parts: int,
    by_author: bool,
) -> None:
    """Files read in turns of the default batch (500 lines): every file takes several turns,
    and one turn of 9 files (4,500 lines) is more than the watermark's 4,096 samples hold."""
    lines, brands, expected = long_scenario
    assert len(lines) // parts > 3 * DEFAULT_BATCH  # every file is read in several turns
    split_into(lines, tmp_path / "parts", parts, by_author)
    spec = f"jsonl:{tmp_path / 'parts'}"
    run_main(build_flow(settings_for(redis_url, redis_prefix, brands, input=spec)))
    assert len(expected) >= 5
    assert alerted_customers(redis_client, redis_prefix) == expected


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def cluster_scenario() -> tuple[list[bytes], list[str]]:
    """~27k lines over 20 h: at the default batch and epoch each process reads several epochs,
    each reaching the graph stage as a burst longer than the watermark's 4,096 samples."""
    sc = generate(seed=11, background=12_000)
    return sc.jsonl_bytes().splitlines(), list(sc.brand_accounts)


def run_cluster(
    command: list[str], processes: int, env: dict[str, str], logs: Path, kept_off: bool = True
) -> None:
    """`command` as a cluster of `processes` (`-i/-a`), to completion. `kept_off`: the input is
    kept off the process that hosts the graph stage, and only that process says so; else none
    does."""
    addresses = ";".join(f"127.0.0.1:{p}" for p in _free_ports(processes))
    files = [logs / f"process{i}.log" for i in range(processes)]
    procs = []
    for i, file in enumerate(files):
        with file.open("wb") as log:
            argv = [*command, "-i", str(i), "-a", addresses]
            procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stderr=log))
    try:
        assert [p.wait(timeout=300) for p in procs] == [0] * processes
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    host = ClusterPlace(0, processes, 1).process_of(GRAPH_KEY)
    said = [b"hosts the graph stage" in file.read_bytes() for file in files]
    assert said == [kept_off and i == host for i in range(processes)]


@pytest.mark.slow
@pytest.mark.parametrize(("processes", "shared_files"), [(2, True), (3, True), (2, False)])
def test_a_cluster_alerts_the_same_customers_as_one_process(
    cluster_scenario: tuple[list[bytes], list[str]],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
    processes: int,
    shared_files: bool,
) -> None:
    """At the default batch (500 lines) and epoch (2 s). With `flow.shared_files` the process
    that hosts the graph stage reads no input (`connectors.placement`); without, every process
    reads (each could hold files of its own). The reading processes go at their own pace and
    Bytewax orders work by epoch, so each one's epoch reaches the graph stage as one burst; the
    watermark is the lowest of one per upstream worker, so the process that is behind is not
    made late by the one ahead (with a single watermark 5 runs of 24 missed customers). Three
    processes with shared files, or two without: two of them read, each in its own lane."""
    lines, brands = cluster_scenario
    split_into(lines, tmp_path / "parts", processes, by_author=True)
    one_file = tmp_path / "one.jsonl"
    one_file.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "config.toml"
    config.write_bytes(b"brand_accounts = " + orjson.dumps(brands) + b"\n")
    spec = f"jsonl:{tmp_path / 'parts'}"
    cli = [sys.executable, "-m", "sense_respond", "run", "--config", str(config)]
    cli += ["--input", spec, "--redis-url", redis_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    one = f"{redis_prefix}one:"
    single = [*cli[:-4], "--input", f"jsonl:{one_file}", "--redis-url", redis_url]
    subprocess.run([*single, "--prefix", one], check=True, env=env, cwd=ROOT, timeout=300)
    two = f"{redis_prefix}two:"
    env["SR_FLOW__SHARED_FILES"] = str(shared_files).lower()
    run_cluster([*cli, "--prefix", two], processes, env, tmp_path, kept_off=shared_files)


@pytest.mark.slow
def test_a_cluster_reading_one_redis_stream_alerts_the_same_customers_as_one_process(
    cluster_scenario: tuple[list[bytes], list[str]],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
) -> None:
    """Two processes on one stream: the graph's process reads none of it, so the other runs
    the stream's two consumers (one partition per worker of the run) in its one worker."""
    lines, brands = cluster_scenario
    key = f"{redis_prefix}input"
    assert push_jsonl(redis_client, key, lines) == len(lines)
    one_file = tmp_path / "one.jsonl"
    one_file.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "config.toml"
    config.write_bytes(b"brand_accounts = " + orjson.dumps(brands) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    env["SR_REDIS__INPUT_IDLE_EXIT_SECONDS"] = "3"  # a bounded run: ends once the stream is idle
    cli = [sys.executable, "-m", "sense_respond", "run", "--config", str(config)]
    cli += ["--redis-url", redis_url]
    one, two = f"{redis_prefix}one:", f"{redis_prefix}two:"
    single = [*cli, "--input", f"jsonl:{one_file}", "--prefix", one]
    subprocess.run(single, check=True, env=env, cwd=ROOT, timeout=300)
    run_cluster([*cli, "--input", f"redis:{key}", "--prefix", two], 2, env, tmp_path)
    expected = alerted_customers(redis_client, one)
    assert expected
    assert alerted_customers(redis_client, two) == expected
    (group,) = redis_client.xinfo_groups(key)
    assert (group["pending"], group["lag"]) == (0, 0)  # every entry read and acknowledged
    expected = alerted_customers(redis_client, one)
    assert expected
    assert alerted_customers(redis_client, two) == expected


def test_each_worker_thread_keeps_its_own_watermark_for_looks() -> None:
    watermarks = stateful_stages.WorkerWatermarks()
    here = watermarks.here()
    here.value = 5.0
    assert watermarks.here() is here  # the same worker, the same cell
    other: list[stateful_stages.WatermarkSeen] = []
    thread = threading.Thread(target=lambda: other.append(watermarks.here()))
    thread.start()
    thread.join()
    assert other[0] is not here
    assert other[0].value == float("-inf")  # another worker's watermark is not this one's
