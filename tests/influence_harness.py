"""The influence tests' harness: events of one platform dated from `T0`, the graph stage
(watermark, de-duplication, brands, graph) fed with them, and the feeds the tables use (thin
background traffic, crowds around one account, random heavy-tailed interactions).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import Settings
from operators.enrich import Enricher, EnrichPolicy, touch_of
from operators.events import SocialEvent
from operators.influence import InfluenceGraph
from operators.records import Influence, InfluenceRise, Sentiment

T0 = datetime(2024, 5, 1, tzinfo=UTC)
PLATFORM = "tw"
HOUR = 3600
DAY = 86_400
SINK = "<decayed>"


def cid(account: str) -> str:
    return f"{PLATFORM}:{account}"


def ev(
    n: int | str,
    author: str,
    kind: str = "post",
    target: str | None = None,
    mentions: Sequence[str] = (),
    at: float = 0.0,
    followers: int | None = None,
    handle: str | None = None,
) -> SocialEvent:
    """One event; `at` is seconds after T0."""
    data: dict[str, object] = {
        "id": str(n),
        "platform": PLATFORM,
        "kind": kind,
        "created_at": (T0 + timedelta(seconds=at)).isoformat(),
        "author": {"id": author, "handle": handle, "followers": followers},
        "mentions": [{"id": m} for m in mentions],
    }
    if kind in ("post", "reply", "quote"):
        data["text"] = "hello"
    if target is not None:
        data["target"] = {"id": target}
    return SocialEvent.model_validate(data)


class Harness:
    """The graph stage (watermark, de-duplication, brands, graph) fed with events."""

    def __init__(self, brands: Iterable[str] = (), **influence: Any) -> None:
        base: dict[str, Any] = {
            "min_accounts_to_rank": 10,
            "refresh_every_events": 10**6,
            "refresh_every_seconds": 10**6,
        }
        base.update(influence)
        settings = Settings(influence=base, brand_accounts=list(brands))
        # The watermark at most 6 h behind (the flow allows the reach horizon): these feeds are
        # small, and a few events must be able to move it.
        self.policy = dataclasses.replace(EnrichPolicy.from_settings(settings), max_lag=6 * HOUR)
        self.enricher = Enricher()
        self.out: list[Any] = []

    @property
    def graph(self) -> InfluenceGraph:
        return self.enricher.graph

    @property
    def wm(self) -> float:
        return self.enricher.watermark.value

    def feed(self, events: Iterable[SocialEvent], compound: float | None = None) -> list[Any]:
        out = []
        for event in events:
            sentiment = None
            if compound is not None and event.text is not None:
                sentiment = Sentiment(compound, 0.0, 0.0, 0.0)
            touch = touch_of(event, sentiment, sentiment is not None)
            out.extend(self.enricher.process(touch, self.policy))
        self.out.extend(out)
        return out

    def inf(self, account: str) -> Influence:
        return self.graph.influence_of(cid(account), self.wm, self.policy.graph)

    def refresh(self) -> None:
        self.graph.refresh(self.wm, self.policy.graph)

    def rises(self) -> list[InfluenceRise]:
        return [rec for _, (_, rec) in self.out if isinstance(rec, InfluenceRise)]


def background(accounts: int = 300, at: float = 0.0, seed: int = 7) -> list[SocialEvent]:
    """Accounts that post and nobody answers: the thin feed most real feeds are."""
    rng = random.Random(seed)
    return [
        ev(f"bg-{seed}-{at:g}-{i}", f"u{i}", followers=rng.randint(50, 2_000), at=at + i % 60)
        for i in range(accounts)
    ]


def crowd(target: str, n: int, at: float, kind: str = "reply", prefix: str = "c") -> list:
    """n distinct accounts interacting with `target` (as authors: they have evidence)."""
    events = []
    for i in range(n):
        if kind == "mention":
            events.append(ev(f"{prefix}{i}-{target}", f"{prefix}{i}", mentions=[target], at=at))
        else:
            events.append(ev(f"{prefix}{i}-{target}", f"{prefix}{i}", kind, target=target, at=at))
    return events


def random_feed(seed: int, accounts: int, interactions: int, days: float) -> list[SocialEvent]:
    rng = random.Random(seed)
    events = []
    for k in range(interactions):
        a = rng.randrange(accounts)
        b = int(rng.paretovariate(1.2)) % accounts  # heavy-tailed popularity
        kind = rng.choice(["reply", "quote", "repost", "like", "follow", "post"])
        mentions = [f"u{rng.randrange(accounts)}"] if rng.random() < 0.3 else []
        target = None if kind == "post" else f"u{b}"
        events.append(
            ev(f"e{k}", f"u{a}", kind, target=target, mentions=mentions, at=k * days * DAY / 1e4)
        )
    events.append(ev("loop", "u0", "reply", target="u0", at=days * DAY))  # a self-loop, ignored
    return events
