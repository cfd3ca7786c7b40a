"""The graph stage's recovery files: atomic content-addressed files, a journal of segments and
bases, garbage collection, and a restore that equals the live state at every snapshot."""

from __future__ import annotations

import marshal
import pickle
import random
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import Settings
from connectors.graph_store import (
    GraphJournal,
    GraphManifest,
    GraphStore,
    GraphStoreError,
    JournalPolicy,
    decode_segment,
    encode_segment,
)
from flows.stateful_stages import InfluenceLogic
from operators.enrich import Enricher, EnrichPolicy, GraphBatch
from operators.influence import Touch
from operators.records import AccountPurge, Withdrawal

START = 1_700_000_000.0


# ---------------------------------------------------------------------------------------------
# the store


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("payload", [b"", b"x", b"\x00" * 100_000, pickle.dumps(list(range(99)))])
def test_a_file_is_stored_whole_under_its_digest(tmp_path: Path, payload: bytes) -> None:
    store = GraphStore(tmp_path / "recovery" / "graph")
    digest = store.put("seg", payload)
    assert store.get("seg", digest) == payload
    assert store.put("seg", payload) == digest  # same bytes, same name: nothing rewritten
    assert store.files_written == 1
    assert store.names() == {f"seg-{digest}.bin"}  # no temporary left behind
    assert _mode(store.directory) == 0o700
    assert _mode(store.path("seg", digest)) == 0o600


def test_different_contents_get_different_names(tmp_path: Path) -> None:
    store = GraphStore(tmp_path)
    assert store.put("seg", b"a") != store.put("seg", b"b")
    assert store.put("base", b"a") == store.put("seg", b"a")  # the kind is in the file name
    assert len(store.names()) == 3


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "flipped":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("flipped", "is damaged"),
        ("truncated", "is damaged"),
        ("emptied", "is damaged"),
        ("deleted", "is missing"),
    ],
)
def test_a_missing_or_damaged_file_is_named(tmp_path: Path, how: str, message: str) -> None:
    store = GraphStore(tmp_path)
    digest = store.put("base", pickle.dumps({"graph": list(range(1000))}))
    _damage(store.path("base", digest), how)
    with pytest.raises(GraphStoreError, match=message) as failed:
        store.get("base", digest)
    assert str(store.path("base", digest)) in str(failed.value)
    assert "\n" not in str(failed.value)


def test_collection_deletes_only_the_stores_files(tmp_path: Path) -> None:
    store = GraphStore(tmp_path)
    keep = store.put("base", b"keep")
    gone = store.put("seg", b"gone")
    (tmp_path / ".tmp-seg-abc-123").write_bytes(b"half a file of a killed run")
    (tmp_path / "notes.txt").write_text("not ours")
    removed = store.remove_all_but({f"base-{keep}.bin"})
    assert removed == sorted([".tmp-seg-abc-123", f"seg-{gone}.bin"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"base-{keep}.bin", "notes.txt"])


def test_manifest_versions_are_checked() -> None:
    manifest = GraphManifest("ab" * 16, ("cd" * 16,), 10, 5, 1)
    assert pickle.loads(pickle.dumps(manifest)) == manifest
    reduced = manifest.__reduce__()
    with pytest.raises(GraphStoreError, match="version 99"):
        reduced[0](99, *reduced[1][1:])


def test_fewer_than_three_kept_snapshots_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        JournalPolicy(keep_manifests=2)


@pytest.mark.parametrize(
    ("snapshot", "backup", "keep"), [(2.0, 0.0, 3), (2.0, 10.0, 8), (0.25, 1.0, 7), (30, 1, 4)]
)
def test_backups_keep_more_snapshots(snapshot: float, backup: float, keep: int) -> None:
    assert JournalPolicy.for_intervals(snapshot, backup).keep_manifests == keep


# ---------------------------------------------------------------------------------------------
# the journal: a stream through the real stage, snapshotted as Bytewax would


