"""kill -9 and resume with `--input redis:KEY` (the resumable stream partition): every alert once,
as in the uninterrupted run of the same lines from a file, and the whole stream read and
acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest
from recovery_helpers import (
    SNAPSHOT_INTERVAL,
    Target,
    kill_9_then_resume,
    stream_command,
    stream_env,
)
from recovery_helpers import clean_run as clean_run
from recovery_helpers import feed as feed
from recovery_helpers import target as target

from connectors.redis_source import push_jsonl


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
