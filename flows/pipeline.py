"""The sense-respond dataflow: social events in, unhappy-influential-customer alerts out.

    ingest → parse ─→ route_dead_letters ─→ dead_letters (Redis stream {prefix}dlq)
                   └→ score (VADER, batched) ───────→ to_graph → influence (global: watermark,
                                │                        dedupe, brands, graph; compact records)
                                │                        → key_by_customer ─┐
                                └→ to_customers (scored posts) ─────────────┴→ customer_state
                                   (per customer: pairing, window, rule, cooldown) → deliver

Step ids are stable names: they key recovered state and metrics. Renaming one silently drops its
recovered state, so they are constants here and must not change.

Run it with `sense-respond run ...`, or the Bytewax way with settings from the environment:
`SR_INPUT=jsonl:feed.jsonl SR_REDIS__URL=redis://... python -m bytewax.run flows.pipeline:flow`.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config.listen import load_lexicon
from config.settings import Settings
from connectors.graph_store import (
    GRAPH_DIR,
    GraphJournal,
    GraphManifest,
    GraphStore,
    GraphStoreError,
    JournalPolicy,
    restore_failed,
)
from connectors.inputs import input_name, make_source, split_spec
from connectors.placement import ClusterPlace, placed
from connectors.redis_sinks import AlertSink, DeadLetterSink
from operators.brands import BrandAccounts
from operators.customer import CustomerPolicy, CustomerState, Output
from operators.enrich import (
    NO_INFLUENCE,
    ControlRecord,
    Enricher,
    EnrichPolicy,
    GraphBatch,
    Stamped,
    touch_of,
)
from operators.events import DeadLetter, SocialEvent, check_event_time, parse_event
from operators.influence import Touch
from operators.listen import Listener
from operators.records import (
    AccountPurge,
    AlertRecord,
    Assessment,
    ScoredPost,
    Sentiment,
    Withdrawal,
)
from operators.routing import Router
from operators.scoring import Scorer
from sense_respond.metrics import CONNECTORS, POSTS, count_read

log = logging.getLogger(__name__)

FLOW_ID = "sense_respond"
GRAPH_KEY = "graph"


class Step:
    """Stable step ids (recovered state and metrics are keyed by them)."""

    INGEST = "ingest"
    PARSE = "parse"
    ROUTE = "route_dead_letters"
    DEAD_LETTERS = "dead_letters"
    SCORE = "score"
    INFLUENCE = "influence"
    CUSTOMER = "customer_state"
    DELIVER = "deliver"


Valid = SocialEvent | Withdrawal | AccountPurge

NOTIFY_FLOOR_SECONDS = 10.0
"""Idle customers are looked at (on the watermark) no more often than this, in wall time."""

NOTIFY_CEILING_SECONDS = 600.0


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedBatch:
    """What the parse step makes of one input batch: one item, not one per event.

    A Bytewax step costs about 3 µs per item it passes on; the events of a batch travel as one
    item as far as the scoring step, and their compact graph records as one item into the graph
    stage (its order is the order of the input batch).
    """

    valid: list[Valid]
    dead: list[DeadLetter]


def parse_batch(items: list[Any], source: str = "") -> list[ParsedBatch]:
    """Raw lines become events or dead letters; records validated at the edge pass through.

    `source` names the input in dead letters (e.g. `jsonl:/data/feed.jsonl`).
    """
    now = datetime.now(UTC)
    read_ns = time.time_ns()  # measures event-to-alert latency only; never decides anything
    valid: list[Valid] = []
    dead: list[DeadLetter] = []
    for item in items:
        if isinstance(item, bytes | str):
            parsed = parse_event(item, now, source)
            if parsed is None:
                continue
        elif isinstance(item, SocialEvent):
            # Validated at the edge (a live feed); its clock is still checked here.
            parsed = check_event_time(item, now, source=source)
        elif isinstance(item, DeadLetter):  # a live feed's frame that was not an event
            dead.append(item)
            continue
        else:  # withdrawals and purges, validated at the edge
            valid.append(item)
            continue
        if type(parsed) is SocialEvent:
            valid.append(parsed.stamp_read(read_ns))
        else:
            dead.append(parsed)  # type: ignore[arg-type]
    count_read(len(valid), dead, source)
    return [ParsedBatch(valid, dead)] if valid or dead else []


def _dead_letters(batches: list[ParsedBatch]) -> list[DeadLetter]:
    return [letter for batch in batches for letter in batch.dead]


def score_batch(items: list[Valid], listener: Listener, scorer: Scorer) -> list[tuple[str, Any]]:
    """Listen, then score; each event splits in two.

    Only posts about the business are scored (VADER over those texts, batched) and go to their
    author's customer stage (key = customer id), where each waits for its influence. Every event
    goes to the graph stage as a compact `Touch`, relevant or not (reach is reach): all of the
    batch's graph records as one list, the last pair (key `GRAPH_KEY`). A post about the
    business that cannot be scored (not English) goes on with unknown sentiment. An edit that
    makes a post no longer about the business withdraws it.
    """
    relevant: list[tuple[int, SocialEvent, bool, tuple[str, ...]]] = []
    assessments: list[Assessment | None] = []
    withdrawn: dict[int, Withdrawal] = {}
    with_text = 0
    for it in items:
        if isinstance(it, SocialEvent) and it.text is not None:
            with_text += 1
            found = listener.relevance(it)
            if found.relevant:
                relevant.append((len(assessments), it, found.scorable, found.matched))
            elif it.edited_at is not None:
                withdrawn[len(assessments)] = Withdrawal(it.id, it.customer_id, it.created_at)
        assessments.append(None)
    _count_posts(with_text, len(relevant), sum(1 for r in relevant if r[2]))
    if relevant:
        text_to_score = listener.text_to_score
        texts = [
            text_to_score(ev.text or "", ev.platform) for _, ev, scorable, _ in relevant if scorable
        ]
        scores = iter(scorer.score_many(texts))
        for index, _, scorable, matched in relevant:
            assessments[index] = Assessment(next(scores) if scorable else None, matched)
    out: list[tuple[str, Any]] = []
    graph: list[Touch | ControlRecord] = []
    for index, (it, assessment) in enumerate(zip(items, assessments, strict=True)):
        if assessment is None and type(it) is SocialEvent:
            graph.append(touch_of(it, None, False))  # the common case: not about the business
        else:
            for key, value in split_event(it, assessment):
                if key == GRAPH_KEY:
                    graph.append(value)  # type: ignore[arg-type]
                else:
                    out.append((key, value))
        if index in withdrawn:
            graph.append(withdrawn[index])
    if graph:
        out.append((GRAPH_KEY, GraphBatch(worker_tag(), graph)))
    return out


_worker_of_thread: dict[int, int | str] = {}
"""Worker tags by native thread id. Not a `threading.local`: Bytewax's worker threads are
Rust threads whose Python thread state (and with it a thread-local) is new at every entry."""


def worker_tag() -> int | str:
    """The name of this thread's worker in the graph stage's watermark (its lane).

    Its Bytewax worker index, noted when the worker built its sinks (`WorkerNaming`), which
    Bytewax does with the dataflow, before anything flows: stable across a resume with the same
    workers, so a resumed worker carries on in its lane. Elsewhere (a caller outside a flow)
    host, process and thread. The tag travels in the values the graph stage records, so a
    replay of its journal gives each list the lane it had."""
    thread = threading.get_native_id()
    tag = _worker_of_thread.get(thread)
    if tag is None:
        tag = _worker_of_thread[thread] = f"{socket.gethostname()}/{os.getpid()}/{thread}"
    return tag


class WorkerNaming(DynamicSink[Any]):
    """`sink`, noting the index of the worker that builds it for `worker_tag` (Bytewax builds a
    dynamic sink in each worker's thread)."""

    def __init__(self, sink: DynamicSink[Any]) -> None:
        self.sink = sink

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Any]:
        _worker_of_thread[threading.get_native_id()] = worker_index
        return self.sink.build(step_id, worker_index, worker_count)


