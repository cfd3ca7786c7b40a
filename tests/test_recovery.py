"""Bytewax recovery: `sense-respond run --recovery-dir` killed with SIGKILL, then resumed.

The resumed run must leave Redis exactly as one uninterrupted run does: the same set of alert
ids in the stream, each once, and each published once on the channel, although the resumed run
replays everything after the last snapshot (at-least-once inside the flow, exactly-once in Redis
thanks to deterministic alert ids and the sink's `SET NX` marker).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import TestingSource, run_main
from redis_helpers import delete_prefix, drain_channel
from stages import Stages

from config.settings import Settings
from connectors.graph_store import GRAPH_DIR, GraphManifest, JournalPolicy
from connectors.redis_source import push_jsonl
from flows.pipeline import build_flow
from operators.events import Account, SocialEvent, parse_event
from operators.records import Sentiment
from operators.scoring import score_texts
from sense_respond import recovery
from sense_respond.cli import main
from sense_respond.recovery import RecoveryOptions
from sense_respond.scenario import DEFAULT_START, generate

COPIES = 2
"""Scenario copies in the feed (distinct seeds, two days apart, 6,000 background events each):
~27k events, 16 alerts. Two copies are as good as more for what the kill tests need: alerts
spread over the run (a kill at 1/3 and at 0.8 of them, each with snapshots committed, leaves
alerts to deliver after the resume) and a second copy whose customers only the resumed run
reaches; more copies only make every run (and the clean one) longer."""
SNAPSHOT_INTERVAL = "0.05"
"""Short epochs, so that the kills find several committed even on a fast machine. Measured on
one where the feed's alerts came within 0.5 s: with 3,000 background events a copy and 0.25 s
epochs, the third epoch committed after the last alert, so the "late" kill came too late."""
TIMEOUT = 90.0
END = b"--end-of-test--"
BAD_LINES = (b"not json\n", b'{"kind": "post"}\n', b"[1, 2, 3]\n")
"""Dead letters at the head of the feed: a resumed run must not read them again."""


# ---------------------------------------------------------------------------------------------
# the recovery directory (no Bytewax run)


def test_prepare_creates_partitions_once(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "recovery"
    assert recovery.prepare(db, 3) is True
    assert [p.name for p in recovery.partition_files(db)] == [f"part-{i}.sqlite3" for i in range(3)]
    assert recovery.prepare(db, 5) is False  # existing partitions are used as they are
    assert len(recovery.partition_files(db)) == 3
    state = recovery.inspect(db)
    assert (state.partitions, state.executions, state.resume_epoch) == (3, 0, None)
    assert state.fresh
    assert state.size_bytes > 0


def test_cluster_members_never_create_partitions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"python -m bytewax\.recovery"):
        recovery.prepare(tmp_path / "empty", 1, may_create=False)
    recovery.prepare(tmp_path / "ready", 2)
    assert recovery.prepare(tmp_path / "ready", 2, may_create=False) is False


def test_recovery_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        recovery.prepare(path, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partitions": 0}, "at least 1"),
        ({"snapshot_interval_seconds": 0.0}, "> 0"),
        ({"snapshot_interval_seconds": -1.0}, "> 0"),
        ({"backup_interval_seconds": -0.5}, ">= 0"),
    ],
)
def test_bad_recovery_options(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecoveryOptions(tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("snapshot", "default", "epoch"),
    [(None, 2.0, 2.0), (0.25, 2.0, 0.25), (30.0, 0.5, 30.0)],
)
def test_snapshot_interval_is_the_epoch_interval(
    tmp_path: Path, snapshot: float | None, default: float, epoch: float
) -> None:
    options = RecoveryOptions(tmp_path, snapshot_interval_seconds=snapshot)
    assert options.epoch_interval(default) == timedelta(seconds=epoch)
    assert Path(options.config().db_dir) == tmp_path


@pytest.mark.parametrize(
    "flags",
    [["--snapshot-interval", "1"], ["--backup-interval", "1"], ["--recovery-partitions", "2"]],
)
def test_recovery_flags_need_a_recovery_dir(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--input", "jsonl:-", *flags]) == 2
    assert "needs --recovery-dir" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the recovered state: a snapshot taken anywhere, restored, must carry on exactly


@pytest.fixture(scope="module")
def scored_events() -> tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]]:
    """A small scenario, parsed and scored, with its brand accounts."""
    sc = generate(seed=11, background=400)
    now = datetime.now(UTC)
    events = [parse_event(line, now) for line in sc.jsonl_bytes().splitlines()]
    valid = [e for e in events if isinstance(e, SocialEvent)]
    scores = iter(score_texts([e.text for e in valid if e.text is not None]))
    pairs = [(e, next(scores) if e.text is not None else None) for e in valid]
    return pairs, list(sc.brand_accounts)


@pytest.mark.parametrize("split", [0.05, 0.37, 0.5, 0.81, 0.99])
def test_restored_state_carries_on_exactly_like_the_uninterrupted_one(
    scored_events: tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]], split: float
) -> None:
    pairs, brands = scored_events
    settings = Settings(brand_accounts=brands)
    k = int(len(pairs) * split)
    whole = Stages(settings)
    expected = whole.feed(pairs)
    first = Stages(settings)
    head = first.feed(pairs[:k])
    resumed = first.restored(settings)
    tail = resumed.feed(pairs[k:])
    assert head + tail == expected  # same records, same influence numbers, same alert ids
    assert any(isinstance(x, str) for x in expected)  # the scenario does alert


def test_resume_applies_the_current_brands_and_influence_settings(
    scored_events: tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]],
) -> None:
    """State holds no settings: a resumed state runs under the current ones, no reconfigure."""
    pairs, brands = scored_events
    before = Settings(brand_accounts=brands)
    stages = Stages(before)
    stages.feed(pairs)
    enricher = stages.enricher
    watermark = enricher.watermark.value
    busiest = max(
        (e for e, _ in pairs if e.target is not None),
        key=lambda e: enricher.graph.inbound_accounts(
            e.customer_id, watermark, stages.enrich_policy.graph
        ),
    )
    new_brand = busiest.customer_id
    after = Settings(
        brand_accounts=[*brands, new_brand],
        influence={"half_life_seconds": 86_400},
        window={"length_seconds": 3600, "max_posts": 2, "allowed_lateness_seconds": 60},
        flow={"dedupe_seconds": 120},
    )
    resumed = stages.restored(after)
    # the new brand's interactions no longer count as reach (they still would under the old)
    replay = dataclasses.replace(busiest, id="after-resume", target=Account(id="new-one"))
    stale = stages.restored(before)
    edges = stale.enricher.graph.edge_count
    stale.feed([(replay, None)])
    assert stale.enricher.graph.edge_count == edges + 1
    edges = resumed.enricher.graph.edge_count
    resumed.feed([(replay, None)])
    assert resumed.enricher.graph.edge_count == edges
    # windows take the new length at once
    for state in resumed.customers.values():
        state.advance(watermark, resumed.policy, datetime.now(UTC))
        assert all(p.ts > state.window.now - 3600 for p in state.window.posts)
        assert state.window.summary(resumed.policy.window).window_seconds in (0, 3600)


def vip_post(event_id: str, minutes: float, text: str) -> bytes:
    created = DEFAULT_START + timedelta(minutes=minutes)
    return orjson.dumps(
        {"id": event_id, "platform": "twitter", "kind": "post", "created_at": created.isoformat(),
         "author": {"id": "vip", "handle": "vip", "followers": 50_000}, "text": text}
    )  # fmt: skip


def test_replayed_alert_leaves_the_view_of_its_moment(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """v1 writes a plain view, v2 fires the alert; a crash before any snapshot replays both."""
    lines = [
        vip_post("v1", 0, "This is the worst service ever. I am furious and disgusted."),
        vip_post("v2", 10, "Still no refund. Terrible, awful, horrible experience!!"),
    ]
    settings = Settings().with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    recovery.prepare(tmp_path, 1)
    config = RecoveryOptions(tmp_path).config()
    crash = [*lines, TestingSource.PAUSE(timedelta(seconds=0.3)), TestingSource.ABORT()]
    flow = build_flow(settings, TestingSource(crash))
    epoch = timedelta(seconds=60)  # no snapshot before the crash: the resume replays v1 and v2
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # stops at the ABORT
    key = f"{redis_prefix}customer:twitter:vip"
    assert orjson.loads(redis_client.hget(key, "sentiment"))["posts"] == 2  # type: ignore[arg-type]
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # the ABORT fires only once
    assert redis_client.xlen(f"{redis_prefix}alerts") == 1
    view = redis_client.hgetall(key)
    last = orjson.loads(view[b"last_alert"])
    assert orjson.loads(view[b"sentiment"]) == last["data"]["sentiment"]


def _prefixed(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": prefix})}
    )


def test_an_aborted_flow_resumes_the_graph_from_its_files(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """Real Bytewax, real files: the graph's snapshot is a small manifest of files in the
    recovery directory (bases and journal segments, rebased on the way); a resume from them
    delivers the alerts of an uninterrupted run, each once."""
    sc = generate(seed=11, background=1500)
    lines = sc.jsonl_bytes().splitlines()
    settings = Settings(brand_accounts=sc.brand_accounts, listen=sc.listen).with_redis_url(
        redis_url
    )
    clean = f"{redis_prefix}clean:"
    run_main(build_flow(_prefixed(settings, clean), TestingSource(lines, batch_size=50)))
    expected = stream_ids(redis_client, clean)
    assert expected

    crash_at = len(lines) * 2 // 3
    paced: list[Any] = []
    for start in range(0, len(lines), 100):  # a pause every 100 lines: an epoch each
        paced += [*lines[start : start + 100], TestingSource.PAUSE(timedelta(seconds=0.03))]
        if start + 100 >= crash_at and TestingSource.ABORT not in map(type, paced):
            paced.append(TestingSource.ABORT())
    db_dir = tmp_path / "recovery"
    recovery.prepare(db_dir, 1)
    journal = JournalPolicy(keep_manifests=3, rebase_floor_bytes=30_000, min_segments=2)
    flow = build_flow(
        _prefixed(settings, redis_prefix),
        TestingSource(paced, batch_size=50),
        recovery_dir=db_dir,
        journal_policy=journal,
    )
    config = RecoveryOptions(db_dir).config()
    epoch = timedelta(seconds=0.01)
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # stops at the ABORT
    state = recovery.inspect(db_dir)
    assert state.resume_epoch is not None and state.resume_epoch > 3
    files = sorted(p.name for p in (db_dir / GRAPH_DIR).iterdir())
    assert any(f.startswith("base-") for f in files) and any(f.startswith("seg-") for f in files)
    manifests = graph_snapshots(db_dir)
    assert manifests and all(size < 10_000 for size, _ in manifests)
    assert max(m.generation for _, m in manifests) >= 2  # rebased during the run
    assert len(stream_ids(redis_client, redis_prefix)) < len(expected)

    run_main(flow, epoch_interval=epoch, recovery_config=config)  # the ABORT fires only once
    ids = stream_ids(redis_client, redis_prefix)
    assert sorted(ids) == sorted(expected)  # every alert of the clean run, none twice


def test_a_resume_without_its_graph_files_fails_with_one_line(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    sc = generate(seed=5, background=400)
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(sc.jsonl_bytes())
    config = tmp_path / "sense-respond.toml"
    config.write_text(sc.config_toml())
    db_dir = tmp_path / "recovery"
    cmd = run_command((feed, config), redis_url, redis_prefix, "--recovery-dir", str(db_dir))
    run_to_end(cmd)
    graph_files = sorted((db_dir / GRAPH_DIR).iterdir())
    assert graph_files
    for path in graph_files:
        path.unlink()
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, env=clean_env(), check=False)
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("sense-respond: error: recovery file ")
    assert "is missing" in last and str(db_dir / GRAPH_DIR) in last
    assert "panicked" not in err and "Traceback" not in err


def graph_snapshots(db_dir: Path) -> list[tuple[int, GraphManifest]]:
    """The graph stage's snapshots Bytewax holds: (pickled bytes, manifest)."""
    out = []
    for path in recovery.partition_files(db_dir):
        con = sqlite3.connect(path)
        try:
            rows = con.execute(
                "SELECT ser_change FROM snaps WHERE step_id LIKE ? AND ser_change IS NOT NULL",
                ("%influence%",),
            ).fetchall()
        finally:
            con.close()
        out += [(len(blob), pickle.loads(blob)) for (blob,) in rows]
    return out


