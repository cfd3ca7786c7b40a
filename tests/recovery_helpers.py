"""Helpers of the end-to-end recovery tests: `sense-respond run --recovery-dir` killed (or
stopped), then resumed, checked against one uninterrupted run of the same feed.

The feed and the clean run are session fixtures of `tests/conftest.py` (`recovery_feed`,
`recovery_clean_run`): computed once for every module that needs them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import redis
from redis_helpers import drain_channel

from sense_respond import recovery
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
BAD_LINES = (b"not json\n", b'{"kind": "post"}\n', b"[1, 2, 3]\n")
"""Dead letters at the head of the feed: a resumed run must not read them again."""


def write_feed(tmp: Path) -> tuple[Path, Path]:
    """A feed of several scenario copies one after another in event time, and its config."""
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


def published_ids(pubsub: redis.client.PubSub, client: redis.Redis, channel: str) -> list[str]:
    """Ids of every alert published on `channel` so far."""
    return [orjson.loads(data)["id"] for data in drain_channel(pubsub, client, channel)]


@dataclass(frozen=True)
class CleanRun:
    """What one uninterrupted run (no recovery) of the feed leaves in Redis."""

    alert_ids: list[str]
    views: dict[str, dict[bytes, bytes]]


@dataclass(frozen=True)
class Target:
    """Where a test's runs deliver: its Redis prefix, the alerts subscriber, the clean run."""

    client: redis.Redis
    prefix: str
    subscriber: redis.client.PubSub
    clean_run: CleanRun


# ---------------------------------------------------------------------------------------------
# kill -9 and resume


# Fixtures the end-to-end recovery modules share (imported by name there): the session's feed
# and clean run (`conftest.py`), and where a test's run writes.
@pytest.fixture(scope="module")
def feed(recovery_feed: tuple[Path, Path]) -> tuple[Path, Path]:
    """The feed and its config (`recovery_helpers.write_feed`), written once for the session."""
    return recovery_feed


@pytest.fixture(scope="module")
def clean_run(recovery_clean_run: CleanRun) -> CleanRun:
    """The uninterrupted run of the feed, run once for the session (`conftest.py`)."""
    return recovery_clean_run


@pytest.fixture
def target(
    redis_client: redis.Redis,
    redis_prefix: str,
    alerts_subscriber: redis.client.PubSub,
    clean_run: CleanRun,
) -> Target:
    return Target(redis_client, redis_prefix, alerts_subscriber, clean_run)


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


# ---------------------------------------------------------------------------------------------
# --input redis:KEY (the resumable stream partition)

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
