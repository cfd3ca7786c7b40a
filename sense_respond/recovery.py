"""Bytewax recovery for `sense-respond run --recovery-dir DIR`.

Bytewax 0.21 keeps recovery state in SQLite "partitions" (`part-N.sqlite3`) in a local
directory: at the end of every epoch it snapshots each stateful step (the input's byte offsets,
the influence graph as a small manifest of its files in `DIR/graph/` (`connectors.graph_store`),
every customer's window and cooldown) and commits the epoch. A run that finds committed state
resumes from the last committed epoch: the sources rewind to their snapshotted positions and
everything after is processed again, so output since the last snapshot is replayed
(at-least-once). Alerts stay exactly-once in Redis because their ids are deterministic and the
alert sink writes each id once (`connectors.lifecycle_delivery`).

This module only prepares the directory (creating the partitions on first use, the same as
`python -m bytewax.recovery DIR N`), builds the `RecoveryConfig`, and describes what a directory
holds so the CLI can say whether it starts fresh or resumes.

The snapshots are pickles: whoever can write them runs code in the next resumed run, and they
hold customers' posts. So a directory is created 0700 with its partitions 0600, and one that
other users could write (the directory, a file in it, or a parent they could rename it out of)
is refused before anything in it is read (`ensure_private`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir

from connectors.graph_store import GRAPH_DIR, JournalPolicy

PARTITION_GLOB = "part-*.sqlite3"

log = logging.getLogger(__name__)


class UnsafeRecoveryDir(ValueError):
    """The recovery directory could be written by other users: loading it would run their code."""


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    """What the `run` command's recovery flags asked for."""

    db_dir: Path
    partitions: int = 1
    snapshot_interval_seconds: float | None = None
    """None: the flow's epoch interval (`flow.epoch_interval_seconds`)."""
    backup_interval_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError("--recovery-partitions must be at least 1")
        if self.snapshot_interval_seconds is not None and self.snapshot_interval_seconds <= 0:
            raise ValueError("--snapshot-interval must be > 0 seconds")
        if self.backup_interval_seconds < 0:
            raise ValueError("--backup-interval must be >= 0 seconds")

    def epoch_interval(self, default_seconds: float) -> timedelta:
        """The epoch length of the run: Bytewax snapshots once per epoch."""
        seconds = self.snapshot_interval_seconds
        return timedelta(seconds=default_seconds if seconds is None else seconds)

    def journal_policy(self, epoch: timedelta) -> JournalPolicy:
        """How the graph stage keeps its snapshot files (`connectors.graph_store`): the files
        of enough snapshots for a resume, and for copies within the backup interval."""
        return JournalPolicy.for_intervals(epoch.total_seconds(), self.backup_interval_seconds)

    def config(self) -> RecoveryConfig:
        """The Bytewax `RecoveryConfig` for this directory."""
        return RecoveryConfig(self.db_dir, timedelta(seconds=self.backup_interval_seconds))


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """What a recovery directory holds (read from Bytewax's tables, best effort)."""

    partitions: int
    executions: int
    """Runs recorded so far (0: nothing has run on these partitions yet)."""
    resume_epoch: int | None
    """The epoch a run resumes from (epochs start at 1); None when none was recorded yet."""
    size_bytes: int

    @property
    def fresh(self) -> bool:
        """Nothing committed yet: a run starts from the beginning of its input."""
        return self.resume_epoch is None or self.resume_epoch <= 1


def partition_files(db_dir: Path) -> list[Path]:
    """The recovery partitions in `db_dir`, sorted."""
    return sorted(db_dir.glob(PARTITION_GLOB)) if db_dir.is_dir() else []


def prepare(db_dir: Path, partitions: int, *, may_create: bool = True) -> bool:
    """Make `db_dir` ready for a recovery run; True if partitions were created now.

    A directory that already holds partitions is used as it is, whatever their count (Bytewax
    checks that the set is complete and consistent when the run starts). An empty or missing
    directory gets `partitions` new ones unless `may_create` is False (cluster members: the
    partitions of a cluster are created once, with `python -m bytewax.recovery`, and spread
    over the processes; each creating its own set would make them inconsistent).
    """
    if db_dir.exists() and not db_dir.is_dir():
        raise ValueError(f"recovery directory {db_dir} is not a directory")
    if db_dir.exists():
        ensure_private(db_dir)
    if partition_files(db_dir):
        return False
    if not may_create:
        raise FileNotFoundError(
            f"no recovery partitions in {db_dir}: a cluster's partitions are created once, with"
            " `python -m bytewax.recovery DIR N`, before its processes start"
        )
    if not db_dir.exists():
        # Every directory created here is 0700 whatever the umask (parents too: a parent that
        # others can write would let them swap the recovery directory).
        for directory in [*reversed(db_dir.parents), db_dir]:
            try:
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue
            directory.chmod(0o700)
        ensure_private(db_dir)
    init_db_dir(db_dir, partitions)
    for path in partition_files(db_dir):
        path.chmod(0o600)
    return True


