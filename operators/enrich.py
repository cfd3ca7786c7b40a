"""The global stage of the flow: watermark, de-duplication, brands and the influence graph.

Only compact `Touch` records come here (no texts, no scored posts): the scored post goes straight
to its author's customer stage and waits there for the `PostInfluence` this stage sends back,
the author's influence at that event's place in the stream. Pairing the two is deterministic
(see `operators.customer`), so the customer stage decides the same way on every replay.

Every record this stage emits is stamped with the event-time watermark of its moment
(`Stamped`): customer expiry, cooldowns, lateness and quiet resolution downstream run on it.
The records come in lists, each tagged with the upstream worker that produced it
(`GraphBatch`): the watermark keeps one lane per worker (see `operators.watermark`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from config.settings import Settings
from operators.brands import BrandAccounts
from operators.dedupe import RecentIds
from operators.events import SocialEvent
from operators.influence import GraphPolicy, InfluenceGraph, Touch
from operators.records import (
    AccountPurge,
    Influence,
    InfluenceRise,
    Sentiment,
    Withdrawal,
    from_micros,
    to_micros,
)
from operators.touch_columns import dumps_records, loads_records
from operators.watermark import ONE_WORKER, Watermark

ControlRecord = Withdrawal | AccountPurge

_STATE_VERSION = 5


class GraphBatch(NamedTuple):
    """The graph records of one upstream batch, in stream order, and who produced them."""

    worker: Hashable
    """The upstream worker (`flows.worker_tags.worker_tag`): the lists of one worker arrive in
    that worker's order, and each worker has its own lane of the watermark."""
    records: list[Touch | ControlRecord]

    def __reduce__(self) -> tuple:
        # Crossing to the graph's process (Bytewax pickles what it exchanges): the records as
        # marshalled columns, about half of what pickling the named tuples costs each way.
        return (_graph_batch, (self.worker, *dumps_records(self.records)))


def _graph_batch(worker: Hashable, blob: bytes, others: list[tuple[int, Any]]) -> GraphBatch:
    return GraphBatch(worker, loads_records(blob, others))


@dataclass(frozen=True, slots=True)
class PostInfluence:
    """The graph stage's half of a scored post: its author's influence at that event.

    `duplicate`: the event was seen before; its post half is dropped, not counted again.
    """

    customer_id: str
    event_id: str
    influence: Influence
    is_brand: bool
    duplicate: bool = False
    read_ns: int = 0
    """When the flow shell read the event (wall clock, ns): measures latency only."""

    def __reduce__(self) -> tuple:
        return (
            PostInfluence,
            (
                self.customer_id,
                self.event_id,
                self.influence,
                self.is_brand,
                self.duplicate,
                self.read_ns,
            ),
        )


GraphRecord = PostInfluence | InfluenceRise | ControlRecord
Stamped = tuple[float, GraphRecord]
"""(watermark, record): what the customer stage receives from the graph stage."""


@dataclass(frozen=True, slots=True)
class EnrichPolicy:
    """The graph stage's settings, built once per flow."""

    graph: GraphPolicy
    brands: BrandAccounts
    max_lag: float
    """How far the watermark may trail the stream at most (the reach horizon): input partitions
    that far apart in event time (a cluster's files of different days) are still on time."""

    @classmethod
    def from_settings(cls, settings: Settings) -> EnrichPolicy:
        """The policy of these settings."""
        return cls(
            GraphPolicy.from_settings(settings),
            BrandAccounts.parse(settings.brand_accounts),
            float(settings.influence.reach_horizon_seconds),
        )


def touch_of(event: SocialEvent, sentiment: Sentiment | None, post: bool) -> Touch:
    """The compact record of one event for the graph stage (built for every event: hot path)."""
    platform = event.platform
    author = event.author
    target = event.target
    mentions = event.mentions
    return Touch(
        event.dedupe_key,
        event.id,
        to_micros(event.created_at) / 1e6,  # type: ignore[operator]  # not .timestamp(): inexact
        event.kind,
        f"{platform}:{author.id}",
        author.handle,
        author.followers,
        None if target is None else f"{platform}:{target.id}",
        None if target is None else target.followers,
        tuple([f"{platform}:{m.id}" for m in mentions]) if mentions else (),
        None if sentiment is None else sentiment.compound,
        post,
        event.edited_at is not None,
        event.read_ns,
    )