def touches(n: int, seed: int = 7, accounts: int = 20_000) -> list[Any]:
    """A synthetic interaction stream (reposts, replies, mentions, posts; a few duplicates,
    withdrawals and purges) in roughly increasing event time."""
    rng = random.Random(seed)
    out: list[Any] = []
    for i in range(n):
        ts = START + i * 0.5 + rng.random() * 30
        author = _account(rng, 0.3, accounts)
        target = _account(rng, 0.5, accounts)
        kind = rng.choice(("repost", "reply", "post", "like"))
        post = rng.random() < 0.2
        key = f"twitter:{i if rng.random() > 0.01 else i - 1}"  # some re-deliveries
        out.append(
            Touch(
                key=key,
                event_id=key.split(":")[1],
                ts=ts,
                kind=kind,
                author=author,
                handle=None,
                followers=rng.choice((None, rng.randrange(10, 50_000))),
                target=None if kind == "post" else target,
                mentions=(target,) if kind == "post" else (),
                compound=rng.uniform(-1, 1) if post else None,
                post=post,
            )
        )
        if rng.random() < 0.002:
            created = datetime.fromtimestamp(ts, UTC)
            out.append(Withdrawal(key.split(":")[1], author, created))
        if rng.random() < 0.0005:
            out.append(AccountPurge(author, datetime.fromtimestamp(ts, UTC)))
    return out


def _account(rng: random.Random, busy: float, accounts: int) -> str:
    """A few busy accounts (a share `busy` of the events) and a long tail, as in a stream."""
    n = int(rng.paretovariate(1.2)) if rng.random() < busy else rng.randrange(accounts)
    return f"twitter:{n}"


WHEN = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "values",
    [
        [],
        [GraphBatch("w0", [])],
        [GraphBatch("w0", touches(50))],
        [GraphBatch("w0", touches(1100, seed=2))],  # three blocks of columns
        [GraphBatch("w0", touches(30, seed=1)), GraphBatch("w1", []), GraphBatch("w0", touches(2))],
        [GraphBatch("h/1/2", [Withdrawal("e1", "twitter:1", WHEN)]), GraphBatch(7, touches(5))],
        [GraphBatch("w1", [*touches(3), AccountPurge("twitter:2", WHEN), *touches(2)])],
    ],
)
def test_a_segment_gives_back_exactly_its_records_and_workers(values: list[GraphBatch]) -> None:
    decoded = decode_segment(encode_segment(values))
    assert decoded == values
    assert [w for w, _ in decoded] == [w for w, _ in values]
    assert [[type(r) for r in b] for _, b in decoded] == [[type(r) for r in b] for _, b in values]


def test_a_segment_of_another_record_shape_is_refused() -> None:
    version, fields, workers, blob, others = pickle.loads(encode_segment([("w", touches(3))]))
    other = pickle.dumps((version, (*fields, "new_field"), workers, blob, others))
    with pytest.raises(ValueError, match="another version"):
        decode_segment(other)


def test_a_segment_of_one_blob_an_epoch_is_refused() -> None:
    """Format 3 marshalled the epoch's lists as one blob."""
    _, fields, workers, _, others = pickle.loads(encode_segment([("w", touches(3))]))
    blob = marshal.dumps([[list(zip(*touches(3), strict=True))]])
    with pytest.raises(ValueError, match=r"another version \(format 3"):
        decode_segment(pickle.dumps((3, fields, workers, blob, others)))


def test_a_segment_of_the_row_format_is_refused() -> None:
    """Format 2 kept one tuple per record: its blob is not columns."""
    _, fields, workers, _, others = pickle.loads(encode_segment([("w", touches(3))]))
    rows = marshal.dumps([[tuple(t) for t in touches(3)]])
    with pytest.raises(ValueError, match=r"another version \(format 2"):
        decode_segment(pickle.dumps((2, fields, workers, rows, others)))


def test_a_segment_of_the_format_before_workers_is_refused() -> None:
    """Format 1 had no worker tags: its lists cannot be given their watermark lanes."""
    _, fields, _, blob, others = pickle.loads(encode_segment([("w", touches(3))]))
    with pytest.raises(ValueError, match=r"another version \(format 1"):
        decode_segment(pickle.dumps((1, fields, blob, others)))


def batch(items: list[Any], start: int, size: int) -> GraphBatch:
    """`size` items from `start`, from one of two upstream workers in turns (their watermark
    lanes must be restored too)."""
    return GraphBatch(f"worker-{start // size % 2}", items[start : start + size])


def comparable(value: Any) -> Any:
    """A state as plain values (arrays as bytes): equal iff the states are equal."""
    if hasattr(value, "__getstate__") and type(value).__module__.startswith("operators."):
        return (type(value).__name__, comparable(value.__getstate__()))
    if isinstance(value, array | np.ndarray):
        return (type(value).__name__, value.tobytes())
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


