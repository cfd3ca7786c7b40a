"""The dataflow's two stateful stages, as Bytewax logic: the graph stage and the customer stage.

Each is a thin shell around pure state from `operators/` (`Enricher`, `CustomerState`); what
Bytewax snapshots is that state (or the graph journal's manifest), never these classes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from connectors.graph_store import GraphJournal, GraphManifest, GraphStoreError, restore_failed
from flows.worker_tags import worker_tag
from operators.customer import CustomerPolicy, CustomerState, Output
from operators.enrich import Enricher, EnrichPolicy, GraphBatch, Stamped
from operators.records import AlertRecord, ScoredPost

NOTIFY_FLOOR_SECONDS = 10.0
"""Idle customers are looked at (on the watermark) no more often than this, in wall time."""

NOTIFY_CEILING_SECONDS = 600.0


class InfluenceLogic(StatefulBatchLogic[GraphBatch, tuple[str, Stamped], Enricher | GraphManifest]):
    """Bytewax shell around `Enricher` (one key: the whole interaction graph).

    Each value is the list of graph records of one upstream batch, tagged with the worker that
    produced it (`score_batch`).

    With a `journal` (recovery on, its directory known) the snapshot is a small manifest of
    recovery files (`connectors.graph_store`): every value given to the stage is recorded, and
    a snapshot writes them as one segment, or now and then the whole state as a new base. A
    resume loads the base and replays the segments through `_apply`, outputs discarded (they
    were emitted before that snapshot; Bytewax replays the input after it). Without one the
    snapshot is the `Enricher` itself, which costs nothing unless Bytewax pickles it.
    """

    def __init__(
        self,
        policy: EnrichPolicy,
        resume: Enricher | GraphManifest | None,
        journal: GraphJournal | None = None,
    ) -> None:
        self.policy = policy
        self.journal = journal
        if isinstance(resume, GraphManifest):
            self.enricher = self._restored(resume)
        else:
            self.enricher = resume if resume is not None else Enricher()
            if resume is not None and journal is not None:
                journal.rebase_at_next_checkpoint()

    def _restored(self, manifest: GraphManifest) -> Enricher:
        """The state `manifest` names: its base, and its segments replayed on it."""
        if self.journal is None:
            restore_failed(
                GraphStoreError(
                    "the graph snapshot is kept in files of the recovery directory, which this"
                    " run was not told (build_flow(..., recovery_dir=DIR))"
                )
            )
        try:
            base, segments = self.journal.restore(manifest)
        except GraphStoreError as exc:
            restore_failed(exc)
        if base is not None and not isinstance(base, Enricher):
            path = self.journal.store.path("base", manifest.base or "")
            restore_failed(GraphStoreError(f"recovery file {path} is not a graph-stage state"))
        self.enricher = base if base is not None else Enricher()
        for values in segments:
            for batch in values:
                self._apply(batch, None)  # emitted before that snapshot already
        return self.enricher

    def _apply(self, batch: GraphBatch, out: list[tuple[str, Stamped]] | None) -> None:
        """One value (the graph records of one upstream batch) through the stage, its outputs
        into `out` (None: dropped). A resume replays the journal through this too."""
        self.enricher.process_batch(batch, self.policy, out)

    def on_batch(self, values: list[GraphBatch]) -> tuple[Iterable[tuple[str, Stamped]], bool]:
        apply = self._apply
        out: list[tuple[str, Stamped]] = []
        for batch in values:  # one list per upstream batch, in stream order
            apply(batch, out)
        if self.journal is not None:
            self.journal.record(values)  # exactly what went through `_apply`, in order
        return out, False

    def snapshot(self) -> Enricher | GraphManifest:
        # Taken at the end of every epoch the key was active in; pickled only with recovery on.
        if self.journal is None:
            return self.enricher
        return self.journal.checkpoint(self.enricher)


def _stamped(outputs: Iterable[Output], read_ns: int) -> list[Output]:
    """The outputs, lifecycle events carrying the read time of the event that caused them (for
    the event-to-alert latency metric only)."""
    return [
        dataclasses.replace(o, read_ns=read_ns) if isinstance(o, AlertRecord) else o
        for o in outputs
    ]


class WatermarkSeen:
    """The newest watermark one worker's customer stage has received (for idle checks)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = float("-inf")


