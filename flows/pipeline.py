"""The sense-respond dataflow: social events in, unhappy-influential-customer alerts out.

    ingest → parse ─→ route_dead_letters ─→ dead_letters (Redis stream {prefix}dlq)
                   └→ score (VADER, batched) ───────→ to_graph → influence (global: watermark,
                                │                        dedupe, brands, graph; compact records)
                                │                        → key_by_customer ─┐
                                └→ to_customers (scored posts) ─────────────┴→ customer_state
                                   (per customer: pairing, window, rule, cooldown) → deliver

This module wires the steps and runs the flow; what they do is in `flows/stateless_steps.py`
(parse, listen and score) and `flows/stateful_stages.py` (the graph and customer stages).

Step ids are stable names: they key recovered state and metrics. Renaming one silently drops its
recovered state, so they are constants here and must not change.

Run it with `sense-respond run ...`, or the Bytewax way with settings from the environment:
`SR_INPUT=jsonl:feed.jsonl SR_REDIS__URL=redis://... python -m bytewax.run flows.pipeline:flow`.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from config.listen import load_lexicon
from config.settings import Settings
from connectors.graph_store import GRAPH_DIR, GraphJournal, GraphManifest, GraphStore, JournalPolicy
from connectors.inputs import input_name, make_source, split_spec
from connectors.placement import ClusterPlace, placed
from connectors.redis_sinks import AlertSink, DeadLetterSink
from flows.stateful_stages import CustomerLogic, InfluenceLogic, WorkerWatermarks
from flows.stateless_steps import GRAPH_KEY, ParsedBatch, parse_batch, score_batch
from flows.worker_tags import WorkerNaming
from operators.brands import BrandAccounts
from operators.customer import CustomerPolicy
from operators.enrich import Enricher, EnrichPolicy
from operators.events import DeadLetter
from operators.listen import Listener
from operators.routing import Router
from operators.scoring import Scorer
from sense_respond.metrics import CONNECTORS

log = logging.getLogger(__name__)

FLOW_ID = "sense_respond"


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


def _dead_letters(batches: list[ParsedBatch]) -> list[DeadLetter]:
    return [letter for batch in batches for letter in batch.dead]


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
    seen = WorkerWatermarks()
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