@pytest.fixture(scope="module")
def policy() -> EnrichPolicy:
    return EnrichPolicy.from_settings(Settings())


SMALL = JournalPolicy(keep_manifests=3, rebase_floor_bytes=64_000, min_segments=2)
"""Rebases every few snapshots on a test-sized stream."""


def run_stage(
    directory: Path, items: list[Any], policy: EnrichPolicy, per_epoch: int, journal: JournalPolicy
) -> tuple[InfluenceLogic, list[tuple[GraphManifest, bytes, int]]]:
    """Feed `items` in batches of 100, snapshotting every `per_epoch` items; returns the logic
    and, per snapshot, its manifest, the live state pickled then, and the items fed so far."""
    logic = InfluenceLogic(policy, None, GraphJournal(GraphStore(directory), journal))
    snapshots = []
    for start in range(0, len(items), 100):
        logic.on_batch([batch(items, start, 100)])
        if (start + 100) % per_epoch == 0 or start + 100 >= len(items):
            manifest = logic.snapshot()
            assert isinstance(manifest, GraphManifest)
            live = pickle.dumps(logic.enricher, protocol=pickle.HIGHEST_PROTOCOL)
            snapshots.append((manifest, live, min(start + 100, len(items))))
    return logic, snapshots


def restored(directory: Path, manifest: GraphManifest, policy: EnrichPolicy) -> InfluenceLogic:
    """The stage as a resume builds it (Bytewax hands the builder the unpickled manifest)."""
    resume = pickle.loads(pickle.dumps(manifest))
    return InfluenceLogic(policy, resume, GraphJournal(GraphStore(directory), SMALL))


def test_restore_equals_the_live_state_at_every_snapshot(
    tmp_path: Path, policy: EnrichPolicy
) -> None:
    """Cut points: every snapshot of a stream with several rebases, right after them too."""
    items = touches(12_000)
    logic = InfluenceLogic(policy, None, GraphJournal(GraphStore(tmp_path), SMALL))
    kinds = set()
    for start in range(0, len(items), 100):
        logic.on_batch([batch(items, start, 100)])
        if (start + 100) % 600 == 0:
            manifest = logic.snapshot()
            assert isinstance(manifest, GraphManifest)
            kinds.add("rebase" if not manifest.segments else "journal")
            resumed = restored(tmp_path, manifest, policy)
            assert comparable(resumed.enricher) == comparable(logic.enricher), start
    assert kinds == {"rebase", "journal"}
    assert logic.journal is not None and logic.journal.stats.bases >= 3


def test_a_restored_stage_carries_on_exactly_like_the_live_one(
    tmp_path: Path, policy: EnrichPolicy
) -> None:
    items = touches(9_000, seed=3)
    cut = 6_000
    live, snapshots = run_stage(tmp_path, items[:cut], policy, per_epoch=500, journal=SMALL)
    manifest = snapshots[-1][0]
    assert manifest.base is not None and manifest.segments  # a base and a journal on it
    resumed = restored(tmp_path, manifest, policy)
    rest = items[cut:]
    assert (
        resumed.on_batch([GraphBatch("worker-0", rest)])[0]
        == live.on_batch([GraphBatch("worker-0", rest)])[0]
    )  # same records, same numbers
    assert comparable(resumed.enricher) == comparable(live.enricher)


def test_collection_keeps_what_the_last_manifests_name(
    tmp_path: Path, policy: EnrichPolicy
) -> None:
    items = touches(8_000, seed=9)
    store = GraphStore(tmp_path)
    logic = InfluenceLogic(policy, None, GraphJournal(store, SMALL))
    manifests: list[GraphManifest] = []
    (tmp_path / ".tmp-seg-0-1").write_bytes(b"left by a kill -9")
    for start in range(0, len(items), 200):
        logic.on_batch([batch(items, start, 200)])
        manifests.append(logic.snapshot())  # type: ignore[arg-type]
        needed: set[str] = set()
        for m in manifests[-SMALL.keep_manifests :]:
            needed |= m.files()
        if len(manifests) < SMALL.keep_manifests:
            assert needed | {".tmp-seg-0-1"} <= store.names()  # nothing deleted yet
        else:
            assert store.names() == needed
    assert manifests[-1].generation >= 3
    # the oldest kept manifest still restores
    oldest = manifests[-SMALL.keep_manifests]
    assert restored(tmp_path, oldest, policy).enricher.graph.known_accounts > 0


