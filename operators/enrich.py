"""The global stage of the flow: de-duplicate, grow the influence graph, attach influence.

Every event passes through here in one place, because influence is a property of the whole
interaction graph. Each scored post leaves with its author's influence at that moment, so the
per-customer stage downstream needs no join and decides the same way on every replay.
"""

from __future__ import annotations

from config.settings import Settings
from operators.brands import BrandAccounts
from operators.dedupe import RecentIds
from operators.events import SocialEvent
from operators.influence import InfluenceGraph
from operators.records import (
    AccountPurge,
    Assessment,
    InfluenceRise,
    ScoredPost,
    Sentiment,
    Withdrawal,
)

ControlRecord = Withdrawal | AccountPurge
Enriched = ScoredPost | InfluenceRise | ControlRecord


def _dedupe_horizon(settings: Settings) -> float:
    return float(settings.flow.dedupe_seconds)


class Enricher:
    """De-duplication + influence graph; turns scored events into `ScoredPost`s."""

    __slots__ = ("brands", "duplicates", "graph", "seen")

    def __init__(self, settings: Settings) -> None:
        self.brands = BrandAccounts(settings.brand_accounts)
        self.graph = InfluenceGraph(
            settings.influence, self.brands, watch_percentile=settings.rules.influence_percentile
        )
        self.seen = RecentIds(horizon_seconds=_dedupe_horizon(settings))
        self.duplicates = 0

    def reconfigure(self, settings: Settings) -> None:
        """Apply the current settings to an enricher restored from a snapshot (recovery resume).

        The snapshot holds the brand accounts and influence settings of the run that took it;
        the current configuration wins, so a brand added to the config counts from the restart on.
        """
        brands = BrandAccounts(settings.brand_accounts)
        brands.adopt(self.brands)
        self.brands = brands
        self.graph.reconfigure(
            settings.influence, self.brands, watch_percentile=settings.rules.influence_percentile
        )
        self.seen.horizon_seconds = _dedupe_horizon(settings)

    def __getstate__(self) -> tuple:
        return (self.brands, self.graph, self.seen, self.duplicates)

    def __setstate__(self, state: tuple) -> None:
        self.brands, self.graph, self.seen, self.duplicates = state

    def process(
        self, item: SocialEvent | ControlRecord, assessment: Assessment | Sentiment | None
    ) -> list[Enriched]:
        """One event in; out go its scored post (if it is about the business), the accounts
        whose influence rose to the alerting percentile because of it, and control records as
        they are. Every event grows the graph, relevant or not: reach is reach. A bare
        `Sentiment` is a post scored without listening rules (nothing matched)."""
        if not isinstance(item, SocialEvent):
            if isinstance(item, AccountPurge):
                self.graph.forget(item.customer_id)
            return [item]
        if not self.seen.first_time(item.dedupe_key, item.created_at.timestamp()):
            self.duplicates += 1
            return []
        graph = self.graph
        refreshes = graph.refresh_count
        if item.edited_at is None:
            # An edit re-scores its post; its reply, quote and mentions were counted already.
            graph.observe(item)
        out: list[Enriched] = []
        if graph.refresh_count != refreshes:
            out.extend(
                InfluenceRise(
                    cid, graph.influence_of(cid), item.id, item.created_at, read_ns=item.read_ns
                )
                for cid in graph.take_risen()
            )
        if assessment is None or item.text is None:
            return out
        if isinstance(assessment, Sentiment):
            assessment = Assessment(assessment)
        customer_id = item.customer_id
        out.append(
            ScoredPost(
                event_id=item.id,
                customer_id=customer_id,
                platform=item.platform,
                handle=item.author.handle,
                created_at=item.created_at,
                text=item.text,
                sentiment=assessment.sentiment,
                influence=graph.influence_of(customer_id),
                is_brand=self.brands.matches(customer_id, item.author.handle),
                matched=assessment.matched,
                url=item.url,
                read_ns=item.read_ns,
            )
        )
        return out