def split_event(
    item: Valid, assessment: Assessment | Sentiment | None
) -> list[tuple[str, Touch | ControlRecord | ScoredPost]]:
    """One event as what leaves the scoring step: (customer id, its post) when it is about the
    business, and (GRAPH_KEY, its compact Touch); control records go to the graph stage as they
    are (it forwards them in order). A bare `Sentiment` is a post scored without listening."""
    if not isinstance(item, SocialEvent):
        return [(GRAPH_KEY, item)]
    if isinstance(assessment, Sentiment):
        assessment = Assessment(assessment)
    if assessment is None or item.text is None:
        return [(GRAPH_KEY, touch_of(item, None, False))]
    touch = touch_of(item, assessment.sentiment, True)
    customer_id = item.customer_id
    post = ScoredPost(
        event_id=item.id,
        customer_id=customer_id,
        platform=item.platform,
        handle=item.author.handle,
        created_at=item.created_at,
        text=item.text,
        sentiment=assessment.sentiment,
        influence=NO_INFLUENCE,
        matched=assessment.matched,
        url=item.url,
        read_ns=item.read_ns,
    )
    return [(customer_id, post), (GRAPH_KEY, touch)]


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
    """The newest watermark the customer stage of this process has received (for idle checks)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = float("-inf")


class CustomerLogic(StatefulBatchLogic[ScoredPost | Stamped, Output, CustomerState]):
    """Bytewax shell around `CustomerState`, on event time.

    Every record from the graph stage carries the watermark; the state is advanced to it before
    the record is applied. Idle customers (nothing in the window, no cooldown, nothing waiting)
    are dropped when the watermark says so: after a batch, or when Bytewax wakes the key up,
    which it does on the wall clock only to *look* (the decision is `is_idle` at the newest
    watermark seen, so it is the same at any replay speed).
    """

    def __init__(
        self, policy: CustomerPolicy, seen: WatermarkSeen, resume: CustomerState | None
    ) -> None:
        self.policy = policy
        self.seen = seen
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
        out = self.state.advance(self.seen.value, self.policy, datetime.now(UTC))
        return out, self.state.is_idle(self.policy)

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        return [], False

    def snapshot(self) -> CustomerState:
        return self.state


def _graph_inputs(batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [pair for pair in batch if pair[0] == GRAPH_KEY]


def _post_halves(batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [pair for pair in batch if pair[0] != GRAPH_KEY]  # customer ids always hold a `:`


def build_flow(
    settings: Settings,
    source: Source | None = None,
    *,
    resumable: bool = False,
    recovery_dir: Path | None = None,
    journal_policy: JournalPolicy | None = None,
    scorer: Scorer | None = None,
    workers: int = 1,
    place: ClusterPlace | None = None,
) -> Dataflow:
    """The dataflow for these settings; `settings.redis.url` must be resolved already.

    `source` replaces the one named by `settings.input` (tests use `TestingSource`).
    `resumable`: the run has Bytewax recovery on; `recovery_dir`: its directory (implies
    `resumable`), where the graph stage keeps its snapshot files (`journal_policy`: when it
    rebases, how many snapshots' files it keeps); `workers`: workers in the whole run (see
    `connectors.inputs.make_source`); `place`: this process's place in a cluster (its `workers`
    replace `workers`): the process that hosts the graph stage reads no input when another
    process can (`connectors.placement`).
    `scorer` replaces the one `[sentiment]` describes (tests watch what it is given).
    """
    if settings.redis.url is None:
        raise ValueError("build_flow needs settings.redis.url (resolve the embedded Redis first)")
    url = settings.redis.url.get_secret_value()
    resumable = resumable or recovery_dir is not None
    flow = Dataflow(FLOW_ID)
    if place is not None:
        workers = place.workers
    if source is None:
        source = make_source(settings.input, settings, url, resumable=resumable, workers=workers)
    if place is not None and not reads_input_here(settings, place):
        source = placed(source, place, GRAPH_KEY)
        log.info(
            "process %d hosts the graph stage: the other processes read the input",
            place.process_id,
        )
    raw = op.input(Step.INGEST, flow, source)
    source_name = input_name(settings.input)
    parsed = op.flat_map_batch(Step.PARSE, raw, lambda batch: parse_batch(batch, source_name))
    dead_letters = op.flat_map_batch(Step.ROUTE, parsed, _dead_letters)
    dead_letter_sink = DeadLetterSink(url, settings.redis)
    CONNECTORS.watch_sink(Step.DEAD_LETTERS, lambda: dead_letter_sink.stats)
    op.output(Step.DEAD_LETTERS, dead_letters, dead_letter_sink)
    listener, configured = listening(settings)
    scorer = scorer or configured
    scored = op.flat_map_batch(
        Step.SCORE,
        parsed,
        lambda batches: score_batch([e for b in batches for e in b.valid], listener, scorer),
    )
    graph_in = op.flat_map_batch("to_graph", scored, _graph_inputs)
    posts = op.flat_map_batch("to_customers", scored, _post_halves)
    enrich_policy = EnrichPolicy.from_settings(settings)
    store = None if recovery_dir is None else GraphStore(Path(recovery_dir) / GRAPH_DIR)

    def influence_logic(resume: Enricher | GraphManifest | None) -> InfluenceLogic:
        journal = None if store is None else GraphJournal(store, journal_policy)
        return InfluenceLogic(enrich_policy, resume, journal)

    enriched = op.stateful_batch(Step.INFLUENCE, graph_in, influence_logic)
    stamped = op.flat_map_batch(
        "key_by_customer", enriched, lambda batch: [pair for _, pair in batch]
    )
    by_customer = op.merge("merge_customer_inputs", posts, stamped)
    policy = CustomerPolicy(
        settings.window,
        settings.rules,
        settings.alert_source,
        listen_scope=settings.listen.scope if settings.listen is not None else "post",
        router=Router.from_settings(settings.routes, settings.notify.default_team),
    )
    seen = WatermarkSeen()
    outputs = op.stateful_batch(
        Step.CUSTOMER, by_customer, lambda resume: CustomerLogic(policy, seen, resume)
    )
    deliveries = op.flat_map_batch("drop_key", outputs, lambda batch: [v for _, v in batch])
    alert_sink = AlertSink(url, settings.redis)
    CONNECTORS.watch_sink(Step.DELIVER, lambda: alert_sink.stats)
    op.output(Step.DELIVER, deliveries, WorkerNaming(alert_sink))
    return flow


def keep_off_graph_process(settings: Settings) -> bool:
    """Whether the process that hosts the graph stage may leave the input to the others: always
    for a network input (every process can reach it), for JSONL files only when every process
    sees the same ones (`flow.shared_files`): a host's own files would otherwise go unread."""
    scheme, _ = split_spec(settings.input)
    return scheme != "jsonl" or settings.flow.shared_files


