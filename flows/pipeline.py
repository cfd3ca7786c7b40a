"""The sense-respond dataflow: social events in, unhappy-influential-customer alerts out.

    ingest → parse → route_dead_letters ─→ dead_letters (Redis stream {prefix}dlq)
                          └→ score (VADER, batched) → influence (global: dedupe + graph)
                             → customer_state (per customer: window, rule, cooldown) → deliver

Step ids are stable names: they key recovered state and metrics. Renaming one silently drops its
recovered state, so they are constants here and must not change.

Run it with `sense-respond run ...`, or the Bytewax way with settings from the environment:
`SR_INPUT=jsonl:feed.jsonl SR_REDIS__URL=redis://... python -m bytewax.run flows.pipeline:flow`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic

from config.listen import load_lexicon
from config.settings import Settings
from connectors.inputs import bytewax_run_workers, input_name, make_source
from connectors.redis_sinks import AlertSink, DeadLetterSink
from operators.brands import BrandAccounts
from operators.customer import CustomerPolicy, CustomerState, Output
from operators.enrich import Enriched, Enricher
from operators.events import DeadLetter, SocialEvent, check_event_time, parse_event
from operators.listen import Listener
from operators.records import (
    AccountPurge,
    AlertRecord,
    Assessment,
    CustomerGone,
    InfluenceRise,
    ScoredPost,
    Withdrawal,
)
from operators.routing import Router
from operators.scoring import Scorer
from sense_respond.metrics import CONNECTORS, POSTS, count_parsed

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


def parse_batch(items: list[Any], source: str = "") -> list[Valid | DeadLetter]:
    """Raw lines become events or dead letters; records validated at the edge pass through.

    `source` names the input in dead letters (e.g. `jsonl:/data/feed.jsonl`).
    """
    now = datetime.now(UTC)
    read_ns = time.time_ns()  # measures event-to-alert latency only; never decides anything
    out: list[Valid | DeadLetter] = []
    for item in items:
        if isinstance(item, bytes | str):
            parsed = parse_event(item, now, source)
            if parsed is not None:
                out.append(parsed.stamp_read(read_ns) if type(parsed) is SocialEvent else parsed)
        elif isinstance(item, SocialEvent):
            # Validated at the edge (a live feed); its clock is still checked here.
            checked = check_event_time(item, now, source=source)
            out.append(checked.stamp_read(read_ns) if checked is item else checked)
        else:
            out.append(item)
    count_parsed(out, source)
    return out


def score_batch(
    items: list[Valid], listener: Listener, scorer: Scorer
) -> list[tuple[str, tuple[Valid, Assessment | None]]]:
    """Listen, then score: only posts about the business are scored (VADER over those texts,
    batched); every event goes on, keyed for the global influence stage (reach is reach).

    A post about the business that cannot be scored (not English) goes on with unknown
    sentiment. An edit that makes a post no longer about the business withdraws it.
    """
    relevant: list[tuple[int, SocialEvent, bool, tuple[str, ...]]] = []
    out: list[tuple[str, tuple[Valid, Assessment | None]]] = []
    with_text = 0
    for it in items:
        if isinstance(it, SocialEvent) and it.text is not None:
            with_text += 1
            found = listener.relevance(it)
            if found.relevant:
                relevant.append((len(out), it, found.scorable, found.matched))
            elif it.edited_at is not None:
                out.append((GRAPH_KEY, (it, None)))
                out.append((GRAPH_KEY, (Withdrawal(it.id, it.customer_id, it.created_at), None)))
                continue
        out.append((GRAPH_KEY, (it, None)))
    _count_posts(with_text, len(relevant), sum(1 for r in relevant if r[2]))
    if relevant:
        text_to_score = listener.text_to_score
        texts = [
            text_to_score(ev.text or "", ev.platform) for _, ev, scorable, _ in relevant if scorable
        ]
        scores = iter(scorer.score_many(texts))
        for index, ev, scorable, matched in relevant:
            out[index] = (GRAPH_KEY, (ev, Assessment(next(scores) if scorable else None, matched)))
    return out


class InfluenceLogic(StatefulBatchLogic[tuple[Valid, Assessment | None], Enriched, Enricher]):
    """Bytewax shell around `Enricher` (one key: the whole interaction graph)."""

    def __init__(self, settings: Settings, resume: Enricher | None) -> None:
        if resume is not None:
            resume.reconfigure(settings)  # a snapshot carries the settings of the run that took it
        self.enricher = resume if resume is not None else Enricher(settings)

    def on_batch(
        self, values: list[tuple[Valid, Assessment | None]]
    ) -> tuple[Iterable[Enriched], bool]:
        process = self.enricher.process
        out: list[Enriched] = []
        for item, assessment in values:
            out.extend(process(item, assessment))
        return out, False

    def snapshot(self) -> Enricher:
        # Taken every epoch; Bytewax pickles it only when recovery is on.
        return self.enricher


def _stamped(outputs: Iterable[Output], read_ns: int) -> list[Output]:
    """The outputs, lifecycle events carrying the read time of the event that caused them (for
    the event-to-alert latency metric only)."""
    return [
        dataclasses.replace(o, read_ns=read_ns) if isinstance(o, AlertRecord) else o
        for o in outputs
    ]


class CustomerLogic(StatefulBatchLogic[Enriched, Output, CustomerState]):
    """Bytewax shell around `CustomerState`, with wall-clock expiry of idle customers.

    In live mode event time tracks wall time, so an idle customer's event clock is advanced by the
    wall time that passed since its last event; its state is dropped once nothing is left in the
    window and no cooldown runs. Replays finish long before that, so they stay deterministic.
    """

    def __init__(self, policy: CustomerPolicy, resume: CustomerState | None) -> None:
        self.policy = policy
        if resume is not None:
            resume.reconfigure(policy.window)
        self.state = resume if resume is not None else CustomerState(policy.window)
        self.touched = datetime.now(UTC)

    def on_batch(self, values: list[Enriched]) -> tuple[Iterable[Output], bool]:
        now = datetime.now(UTC)
        self.touched = now
        out: list[Output] = []
        stale_view = False  # the view in Redis lags the state
        customer_id = ""
        for value in values:
            customer_id = value.customer_id
            if isinstance(value, ScoredPost):
                # Each lifecycle event carries the view of its moment, which may be before
                # this post was placed (a resolution that was due first): write the view too.
                out.extend(_stamped(self.state.on_post(value, self.policy, now), value.read_ns))
                stale_view = True
            elif isinstance(value, InfluenceRise):
                out.extend(
                    _stamped(self.state.on_influence(value, self.policy, now), value.read_ns)
                )
            elif isinstance(value, Withdrawal):
                stale_view |= self.state.on_withdrawal(value)
            elif isinstance(value, AccountPurge):
                # The account went away: forget everything known about it, here and in Redis
                # (an open incident resolves first; the incident counter is kept).
                self.state, closing = self.state.purged(
                    customer_id, value.created_at.timestamp(), self.policy, now
                )
                out.extend(closing)
                out.append(CustomerGone(customer_id))
                stale_view = False
        # Only the latest view matters: at most one per customer per batch.
        if stale_view:
            out.append(self.state.view(customer_id))
        return out, self._idle()

    def _idle(self) -> bool:
        return self.state.is_idle(self.policy.rules.cooldown_seconds)

    def notify_at(self) -> datetime:
        horizon = self.policy.window.length_seconds + self.policy.window.allowed_lateness_seconds
        return self.touched + timedelta(seconds=max(horizon, self.policy.rules.cooldown_seconds))

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        now = datetime.now(UTC)
        elapsed = (now - self.touched).total_seconds()
        out = self.state.advance(self.state.window.now + elapsed, self.policy, now)
        self.touched = now
        return out, self._idle()

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        return [], False

    def snapshot(self) -> CustomerState:
        return self.state


def build_flow(
    settings: Settings,
    source: Source | None = None,
    *,
    resumable: bool = False,
    scorer: Scorer | None = None,
    workers: int = 1,
) -> Dataflow:
    """The dataflow for these settings; `settings.redis.url` must be resolved already.

    `source` replaces the one named by `settings.input` (tests use `TestingSource`).
    `resumable`: the run has Bytewax recovery on; `workers`: workers in the whole run (see
    `connectors.inputs.make_source`).
    `scorer` replaces the one `[sentiment]` describes (tests watch what it is given).
    """
    if settings.redis.url is None:
        raise ValueError("build_flow needs settings.redis.url (resolve the embedded Redis first)")
    url = settings.redis.url.get_secret_value()
    flow = Dataflow(FLOW_ID)
    if source is None:
        source = make_source(settings.input, settings, url, resumable=resumable, workers=workers)
    raw = op.input(Step.INGEST, flow, source)
    source_name = input_name(settings.input)
    parsed = op.flat_map_batch(Step.PARSE, raw, lambda batch: parse_batch(batch, source_name))
    routed = op.branch(Step.ROUTE, parsed, lambda x: not isinstance(x, DeadLetter))
    dead_letter_sink = DeadLetterSink(url, settings.redis)
    CONNECTORS.watch_sink(Step.DEAD_LETTERS, lambda: dead_letter_sink.stats)
    op.output(Step.DEAD_LETTERS, routed.falses, dead_letter_sink)
    listener, configured = listening(settings)
    scorer = scorer or configured
    scored = op.flat_map_batch(
        Step.SCORE, routed.trues, lambda batch: score_batch(batch, listener, scorer)
    )
    enriched = op.stateful_batch(
        Step.INFLUENCE, scored, lambda resume: InfluenceLogic(settings, resume)
    )
    by_customer = op.flat_map_batch(
        "key_by_customer", enriched, lambda batch: [(v.customer_id, v) for _, v in batch]
    )
    policy = CustomerPolicy(
        settings.window,
        settings.rules,
        settings.alert_source,
        listen_scope=settings.listen.scope if settings.listen is not None else "post",
        router=Router.from_settings(settings.routes, settings.notify.default_team),
    )
    outputs = op.stateful_batch(
        Step.CUSTOMER, by_customer, lambda resume: CustomerLogic(policy, resume)
    )
    deliveries = op.flat_map_batch("drop_key", outputs, lambda batch: [v for _, v in batch])
    alert_sink = AlertSink(url, settings.redis)
    CONNECTORS.watch_sink(Step.DELIVER, lambda: alert_sink.stats)
    op.output(Step.DELIVER, deliveries, alert_sink)
    return flow


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


def flow_from_env() -> Dataflow:
    """Settings from `SR_` variables (and `SR_CONFIG`); embedded Redis when no URL is set."""
    from config.settings import load_settings
    from connectors.embedded_redis import resolve_redis_url
    from connectors.redis_client import redacted_url
    from connectors.redis_errors import exit_on_failure

    exit_on_failure()  # Redis gone for good: one line and exit 75/78, not a Rust panic
    settings = load_settings()
    configured = settings.redis.url.get_secret_value() if settings.redis.url else None
    url, embedded = resolve_redis_url(configured)
    if embedded is not None:
        log.warning(
            "no SR_REDIS__URL: started an embedded Redis at %s for this process",
            redacted_url(url),
        )
    return build_flow(
        settings.with_redis_url(url),
        resumable=_bytewax_recovery_requested(),
        workers=bytewax_run_workers(sys.argv[1:]),
    )


def _bytewax_recovery_requested(argv: list[str] | None = None) -> bool:
    """Whether `python -m bytewax.run` was asked for recovery (`-r DIR` or its environment).

    The flow is built before Bytewax's runner applies its arguments, and recovery changes how a
    Redis stream is read (one resumable reader whose acks follow the snapshots).
    """
    args = sys.argv if argv is None else argv
    if os.environ.get("BYTEWAX_RECOVERY_DIRECTORY"):
        return True
    return any(
        a in ("-r", "--recovery-directory") or a.startswith("--recovery-directory=") for a in args
    )


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.pipeline:flow` looks up `flow`; build it only then, so that
    # importing this module (tests, the CLI) never reads the environment or starts Redis.
    if name == "flow":
        return flow_from_env()
    raise AttributeError(name)