_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def ensure_private(db_dir: Path) -> None:
    """Refuse `db_dir` if another user could write to it; make it unreadable to them.

    Refused: a directory or file in it owned by another user or writable by group or others,
    a symlink in it, or a parent directory that others may write without the sticky bit (they
    could move the directory away and put their own in its place). What others could merely
    read is tightened (0700 / 0600), with a warning: snapshots hold customers' posts.
    """
    uid = os.geteuid()
    resolved = db_dir.resolve()
    st = resolved.stat()
    if st.st_uid != uid:
        raise UnsafeRecoveryDir(
            f"recovery directory {db_dir} belongs to uid {st.st_uid}, not to this user ({uid});"
            " its snapshots are code this run would execute"
        )
    if st.st_mode & _OTHERS_WRITE:
        raise UnsafeRecoveryDir(
            f"recovery directory {db_dir} is writable by other users"
            f" (mode {stat.S_IMODE(st.st_mode):o}); its snapshots are code this run would"
            f" execute: `chmod 700 {db_dir}` if nobody else wrote to it"
        )
    for parent in resolved.parents:
        pst = parent.stat()
        if pst.st_mode & stat.S_IWOTH and not pst.st_mode & stat.S_ISVTX:
            raise UnsafeRecoveryDir(
                f"recovery directory {db_dir}: its parent {parent} is writable by everyone"
                " without the sticky bit, so anyone could swap the directory"
            )
    graph = resolved / GRAPH_DIR  # the graph stage's snapshot files: pickles too
    folders = [resolved, graph] if graph.is_dir() and not graph.is_symlink() else [resolved]
    for folder in folders:
        for entry in folder.iterdir():
            est = entry.lstat()
            if stat.S_ISLNK(est.st_mode):
                raise UnsafeRecoveryDir(
                    f"recovery directory {db_dir} holds a symlink: {entry.relative_to(resolved)}"
                )
            if est.st_uid != uid or est.st_mode & _OTHERS_WRITE:
                raise UnsafeRecoveryDir(
                    f"recovery file {entry} is writable by, or belongs to, another user"
                    f" (uid {est.st_uid}, mode {stat.S_IMODE(est.st_mode):o}); refusing to load it"
                )
    if stat.S_IMODE(st.st_mode) & 0o077:
        log.warning("recovery directory %s was readable by other users: now 0700", db_dir)
        resolved.chmod(0o700)
    for folder in folders:
        for entry in folder.iterdir():
            if entry.is_dir() and stat.S_IMODE(entry.lstat().st_mode) & 0o077:
                entry.chmod(0o700)
            elif entry.is_file() and stat.S_IMODE(entry.lstat().st_mode) & 0o077:
                entry.chmod(0o600)


def inspect(db_dir: Path) -> RecoveryState:
    """Describe a recovery directory without changing it.

    Reads Bytewax 0.21's own tables: `exs` (one row per execution) and `fronts` (each worker's
    frontier in each execution, the epoch it had not finished yet). A run resumes from the
    oldest frontier of the latest execution. The layout is Bytewax's, so any surprise reads as
    "unknown" instead of failing the run.
    """
    files = partition_files(db_dir)
    executions = 0
    fronts: dict[int, dict[int, int]] = {}  # execution -> worker -> frontier
    for path in files:
        with contextlib.suppress(sqlite3.Error):
            con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
            try:
                for (ex,) in con.execute("SELECT ex_num FROM exs"):
                    executions = max(executions, int(ex) + 1)
                rows = con.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts")
                for ex, worker, frontier in rows:
                    fronts.setdefault(int(ex), {})[int(worker)] = int(frontier)
            finally:
                con.close()
    resume = min(fronts[max(fronts)].values()) if fronts else None
    return RecoveryState(len(files), executions, resume, directory_size(db_dir))


def directory_size(db_dir: Path) -> int:
    """Bytes used by the files of a recovery directory (SQLite files and their journals)."""
    return sum(f.stat().st_size for f in db_dir.iterdir() if f.is_file()) if db_dir.is_dir() else 0
