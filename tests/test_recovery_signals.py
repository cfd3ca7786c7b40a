"""SIGTERM / SIGINT: drain, final snapshot, exit 0, and a restart continues exactly."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from recovery_helpers import (
    BAD_LINES,
    SNAPSHOT_INTERVAL,
    TIMEOUT,
    CleanRun,
    clean_env,
    published_ids,
    run_command,
    run_to_end,
    stream_command,
    stream_env,
    stream_ids,
)
from recovery_helpers import clean_run as clean_run
from recovery_helpers import feed as feed

from connectors.redis_source import push_jsonl

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
