"""The global stage: de-duplication, edits, brands, and influence attached to posts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from operators.enrich import Enricher
from operators.events import SocialEvent
from operators.records import ScoredPost, Sentiment

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
NEG = Sentiment(-0.8, 0.0, 0.2, 0.8)


def reply(minutes: float, edited: float | None = None) -> SocialEvent:
    return SocialEvent.model_validate(
        {
            "id": "r1",
            "platform": "mastodon",
            "kind": "reply",
            "created_at": (T0 + timedelta(minutes=minutes)).isoformat(),
            "edited_at": None if edited is None else (T0 + timedelta(minutes=edited)).isoformat(),
            "author": {"id": "a", "handle": "ann", "followers": 10},
            "target": {"id": "b"},
            "mentions": [{"id": "c"}],
            "text": "this is awful",
        }
    )


def test_edits_rescore_but_do_not_count_as_new_interactions() -> None:
    enricher = Enricher(Settings())
    outs = [enricher.process(reply(0), NEG)]
    outs += [enricher.process(reply(0, edited=k), NEG) for k in (1, 2, 3)]
    assert all(any(isinstance(o, ScoredPost) for o in out) for out in outs)  # each re-scored
    graph = enricher.graph.to_networkx()
    assert graph["mastodon:a"]["mastodon:b"]["weight"] == pytest.approx(1.0)
    assert graph["mastodon:a"]["mastodon:c"]["weight"] == pytest.approx(1.0)


def test_exact_duplicates_are_dropped_and_counted() -> None:
    enricher = Enricher(Settings())
    assert enricher.process(reply(0), NEG)
    assert enricher.process(reply(0), NEG) == []
    assert enricher.duplicates == 1