# ---------------------------------------------------------------------------------------------
# kill -9 and resume, end to end through the CLI


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A feed of several scenario copies one after another in event time, and its config."""
    tmp = tmp_path_factory.mktemp("recovery")
    path = tmp / "feed.jsonl"
    brands: set[str] = set()
    with path.open("wb") as fh:
        fh.write(b"".join(BAD_LINES))
        for k in range(COPIES):
            start = DEFAULT_START + timedelta(days=2 * k)
            sc = generate(seed=100 + k, background=6000, start=start)
            brands.update(sc.brand_accounts)
            fh.write(sc.jsonl_bytes())
    config = tmp / "sense-respond.toml"
    assert brands == set(sc.brand_accounts)  # every copy has the same brands and listening rules
    config.write_text(sc.config_toml())
    return path, config


def run_command(feed: tuple[Path, Path], url: str, prefix: str, *extra: str) -> list[str]:
    path, config = feed
    return [
        sys.executable, "-m", "sense_respond", "run", "--config", str(config),
        "--input", f"jsonl:{path}", "--redis-url", url, "--prefix", prefix, *extra,
    ]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SR_")}


def run_to_end(
    cmd: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = clean_env() if env is None else env
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done


def stream_ids(client: redis.Redis, prefix: str) -> list[str]:
    return [f[b"id"].decode() for _, f in client.xrange(f"{prefix}alerts")]


def customer_views(client: redis.Redis, prefix: str) -> dict[str, dict[bytes, bytes]]:
    """Every customer hash under `prefix`; `last_alert` reduced to its id (its `time` is the
    wall clock of delivery)."""
    keys = sorted(
        k
        for k in client.scan_iter(match=f"{prefix}customer:*", count=1000)
        if not k.endswith(b":incidents")  # the customer's incident history (a sorted set)
    )
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    views = {}
    for key, fields in zip(keys, pipe.execute(), strict=True):
        if b"last_alert" in fields:
            fields[b"last_alert"] = orjson.loads(fields[b"last_alert"])["id"].encode()
        views[key.decode()[len(prefix) :]] = fields
    return views


@dataclass(frozen=True)
class CleanRun:
    """What one uninterrupted run (no recovery) of the feed leaves in Redis."""

    alert_ids: list[str]
    views: dict[str, dict[bytes, bytes]]


@pytest.fixture(scope="module", autouse=True)
def clean_run_started(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path] | None]:
    """The clean run's process, started with the module's first test when a selected test
    needs it: it runs (on the other core) while the in-process tests above the kill tests do,
    instead of before the first kill test."""
    module = request.node
    if not any(
        item.module is module.obj and "clean_run" in item.fixturenames  # type: ignore[attr-defined]
        for item in request.session.items
    ):
        yield None
        return
    feed_files = request.getfixturevalue("feed")
    prefix = f"test:recovery-clean:{os.getpid()}:{time.time_ns()}:"
    log = tmp_path_factory.mktemp("clean-run") / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            run_command(feed_files, redis_url, prefix),
            stdout=subprocess.DEVNULL, stderr=err, env=clean_env(),
        )  # fmt: skip
    try:
        yield proc, prefix, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture(scope="module")
def clean_run(
    clean_run_started: tuple[subprocess.Popen[bytes], str, Path] | None, redis_url: str
) -> Iterator[CleanRun]:
    """One uninterrupted run of the feed, without recovery, into its own prefix."""
    assert clean_run_started is not None
    proc, prefix, log = clean_run_started
    client = redis.Redis.from_url(redis_url)
    try:
        code = proc.wait(TIMEOUT)
        assert code == 0, log.read_text(errors="replace")[-3000:]
        yield CleanRun(stream_ids(client, prefix), customer_views(client, prefix))
    finally:
        client.close()
        delete_prefix(redis_url, prefix)


@dataclass(frozen=True)
class Target:
    """Where a test's runs deliver: its Redis prefix, the alerts subscriber, the clean run."""

    client: redis.Redis
    prefix: str
    subscriber: redis.client.PubSub
    clean_run: CleanRun


