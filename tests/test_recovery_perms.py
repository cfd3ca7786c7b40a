"""Recovery snapshots are pickles: other users must not be able to write (or read) them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sense_respond import recovery
from sense_respond.recovery import UnsafeRecoveryDir, ensure_private, prepare


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_created_private_whatever_the_umask(tmp_path: Path) -> None:
    db_dir = tmp_path / "state" / "recovery"
    old = os.umask(0)
    try:
        assert prepare(db_dir, 2)
    finally:
        os.umask(old)
    assert _mode(db_dir) == 0o700
    parts = recovery.partition_files(db_dir)
    assert len(parts) == 2
    assert all(_mode(p) == 0o600 for p in parts)


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    db_dir.chmod(mode)
    with pytest.raises(UnsafeRecoveryDir, match="writable by other users"):
        prepare(db_dir, 1)


def test_a_file_others_can_write_is_refused(tmp_path: Path) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    recovery.partition_files(db_dir)[0].chmod(0o666)
    with pytest.raises(UnsafeRecoveryDir, match=r"part-0\.sqlite3"):
        ensure_private(db_dir)


def test_a_symlink_inside_is_refused(tmp_path: Path) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    (db_dir / "part-9.sqlite3").symlink_to(tmp_path / "elsewhere.sqlite3")
    with pytest.raises(UnsafeRecoveryDir, match="symlink"):
        ensure_private(db_dir)


def test_a_swappable_parent_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # everyone may write, no sticky bit
    with pytest.raises(UnsafeRecoveryDir, match="sticky"):
        prepare(shared / "recovery", 1)
    shared.chmod(0o1777)  # like /tmp: others cannot move our entries
    assert prepare(shared / "recovery", 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    os.chown(db_dir, 65534, 65534)  # nobody
    with pytest.raises(UnsafeRecoveryDir, match="belongs to uid 65534"):
        ensure_private(db_dir)


def test_readable_state_is_tightened(tmp_path: Path) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    db_dir.chmod(0o755)
    part = recovery.partition_files(db_dir)[0]
    part.chmod(0o644)
    ensure_private(db_dir)
    assert _mode(db_dir) == 0o700
    assert _mode(part) == 0o600


def test_the_run_refuses_it_with_a_clear_error(tmp_path: Path, redis_url: str) -> None:
    db_dir = tmp_path / "recovery"
    prepare(db_dir, 1)
    db_dir.chmod(0o777)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sense_respond",
            "run",
            "--input",
            "jsonl:-",
            "--recovery-dir",
            str(db_dir),
            "--redis-url",
            redis_url,
        ],
        input=b"",
        capture_output=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SR_")},
        check=False,
    )
    assert done.returncode == 2
    assert b"writable by other users" in done.stderr
    assert b"Traceback" not in done.stderr