class Enricher:
    """The graph stage's state: watermark, recent ids, brand memory, the graph."""

    __slots__ = ("duplicates", "graph", "learned", "seen", "watermark")

    def __init__(self) -> None:
        self.watermark = Watermark()
        self.seen = RecentIds()
        self.learned: dict[str, bool] = {}  # accounts matched as the brand's by their handle
        self.graph = InfluenceGraph()
        self.duplicates = 0

    def __getstate__(self) -> tuple:
        return (
            _STATE_VERSION,
            self.watermark,
            self.seen,
            self.learned,
            self.graph,
            self.duplicates,
        )

    def __setstate__(self, state: tuple) -> None:
        if not isinstance(state, tuple) or state[0] != _STATE_VERSION:
            raise ValueError(
                "unsupported graph-stage state (a snapshot of an older version): "
                "resume needs a recovery directory written by this version"
            )
        _, self.watermark, self.seen, self.learned, self.graph, self.duplicates = state

    def process_batch(
        self, batch: GraphBatch, policy: EnrichPolicy, out: list[tuple[str, Stamped]] | None
    ) -> None:
        """One upstream list in; its outputs appended to `out` (None: dropped)."""
        worker, records = batch
        lane = self.watermark.lane(worker)  # once per list: the hot path is per record
        # Bound once per list: this loop runs for every event of the feed.
        observe_time = self.watermark.observe
        first_time = self.seen.first_time
        brand_account = policy.brands.matches
        learned = self.learned
        observe = self.graph.observe
        graph_policy = policy.graph
        max_lag = policy.max_lag
        dedupe_seconds = graph_policy.dedupe_seconds
        for item in records:
            if type(item) is not Touch:
                found = self._control(item)
            else:
                wm = observe_time(item.ts, max_lag, lane)
                if not first_time(item.key, item.ts, wm, dedupe_seconds):
                    self.duplicates += 1
                    if not item.post:
                        continue
                    gone = PostInfluence(
                        item.author, item.event_id, _NO_INFLUENCE, False, True, item.read_ns
                    )
                    found = [(item.author, (wm, gone))]
                else:
                    is_brand = brand_account(item.author, item.handle, learned)
                    risen = observe(item, wm, is_brand, graph_policy)
                    if not (item.post or risen):
                        continue  # the common case: nothing goes downstream
                    found = self._outputs(item, wm, is_brand, risen, graph_policy)
            if out is not None:
                out.extend(found)

    def process(
        self, item: Touch | ControlRecord, policy: EnrichPolicy, worker: Hashable = ONE_WORKER
    ) -> list[tuple[str, Stamped]]:
        """One record of `worker` in; out go (customer id, (watermark, record)) for the
        customer stage."""
        out: list[tuple[str, Stamped]] = []
        self.process_batch(GraphBatch(worker, [item]), policy, out)
        return out

    def _control(self, item: ControlRecord) -> list[tuple[str, Stamped]]:
        """A withdrawal or a purge: passed on at the current watermark (a purge forgets the
        account here first)."""
        if isinstance(item, AccountPurge):
            self.graph.forget(item.customer_id)
            self.learned.pop(item.customer_id, None)
        return [(item.customer_id, (self.watermark.value, item))]

    def _outputs(
        self,
        item: Touch,
        wm: float,
        is_brand: bool,
        risen: list[tuple[str, Influence]],
        policy: GraphPolicy,
    ) -> list[tuple[str, Stamped]]:
        """What an event sends downstream: its post's influence, and the rises it triggered."""
        out: list[tuple[str, Stamped]] = []
        if item.post:
            influence = self.graph.influence_of(item.author, wm, policy)
            post = PostInfluence(
                item.author, item.event_id, influence, is_brand, False, item.read_ns
            )
            out.append((item.author, (wm, post)))
        if risen:
            created: datetime = from_micros(round(item.ts * 1e6))  # type: ignore[assignment]
            for customer_id, influence in risen:
                rise = InfluenceRise(customer_id, influence, item.event_id, created, item.read_ns)
                out.append((customer_id, (wm, rise)))
        return out


_NO_INFLUENCE = Influence(0.0, None, 0, 0.0, 0, 0, False)
NO_INFLUENCE = _NO_INFLUENCE
"""The influence a scored post carries until its graph half arrives."""

__all__ = [
    "NO_INFLUENCE",
    "ControlRecord",
    "EnrichPolicy",
    "Enricher",
    "GraphBatch",
    "GraphRecord",
    "PostInfluence",
    "Stamped",
    "touch_of",
]
