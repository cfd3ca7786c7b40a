"""The influence graph's recovery files: a base now and then, a journal segment every epoch.

Bytewax pickles every stateful step's snapshot at the end of every epoch. The graph stage's
state is one big object (38 MB pickled for Higgs) of which an epoch changes little, so its
snapshot is a small `GraphManifest` instead: the name of a *base* file (the whole state,
pickled) and of the *segments* written since, each the records the stage processed during one
epoch. A resume loads the base and replays the segments through the stage (`GraphJournal`,
`flows.stateful_stages.InfluenceLogic`). What is written per epoch then grows with the epoch's
events, not with the graph.

Files (in `{recovery_dir}/graph/`, 0700 / 0600, like the partitions):

* immutable and content-addressed: `base-<digest>.bin` / `seg-<digest>.bin`, the digest a
  BLAKE2b-128 of the contents, checked on every read: a damaged file fails with its name;
* written to a temporary name, fsynced, renamed, and the directory fsynced, so a `kill -9` at
  any moment leaves either the whole file or none (a leftover temporary is collected later). A
  manifest names only files that were durable before it was returned to Bytewax;
* a new base replaces the journal (a *rebase*) when the segments since the current base add up
  to `rebase_fraction` of its size (and at least `rebase_floor_bytes`), or number
  `max_segments`: disk use and the replay at a resume stay bounded by the graph's size, and
  the base is rewritten once per that much journal (amortised: every event is written about
  1 + 1 / `rebase_fraction` times).

Garbage collection keeps every file the last `keep_manifests` manifests name (at least 3, the
one a run resumed from counting as the first). Why that is safe: Bytewax 0.21 resumes from the
newest snapshot of an epoch before the resume epoch, the oldest frontier of the last execution;
a source emits epoch E only once the whole dataflow, recovery writes included, has finished
E - 1 (its progress probe). So when snapshot() runs for epoch E, a resume would load the
snapshot of E - 1 or older, and once E's frontier is written that of E: at most one snapshot
behind the newest. A killed run may leave snapshot rows of epochs its frontier never passed
(one at most, by the same probe); after a resume they stay loadable until the new run has
taken a snapshot of a later epoch and passed it, which it has when it takes its second
snapshot, before which nothing is deleted (then leftovers of the killed run go too).
`--backup-interval S` keeps superseded snapshots S seconds for copies of the directory taken
meanwhile, so the files they name are kept as long: `for_intervals` keeps 3 + S / epoch
manifests (a snapshot is taken at most once per epoch, so that many span S seconds at least).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pickle
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from operators.influence import Touch
from operators.touch_columns import dumps_records, loads_records

GRAPH_DIR = "graph"
"""The folder of a recovery directory holding the graph stage's files."""

_MAGIC = b"sense-respond graph v1\n"
_MANIFEST_VERSION = 1
_BASE = "base"
_SEGMENT = "seg"
_NAME = re.compile(r"(base|seg)-[0-9a-f]{32}\.bin|\.tmp-.*")
EXIT_BAD_RECOVERY = 2
"""Exit status when the recovery files cannot be restored (as for any bad recovery dir)."""


class GraphStoreError(ValueError):
    """A recovery file of the graph stage is missing, damaged or from another version."""


_SEGMENT_FORMAT = 4
"""2: each value is (worker, records), the worker's tag kept (its lane of the watermark).
3: the same, each list's `Touch` records as columns of at most `COLUMN_ROWS` rows
(`operators.touch_columns`), the epoch's lists marshalled as one.
4: the same, each list marshalled on its own: `marshal` remembers every object it wrote to
refer back to it, and that table over a whole epoch made it cost twice as much a record
(0.58 µs against 0.28 on Higgs records, lists of 500)."""