def test_the_snapshot_stays_small_while_the_graph_grows(
    tmp_path: Path, policy: EnrichPolicy
) -> None:
    """What Bytewax pickles per epoch is the manifest (bytes), not the graph (megabytes); what
    is written per epoch follows the epoch's events."""
    items = touches(60_000, seed=1, accounts=200_000)
    journal = JournalPolicy(keep_manifests=3, rebase_floor_bytes=512_000)
    logic = InfluenceLogic(policy, None, GraphJournal(GraphStore(tmp_path), journal))
    pickled: list[int] = []
    written: list[int] = []
    for start in range(0, len(items), 1_000):
        before = logic.journal.stats.bytes_written  # type: ignore[union-attr]
        logic.on_batch([batch(items, start, 1_000)])
        pickled.append(len(pickle.dumps(logic.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)))
        written.append(logic.journal.stats.bytes_written - before)  # type: ignore[union-attr]
    whole = len(pickle.dumps(logic.enricher, protocol=pickle.HIGHEST_PROTOCOL))
    assert whole > 3_000_000  # the graph is megabytes
    assert max(pickled) < 10_000  # the snapshot is not
    stats = logic.journal.stats  # type: ignore[union-attr]
    assert stats.bases >= 2
    segments = sorted(written)[: len(written) // 2]  # epochs without a rebase
    assert max(segments) < whole / 20
    assert stats.bytes_written < 0.5 * whole * len(written)  # far from the graph every epoch


def test_without_a_journal_the_snapshot_is_the_state(policy: EnrichPolicy) -> None:
    logic = InfluenceLogic(policy, None)
    logic.on_batch([GraphBatch("w", touches(100))])
    assert logic.snapshot() is logic.enricher
    assert InfluenceLogic(policy, logic.enricher).enricher is logic.enricher


def test_a_whole_state_resumed_with_a_journal_is_written_as_a_base(
    tmp_path: Path, policy: EnrichPolicy
) -> None:
    """A snapshot of the older shape (the `Enricher` itself) resumes, and is a base at once."""
    items = touches(2_000)
    old = InfluenceLogic(policy, None)
    old.on_batch([GraphBatch("w", items)])
    resumed = InfluenceLogic(policy, old.enricher, GraphJournal(GraphStore(tmp_path), SMALL))
    manifest = resumed.snapshot()  # nothing new since the resume: still a base
    assert isinstance(manifest, GraphManifest) and manifest.base and not manifest.segments
    assert comparable(restored(tmp_path, manifest, policy).enricher) == comparable(old.enricher)


def test_a_manifest_without_its_directory_is_a_clear_error(policy: EnrichPolicy) -> None:
    with pytest.raises(GraphStoreError, match="recovery directory"):
        InfluenceLogic(policy, GraphManifest("ab" * 16, (), 1, 0, 1))


@pytest.mark.parametrize("which", ["base", "seg"])
def test_a_resume_with_a_file_gone_names_it(
    tmp_path: Path, policy: EnrichPolicy, which: str
) -> None:
    _, snapshots = run_stage(tmp_path, touches(3_000), policy, per_epoch=300, journal=SMALL)
    manifest = next(m for m, _, _ in reversed(snapshots) if m.base and m.segments)
    digest = manifest.base if which == "base" else manifest.segments[-1]
    path = GraphStore(tmp_path).path(which, digest)  # type: ignore[arg-type]
    path.unlink()
    with pytest.raises(GraphStoreError, match="is missing") as failed:
        restored(tmp_path, manifest, policy)
    assert str(path) in str(failed.value)


class _OlderEnricher:
    """Pickles as an `Enricher` of another state version."""

    def __reduce__(self) -> tuple:
        return (object.__new__, (Enricher,), (Enricher().__getstate__()[0] - 1,))


def test_a_base_of_another_version_is_a_clear_error(tmp_path: Path, policy: EnrichPolicy) -> None:
    store = GraphStore(tmp_path)
    digest = store.put("base", pickle.dumps(_OlderEnricher()))
    with pytest.raises(GraphStoreError, match="cannot be restored: unsupported") as failed:
        restored(tmp_path, GraphManifest(digest, (), 100, 0, 1), policy)
    assert str(store.path("base", digest)) in str(failed.value)
