"""The recovery directory and options, without a Bytewax run: partitions created once (never by
a cluster member), bad options and flags refused. Its permissions: `test_recovery_perms.py`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sense_respond import recovery
from sense_respond.cli import main
from sense_respond.recovery import RecoveryOptions

pytestmark = pytest.mark.usefixtures("recovery_clean_run_started")
"""When end-to-end recovery tests are selected too, their clean run (a session fixture of
`conftest.py`) runs on the other core while this module's tests do."""


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