def encode_segment(values: list[tuple[Any, list[Any]]]) -> bytes:
    """One epoch's values (each the upstream worker's tag and the list of records of one
    upstream batch) as a segment.

    `Touch` records, nearly all of them, go through `marshal` as blocks of columns of plain
    values: one `zip` per block instead of one tuple per record, and no pickling of named
    tuples (this runs at every snapshot, for every event of the epoch). The rest
    (withdrawals, purges) are pickled with their places. The field names are kept, so a
    segment of a different `Touch` shape is refused rather than misread.
    """
    workers: list[Any] = []
    lists: list[bytes] = []
    others: list[tuple[int, int, Any]] = []
    for b, (worker, records) in enumerate(values):
        workers.append(worker)
        blob, rest = dumps_records(records)
        lists.append(blob)
        others.extend((b, i, r) for i, r in rest)
    return pickle.dumps(
        (_SEGMENT_FORMAT, Touch._fields, workers, lists, others),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def decode_segment(payload: bytes) -> list[tuple[Any, list[Any]]]:
    """The values `encode_segment` was given, records rebuilt."""
    loaded = pickle.loads(payload)
    version, fields = loaded[0], loaded[1]
    if version != _SEGMENT_FORMAT or tuple(fields) != Touch._fields:
        raise ValueError(
            f"a journal segment of another version (format {version!r}, records {fields!r})"
        )
    _, _, workers, lists, others = loaded
    placed: dict[int, list[tuple[int, Any]]] = {}
    for b, i, record in others:
        placed.setdefault(b, []).append((i, record))
    batches = [loads_records(blob, placed.get(b, ())) for b, blob in enumerate(lists)]
    return list(zip(workers, batches, strict=True))


def _digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class GraphStore:
    """Immutable, content-addressed files in one directory (created 0700 on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.bytes_written = 0
        self.files_written = 0

    def path(self, kind: str, digest: str) -> Path:
        return self.directory / f"{kind}-{digest}.bin"

    def put(self, kind: str, payload: bytes) -> str:
        """Store `payload` durably; returns its digest (a file already there is kept)."""
        digest = _digest(payload)
        final = self.path(kind, digest)
        if final.exists():  # the same name is the same bytes: written before, fully
            return digest
        self._ensure_directory()
        temporary = self.directory / f".tmp-{kind}-{digest}-{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(_MAGIC)
                out.write(payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        self._sync_directory()
        self.bytes_written += len(_MAGIC) + len(payload)
        self.files_written += 1
        return digest

    def get(self, kind: str, digest: str) -> bytes:
        """The payload stored under `digest`; `GraphStoreError` naming the file if it is missing
        or does not match its digest."""
        path = self.path(kind, digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise GraphStoreError(
                f"recovery file {path} is missing: the graph snapshot cannot be restored"
                " (the directory must be kept, and copied, whole)"
            ) from None
        except OSError as exc:
            raise GraphStoreError(f"recovery file {path} cannot be read: {exc}") from None
        payload = data[len(_MAGIC) :]
        if not data.startswith(_MAGIC) or _digest(payload) != digest:
            raise GraphStoreError(
                f"recovery file {path} is damaged (its contents do not match its name)"
            )
        return payload

    def names(self) -> set[str]:
        """The names of this store's files (and leftover temporaries) in the directory."""
        if not self.directory.is_dir():
            return set()
        return {p.name for p in self.directory.iterdir() if _NAME.fullmatch(p.name)}

    def remove_all_but(self, keep: set[str]) -> list[str]:
        """Delete every file of this store not named in `keep`; returns the names deleted."""
        doomed = sorted(self.names() - keep)
        for name in doomed:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        return doomed

    def _ensure_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.chmod(0o700)
            self._sync(self.directory.parent)

    def _sync_directory(self) -> None:
        self._sync(self.directory)

    @staticmethod
    def _sync(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class GraphManifest:
    """The graph stage's snapshot: which files hold its state (what Bytewax pickles)."""

    base: str | None = None
    """Digest of the base file; None: the empty state (nothing rebased yet)."""
    segments: tuple[str, ...] = ()
    """Digests of the segments since the base, in order."""
    base_bytes: int = 0
    journal_bytes: int = 0
    """Bytes of the segments since the base."""
    generation: int = 0
    """Bases written so far (0: none yet)."""

    def files(self) -> set[str]:
        """The names of the files this manifest needs."""
        names = {f"{_SEGMENT}-{d}.bin" for d in self.segments}
        if self.base is not None:
            names.add(f"{_BASE}-{self.base}.bin")
        return names

    def __reduce__(self) -> tuple:
        fields = (self.base, self.segments, self.base_bytes, self.journal_bytes, self.generation)
        return (_manifest, (_MANIFEST_VERSION, *fields))


def _manifest(version: int, *fields: Any) -> GraphManifest:
    if version != _MANIFEST_VERSION:
        raise GraphStoreError(
            f"unsupported graph snapshot manifest (version {version!r}): resume needs a"
            " recovery directory written by this version"
        )
    return GraphManifest(*fields)


@dataclass(frozen=True, slots=True)
class JournalPolicy:
    """When to rebase and how many manifests' files to keep (see the module docstring)."""

    keep_manifests: int = 4
    rebase_fraction: float = 0.5
    rebase_floor_bytes: int = 4 << 20
    max_segments: int = 128
    min_segments: int = 4
    """A rebase needs at least this many segments since the last one (a tiny graph under a
    busy stream would otherwise rewrite its base at every epoch)."""

    def __post_init__(self) -> None:
        if self.keep_manifests < 3:
            raise ValueError("keep_manifests must be at least 3 (see the module docstring)")

    @classmethod
    def for_intervals(cls, snapshot_seconds: float, backup_seconds: float) -> JournalPolicy:
        """The policy for a run snapshotting every `snapshot_seconds` that keeps superseded
        snapshots `backup_seconds` (Bytewax's backup interval)."""
        extra = math.ceil(backup_seconds / snapshot_seconds) if backup_seconds > 0 else 0
        return cls(keep_manifests=3 + extra)


@dataclass(slots=True)
class JournalStats:
    """What the journal wrote so far in this process (for benchmarks and logs)."""

    snapshots: int = 0
    segments: int = 0
    bases: int = 0
    bytes_written: int = 0
    collected: int = 0


class GraphJournal:
    """The records given to the graph stage since its last snapshot, and its files.

    `pending` is appended to by the stage; `checkpoint(state)` at a snapshot writes them as a
    segment (or the whole state as a new base) and returns the manifest to snapshot;
    `restore(manifest)` gives back the base state and the segments to replay on it.
    """

    def __init__(self, store: GraphStore, policy: JournalPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or JournalPolicy()
        self.pending: list[Any] = []
        self.manifest = GraphManifest()
        self.stats = JournalStats()
        self._rebase_now = False
        self._recent: deque[GraphManifest] = deque(maxlen=self.policy.keep_manifests)

    def rebase_at_next_checkpoint(self) -> None:
        """The stage did not start from a manifest but from a whole state (a snapshot of the
        older shape): the next checkpoint must write it as a base."""
        self._rebase_now = True

    def record(self, items: list[Any]) -> None:
        """These items were just processed, in this order."""
        self.pending.extend(items)

    def checkpoint(self, state: object) -> GraphManifest:
        """Make what was recorded durable; the manifest of `state` as it is now."""
        manifest = self.manifest
        if self.pending or self._rebase_now:
            payload = encode_segment(self.pending)
            self.pending = []
            journal = manifest.journal_bytes + len(payload)
            if self._rebase_now or self._rebase_due(manifest, journal):
                self._rebase_now = False
                blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                manifest = GraphManifest(
                    self.store.put(_BASE, blob), (), len(blob), 0, manifest.generation + 1
                )
                self.stats.bases += 1
                self.stats.bytes_written += len(blob)
            else:
                segment = self.store.put(_SEGMENT, payload)
                manifest = GraphManifest(
                    manifest.base,
                    (*manifest.segments, segment),
                    manifest.base_bytes,
                    journal,
                    manifest.generation,
                )
                self.stats.segments += 1
                self.stats.bytes_written += len(payload)
        self.stats.snapshots += 1
        self._adopt(manifest)
        return manifest

    def _rebase_due(self, manifest: GraphManifest, journal_bytes: int) -> bool:
        policy = self.policy
        segments = len(manifest.segments) + 1
        if segments < policy.min_segments:
            return False
        if segments > policy.max_segments:
            return True
        return journal_bytes >= max(
            policy.rebase_fraction * manifest.base_bytes, policy.rebase_floor_bytes
        )

    def _adopt(self, manifest: GraphManifest) -> None:
        self.manifest = manifest
        self._recent.append(manifest)
        if len(self._recent) == self._recent.maxlen:
            keep: set[str] = set()
            for recent in self._recent:
                keep |= recent.files()
            self.stats.collected += len(self.store.remove_all_but(keep))

    def restore(self, manifest: GraphManifest) -> tuple[Any | None, Iterator[list[Any]]]:
        """The base state of `manifest` (None: start empty) and its segments' records, in order,
        to replay on it. Every file is checked before anything is replayed."""
        base = None
        if manifest.base is not None:
            base = self._load(_BASE, manifest.base)
        payloads = [self.store.get(_SEGMENT, d) for d in manifest.segments]
        self._adopt(manifest)

        def segments() -> Iterator[list[Any]]:
            for digest, payload in zip(manifest.segments, payloads, strict=True):
                yield self._decode(_SEGMENT, digest, payload, decode_segment)

        return base, segments()

    def _load(self, kind: str, digest: str) -> Any:
        return self._decode(kind, digest, self.store.get(kind, digest), pickle.loads)

    def _decode(
        self, kind: str, digest: str, payload: bytes, decode: Callable[[bytes], Any]
    ) -> Any:
        try:
            return decode(payload)
        except GraphStoreError:
            raise
        except Exception as exc:  # a version check in a __setstate__, or a damaged pickle
            path = self.store.path(kind, digest)
            raise GraphStoreError(f"recovery file {path} cannot be restored: {exc}") from None


# ---------------------------------------------------------------------------------------------
# a failed restore on the command line: one line and exit 2, not a Rust panic


_failure_report: list[Callable[[str], None]] = []


def exit_on_restore_failure(report: Callable[[str], None] | None = None) -> None:
    """From now on `restore_failed` prints `sense-respond: error: ...` (through `report`,
    default stderr) and ends the process with exit status 2 instead of raising: raised through
    Bytewax, the error comes with a Rust panic's backtrace. For the command line (and
    `python -m bytewax.run flows.pipeline:flow`); in-process flows (tests) get the exception.
    Nothing is lost: the run stops before it has processed anything."""
    _failure_report.append(report or (lambda line: print(line, file=sys.stderr, flush=True)))


@contextlib.contextmanager
def exit_process_on_restore_failure(
    report: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """`exit_on_restore_failure(report)` within the block only."""
    exit_on_restore_failure(report)
    try:
        yield
    finally:
        _failure_report.pop()


def restore_failed(error: GraphStoreError) -> NoReturn:
    """Report `error` as the process's last line and exit, if the command line asked; raise it
    otherwise."""
    report = _failure_report[-1] if _failure_report else None
    if report is not None:
        try:
            report(f"sense-respond: error: {error}")
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(EXIT_BAD_RECOVERY)
    raise error


__all__ = [
    "GRAPH_DIR",
    "GraphJournal",
    "GraphManifest",
    "GraphStore",
    "GraphStoreError",
    "JournalPolicy",
    "JournalStats",
    "decode_segment",
    "encode_segment",
    "exit_on_restore_failure",
    "exit_process_on_restore_failure",
    "restore_failed",
]
