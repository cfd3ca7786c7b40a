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
from operators.records import AccountPurge, ScoredPost, Sentiment, Withdrawal

ControlRecord = Withdrawal | AccountPurge
Enriched = ScoredPost | ControlRecord


class Enricher:
    """De-duplication + influence graph; turns scored events into `ScoredPost`s."""

    __slots__ = ("brands", "duplicates", "graph", "seen")

    def __init__(self, settings: Settings) -> None:
        self.brands = BrandAccounts(settings.brand_accounts)
        self.graph = InfluenceGraph(settings.influence, self.brands)
        horizon = settings.window.length_seconds + settings.window.allowed_lateness_seconds
        self.seen = RecentIds(horizon_seconds=horizon)
        self.duplicates = 0

    def __getstate__(self) -> tuple:
        return (self.brands, self.graph, self.seen, self.duplicates)

    def __setstate__(self, state: tuple) -> None:
        self.brands, self.graph, self.seen, self.duplicates = state

    def process(
        self, item: SocialEvent | ControlRecord, sentiment: Sentiment | None
    ) -> Enriched | None:
        """One event in, at most one record out (None for duplicates and pure interactions)."""
        if not isinstance(item, SocialEvent):
            if isinstance(item, AccountPurge):
                self.graph.forget(item.customer_id)
            return item
        if not self.seen.first_time(item.dedupe_key, item.created_at.timestamp()):
            self.duplicates += 1
            return None
        self.graph.observe(item)
        if sentiment is None or item.text is None:
            return None
        customer_id = item.customer_id
        return ScoredPost(
            event_id=item.id,
            customer_id=customer_id,
            platform=item.platform,
            handle=item.author.handle,
            created_at=item.created_at,
            text=item.text,
            sentiment=sentiment,
            influence=self.graph.influence_of(customer_id),
            is_brand=self.brands.matches(customer_id, item.author.handle),
        )