def reads_input_here(settings: Settings, place: ClusterPlace) -> bool:
    """Whether this process reads the input: all do, but in a cluster the one that hosts the
    graph stage, for an input the others can read too (`keep_off_graph_process`)."""
    return place.reads_input(GRAPH_KEY) or not keep_off_graph_process(settings)


def _count_posts(texts: int, relevant: int, scored: int) -> None:
    """The `sense_respond_posts` metric, once per batch."""
    for label, n in (
        ("scored", scored),
        ("unscored", relevant - scored),
        ("ignored", texts - relevant),
    ):
        if n:
            POSTS.labels(label).inc(n)


def listening(settings: Settings) -> tuple[Listener, Scorer]:
    """The listening rules and the scorer of these settings, built once per flow.

    Warns when no listening rule is set (every post then counts as about the business) and
    when a domain lexicon is on (scores then differ from the reference VADER scores).
    """
    listener = Listener(settings.listen, BrandAccounts.parse(settings.brand_accounts))
    if not listener.active:
        log.warning(
            "no listening rule set ([listen] keywords or brand_accounts): every post counts as "
            "about the business and is scored"
        )
    scorer = Scorer(load_lexicon(settings.sentiment))
    if not scorer.is_reference:
        log.info("sentiment: domain lexicon on (%d entries)", len(scorer.lexicon))
    return listener, scorer


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between young-generation collections (CPython's default is 700)."""


def tune_garbage_collector() -> None:
    """Fewer, cheaper cyclic collections for a long-running flow; call once, before it runs.

    The flow allocates a few short-lived objects per event, nearly none of them in cycles, while
    its long-lived state (the graph's index, windows, imported modules and pydantic schemas) is
    large: with CPython's defaults the collector ran every 700 allocations and kept walking that
    state, about a fifth of the run's time on the Higgs stream (`make bench-influence`). What
    exists once the flow is built is frozen out of collection (it lives as long as the process),
    and the young generation is collected every `GC_YOUNG_THRESHOLD` allocations, a few MB.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def flow_from_env() -> Dataflow:
    """Settings from `SR_` variables (and `SR_CONFIG`); embedded Redis when no URL is set."""
    from config.settings import load_settings
    from connectors.embedded_redis import resolve_redis_url
    from connectors.graph_store import exit_on_restore_failure
    from connectors.redis_client import redacted_url
    from connectors.redis_errors import exit_on_failure

    exit_on_failure()  # Redis gone for good: one line and exit 75/78, not a Rust panic
    exit_on_restore_failure()  # a missing or damaged graph snapshot file: one line, exit 2
    settings = load_settings()
    configured = settings.redis.url.get_secret_value() if settings.redis.url else None
    url, embedded = resolve_redis_url(configured)
    if embedded is not None:
        log.warning(
            "no SR_REDIS__URL: started an embedded Redis at %s for this process",
            redacted_url(url),
        )
    recovery_dir, journal_policy = _bytewax_recovery(sys.argv[1:])
    flow = build_flow(
        settings.with_redis_url(url),
        recovery_dir=recovery_dir,
        journal_policy=journal_policy,
        place=ClusterPlace.from_bytewax_args(sys.argv[1:]),
    )
    tune_garbage_collector()
    return flow


def _bytewax_recovery(argv: list[str]) -> tuple[Path | None, JournalPolicy | None]:
    """The recovery directory `python -m bytewax.run` was given (`-r DIR` or its environment),
    and the graph journal's policy for its `-s`/`-b` intervals; (None, None) without recovery.

    The flow is built before Bytewax's runner applies its arguments, and recovery changes how a
    Redis stream is read (one resumable reader whose acks follow the snapshots) and where the
    graph stage keeps its snapshot files.
    """
    import argparse

    env = os.environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-r", "--recovery-directory", default=env.get("BYTEWAX_RECOVERY_DIRECTORY"))
    parser.add_argument("-s", "--snapshot-interval", default=env.get("BYTEWAX_SNAPSHOT_INTERVAL"))
    parser.add_argument(
        "-b", "--backup-interval", default=env.get("BYTEWAX_RECOVERY_BACKUP_INTERVAL")
    )
    known, _ = parser.parse_known_args(argv)
    if not known.recovery_directory:
        return None, None
    try:
        snapshot = float(known.snapshot_interval or 0) or 1.0
        backup = float(known.backup_interval or 0)
    except ValueError:
        return Path(known.recovery_directory), None  # Bytewax's own parser reports it
    return Path(known.recovery_directory), JournalPolicy.for_intervals(snapshot, backup)


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.pipeline:flow` looks up `flow`; build it only then, so that
    # importing this module (tests, the CLI) never reads the environment or starts Redis.
    if name == "flow":
        return flow_from_env()
    raise AttributeError(name)
