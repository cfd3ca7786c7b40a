"""Bytewax recovery: `sense-respond run --recovery-dir` killed with SIGKILL, then resumed.

The resumed run must leave Redis exactly as one uninterrupted run does: the same set of alert
ids in the stream, each once, and each published once on the channel, although the resumed run
replays everything after the last snapshot (at-least-once inside the flow, exactly-once in Redis
thanks to deterministic alert ids and the sink's `SET NX` marker). Input from a Redis stream:
`test_recovery_kill_9_stream.py`; SIGTERM/SIGINT: `test_recovery_signals.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from recovery_helpers import (
    COPIES,
    SNAPSHOT_INTERVAL,
    CleanRun,
    Target,
    clean_env,
    kill_9_then_resume,
    run_command,
)
from recovery_helpers import clean_run as clean_run
from recovery_helpers import feed as feed
from recovery_helpers import target as target


@pytest.mark.slow
@pytest.mark.parametrize(
    ("snapshot_interval", "kill_at_fraction", "min_resume_epoch"),
    [
        # mid-run: a third of the alerts out and at least one epoch committed
        pytest.param(SNAPSHOT_INTERVAL, 1 / 3, 2, id="mid-run"),
        # late: most alerts out, many epochs committed (a fifth of the feed's alerts are quiet
        # resolutions sent at the end of the input: a kill after 80% would land there)
        pytest.param(SNAPSHOT_INTERVAL, 0.6, 3, id="late"),
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