@pytest.fixture
def target(
    redis_client: redis.Redis,
    redis_prefix: str,
    alerts_subscriber: redis.client.PubSub,
    clean_run: CleanRun,
) -> Target:
    return Target(redis_client, redis_prefix, alerts_subscriber, clean_run)


def published_ids(pubsub: redis.client.PubSub, client: redis.Redis, channel: str) -> list[str]:
    """Ids of every alert published on `channel` so far."""
    return [orjson.loads(data)["id"] for data in drain_channel(pubsub, client, channel)]


def kill_when(
    proc: subprocess.Popen[bytes],
    client: redis.Redis,
    stream: str,
    min_alerts: int,
    db_dir: Path,
    min_resume_epoch: int | None,
) -> int:
    """SIGKILL `proc` once `min_alerts` are in `stream` (and, if asked, an epoch is committed).

    Returns the stream length after the kill. Fails if the run ends first.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            pytest.fail("the run never reached the point to kill it")
        if client.xlen(stream) >= min_alerts:
            if min_resume_epoch is None:
                break
            resume = recovery.inspect(db_dir).resume_epoch
            if resume is not None and resume >= min_resume_epoch:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    return settled_length(client, stream)


def settled_length(client: redis.Redis, stream: str) -> int:
    """The length of `stream` once it stops growing: after a kill, Redis may still be running
    the commands of the last pipeline the process sent."""
    n = client.xlen(stream)
    while True:
        time.sleep(0.2)
        settled, n = n, client.xlen(stream)
        if settled == n:
            return n


def check_killed_in_time(
    delivered: int, min_alerts: int, total: int, db_dir: Path, min_resume_epoch: int | None
) -> recovery.RecoveryState:
    """The kill came after `min_alerts` but before the end, with the expected epoch committed."""
    assert min_alerts <= delivered < total, "killed too late to prove anything"
    state = recovery.inspect(db_dir)
    if min_resume_epoch is None:
        assert state.resume_epoch in (None, 1), "a snapshot was committed before the kill"
    else:
        assert state.resume_epoch is not None and state.resume_epoch >= min_resume_epoch
    return state


def check_resumed_like_the_clean_run(
    stderr: str,
    state: recovery.RecoveryState,
    delivered: int,
    min_resume_epoch: int | None,
    target: Target,
) -> None:
    """After the resume: every alert once (stream and channel), views as in the clean run."""
    redis_client, redis_prefix, clean_run = target.client, target.prefix, target.clean_run
    dead_letters = redis_client.xlen(f"{redis_prefix}dlq")
    suppressed = sum(int(n) for n in re.findall(r"suppressed (\d+) duplicate", stderr))
    if min_resume_epoch is not None:
        # It really resumed mid-input: the head of the feed (the bad lines) was not read again.
        assert f"resuming from epoch {state.resume_epoch}" in stderr, stderr[-2000:]
        assert dead_letters == len(BAD_LINES)
        assert suppressed <= delivered
    else:
        # Nothing was committed: it started over, so every alert delivered before the kill was
        # replayed, and written once, and so were the dead letters (by their ids).
        assert "nothing committed yet: starting fresh" in stderr, stderr[-2000:]
        assert suppressed == delivered
        assert dead_letters == len(BAD_LINES)

    ids = stream_ids(redis_client, redis_prefix)
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates
    assert set(ids) == set(clean_run.alert_ids)
    published = published_ids(target.subscriber, redis_client, f"{redis_prefix}alerts")
    assert sorted(published) == sorted(ids)  # every alert published once, none twice
    # every customer's view ends as after the uninterrupted run, last alert included
    views = customer_views(redis_client, redis_prefix)
    assert views.keys() == clean_run.views.keys()
    differ = sorted(c for c in views if views[c] != clean_run.views[c])
    assert not differ, [(c, views[c], clean_run.views[c]) for c in differ[:3]]


def kill_9_then_resume(
    first: list[str],
    resume: list[str],
    env: dict[str, str],
    tmp_path: Path,
    db_dir: Path,
    kill_at_fraction: float,
    min_resume_epoch: int | None,
    target: Target,
) -> None:
    """Start `first`, SIGKILL it once `kill_at_fraction` of the alerts are out (and, if asked,
    `min_resume_epoch` is committed), run `resume` to the end: Redis must end as after the clean
    run, every alert once."""
    total = len(target.clean_run.alert_ids)
    min_alerts = max(1, int(total * kill_at_fraction))
    stream = f"{target.prefix}alerts"
    with (tmp_path / "killed.err").open("wb") as err:
        proc = subprocess.Popen(first, stdout=subprocess.DEVNULL, stderr=err, env=env)
        delivered = kill_when(proc, target.client, stream, min_alerts, db_dir, min_resume_epoch)
    state = check_killed_in_time(delivered, min_alerts, total, db_dir, min_resume_epoch)
    resumed = run_to_end(resume, env=env)
    (tmp_path / "resumed.err").write_bytes(resumed.stderr)
    check_resumed_like_the_clean_run(
        resumed.stderr.decode(), state, delivered, min_resume_epoch, target
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("snapshot_interval", "kill_at_fraction", "min_resume_epoch"),
    [
        # mid-run: a third of the alerts out and at least one epoch committed
        pytest.param(SNAPSHOT_INTERVAL, 1 / 3, 2, id="mid-run"),
        # late: most alerts out, many epochs committed
        pytest.param(SNAPSHOT_INTERVAL, 0.8, 3, id="late"),
        # before the first snapshot: the resumed run starts over and replays every alert
        pytest.param("60", 0.0, None, id="before-first-snapshot"),
    ],
)
def test_kill_9_and_resume_delivers_every_alert_once(
    feed: tuple[Path, Path],
    clean_run: CleanRun,
    redis_url: str,
    target: Target,
    tmp_path: Path,
    snapshot_interval: str,
    kill_at_fraction: float,
    min_resume_epoch: int | None,
) -> None:
    assert len(set(clean_run.alert_ids)) == len(clean_run.alert_ids) >= 8 * COPIES  # no repeats
    db_dir = tmp_path / "recovery dir #1"  # a path that needs quoting in a SQLite URI
    cmd = run_command(
        feed, redis_url, target.prefix, "--recovery-dir", str(db_dir),
        "--snapshot-interval", snapshot_interval,
    )  # fmt: skip
    kill_9_then_resume(
        cmd, cmd, clean_env(), tmp_path, db_dir, kill_at_fraction, min_resume_epoch, target
    )


# ---------------------------------------------------------------------------------------------
# kill -9 and resume with --input redis:KEY (the resumable stream partition)

IDLE_EXIT_SECONDS = "0.5"
"""The runs over a stream end once it was idle this long: the whole stream is pushed before a
run starts, so it is idle only once it is read to the end (and everything handed out is
acknowledged: the partition checks that before it counts idleness)."""


def stream_env() -> dict[str, str]:
    return {**clean_env(), "SR_REDIS__INPUT_IDLE_EXIT_SECONDS": IDLE_EXIT_SECONDS}


def stream_command(
    feed: tuple[Path, Path], url: str, prefix: str, stream: str, *extra: str
) -> list[str]:
    cmd = run_command(feed, url, prefix, *extra)
    cmd[cmd.index("--input") + 1] = f"redis:{stream}"
    return cmd


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first_interval", "kill_at_fraction", "min_resume_epoch"),
    [
        # mid-run: a third of the alerts out and at least one epoch committed; entries read
        # (and acknowledged) after that snapshot must be read again
        pytest.param(SNAPSHOT_INTERVAL, 1 / 3, 2, id="mid-run"),
        # before the first snapshot: the resumed run starts over from the group's pending list
        pytest.param("60", 0.0, None, id="before-first-snapshot"),
    ],
)
def test_kill_9_and_resume_from_a_redis_stream_delivers_every_alert_once(
    feed: tuple[Path, Path],
    redis_url: str,
    target: Target,
    tmp_path: Path,
    first_interval: str,
    kill_at_fraction: float,
    min_resume_epoch: int | None,
) -> None:
    redis_client = target.client
    stream = f"{target.prefix}in"
    with feed[0].open("rb") as fh:
        pushed = push_jsonl(redis_client, stream, fh)
    db_dir = tmp_path / "recovery"

    def command(snapshot_interval: str) -> list[str]:
        return stream_command(
            feed, redis_url, target.prefix, stream, "--recovery-dir", str(db_dir),
            "--snapshot-interval", snapshot_interval,
        )  # fmt: skip

    # The resume takes frequent snapshots: a bounded run with nothing committed yet ends only
    # once a snapshot covers its last entry. The clean run read the same lines from a file.
    kill_9_then_resume(
        command(first_interval), command(SNAPSHOT_INTERVAL), stream_env(), tmp_path, db_dir,
        kill_at_fraction, min_resume_epoch, target,
    )  # fmt: skip
    # The whole stream was read, nothing is left pending, and the consumer left the group.
    group = redis_client.xinfo_groups(stream)[0]
    assert (group["pending"], group["entries-read"]) == (0, pushed)
    assert redis_client.xinfo_consumers(stream, group["name"]) == []


# ---------------------------------------------------------------------------------------------
# SIGTERM / SIGINT: drain, final snapshot, exit 0, and a restart continues exactly

STOP_WITHIN_SECONDS = 10.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "source"),
    [(signal.SIGTERM, "jsonl"), (signal.SIGINT, "redis")],
    ids=["sigterm-jsonl", "sigint-redis"],
)
def test_a_signal_drains_exits_0_and_a_restart_continues_exactly(
    feed: tuple[Path, Path],
    clean_run: CleanRun,
    redis_url: str,
    redis_prefix: str,
    redis_client: redis.Redis,
    alerts_subscriber: redis.client.PubSub,
    tmp_path: Path,
    signum: signal.Signals,
    source: str,
) -> None:
    expected = set(clean_run.alert_ids)
    db_dir = tmp_path / "recovery"
    extra = ("--recovery-dir", str(db_dir), "--snapshot-interval", SNAPSHOT_INTERVAL)
    env = clean_env()
    if source == "redis":
        stream = f"{redis_prefix}in"
        with feed[0].open("rb") as fh:
            pushed = push_jsonl(redis_client, stream, fh)
        cmd = stream_command(feed, redis_url, redis_prefix, stream, *extra)
        env = stream_env()
    else:
        cmd = run_command(feed, redis_url, redis_prefix, *extra)
    alerts = f"{redis_prefix}alerts"

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + TIMEOUT
    while redis_client.xlen(alerts) < len(expected) // 3:
        assert first.poll() is None, first.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got a third of the way"
        time.sleep(0.005)
    first.send_signal(signum)
    try:
        _, err = first.communicate(timeout=STOP_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        first.kill()
        pytest.fail(f"{signum.name}: no exit within {STOP_WITHIN_SECONDS:g}s")
    stopped = err.decode()
    assert first.returncode == 0, stopped[-3000:]
    assert "Traceback" not in stopped, stopped[-3000:]
    summary = [line for line in stopped.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1 and f'"stopped_by":"{signum.name}"' in summary[0], stopped[-2000:]
    delivered = redis_client.xlen(alerts)
    assert delivered < len(expected), "stopped too late to prove anything"

    resumed = run_to_end(cmd, env=env)
    text = resumed.stderr.decode()
    assert "resuming from epoch" in text, text[-2000:]
    # Exact continuation: nothing replayed, nothing twice, nothing missing.
    assert not re.findall(r"suppressed (\d+) duplicate", text), text[-2000:]
    assert redis_client.xlen(f"{redis_prefix}dlq") == len(BAD_LINES)
    ids = stream_ids(redis_client, redis_prefix)
    assert len(ids) == len(set(ids)) and set(ids) == expected
    published = published_ids(alerts_subscriber, redis_client, alerts)
    assert sorted(published) == sorted(ids)
    if source == "redis":
        group = redis_client.xinfo_groups(stream)[0]
        assert (group["pending"], group["entries-read"]) == (0, pushed)
        assert redis_client.xinfo_consumers(stream, group["name"]) == []