class WorkerWatermarks:
    """A `WatermarkSeen` per worker of this process.

    Per worker, not per process: the graph stage's records reach each worker over its own
    channel, in order, so a watermark a worker received says that every earlier record for
    its customers is there too. Another worker's newer watermark says nothing of the records
    still on their way to this one. Workers are told apart by `worker_tag`, as everywhere.
    """

    def __init__(self) -> None:
        self._by_worker: dict[int | str, WatermarkSeen] = {}

    def here(self) -> WatermarkSeen:
        """The calling worker's (Bytewax builds a key's logic in the worker that owns it)."""
        worker = worker_tag()
        seen = self._by_worker.get(worker)
        if seen is None:
            seen = self._by_worker[worker] = WatermarkSeen()
        return seen


class CustomerLogic(StatefulBatchLogic[ScoredPost | Stamped, Output, CustomerState]):
    """Bytewax shell around `CustomerState`, on event time.

    Every record from the graph stage carries the watermark; the state is advanced to it before
    the record is applied. Idle customers (nothing in the window, no cooldown, nothing waiting)
    are dropped when the watermark says so: after a batch, or when Bytewax wakes the key up,
    which it does on the wall clock only to *look*: the customer catches up to the newest
    watermark its worker received, never past a record of its own still waiting for its post
    (`CustomerState.catch_up`), so what a look decides is the same at any replay speed. A last
    look comes when the input ends (`on_eof`).
    """

    def __init__(
        self, policy: CustomerPolicy, seen: WorkerWatermarks, resume: CustomerState | None
    ) -> None:
        self.policy = policy
        self.seen = seen.here()
        self.state = resume if resume is not None else CustomerState()
        self.customer_id = ""

    def on_batch(self, values: list[ScoredPost | Stamped]) -> tuple[Iterable[Output], bool]:
        detected_at = datetime.now(UTC)  # the alert's `time`: measured, never decides
        state, policy = self.state, self.policy
        out: list[Output] = []
        for value in values:
            if isinstance(value, ScoredPost):
                self.customer_id = value.customer_id
                results = state.receive_post(self.customer_id, value, policy, detected_at)
                out.extend(_stamped(results, value.read_ns))
            else:
                watermark, record = value
                if watermark > self.seen.value:
                    self.seen.value = watermark
                self.customer_id = record.customer_id
                results = state.receive(self.customer_id, value, policy, detected_at)
                out.extend(_stamped(results, getattr(record, "read_ns", 0)))
        if state.view_dirty:
            # Only the latest view matters: at most one per customer per batch.
            state.view_dirty = False
            out.append(state.view(self.customer_id, policy))
        return out, state.is_idle(policy)

    def notify_at(self) -> datetime | None:
        if self.state.is_idle(self.policy):
            return None
        ahead = self.state.idle_at(self.policy) - self.seen.value
        if not math.isfinite(ahead):  # no watermark yet, or nothing in the window
            ahead = NOTIFY_FLOOR_SECONDS
        wait = min(max(ahead, NOTIFY_FLOOR_SECONDS), NOTIFY_CEILING_SECONDS)
        return datetime.now(UTC) + timedelta(seconds=wait)

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        return self._look()

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        # The input ended, so every record for this worker's customers has arrived, and the
        # newest watermark this worker received is final: a last look at it decides the same
        # at any replay speed. (Another worker's may still be moving while this one ends: it
        # would make the look depend on timing.) Without this last look a file read faster
        # than the wake-ups would leave, e.g., a quiet resolution unsent that a slower replay
        # of the same file sends.
        return self._look()

    def _look(self) -> tuple[Iterable[Output], bool]:
        # Up to the newest watermark this worker received. Only what the look decides
        # (resolutions) goes out; the customer's view is written with its next batch: whether a
        # wake-up happens at all is a matter of wall time, and the view must not depend on it.
        out = self.state.catch_up(self.seen.value, self.policy, datetime.now(UTC))
        return out, self.state.is_idle(self.policy)

    def snapshot(self) -> CustomerState:
        return self.state
