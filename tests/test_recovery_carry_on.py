"""Recovered state: a snapshot taken anywhere, restored, must carry on exactly like the
uninterrupted state, under the current settings; a replay after a crash leaves each customer's
view as of its moment."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from bytewax.testing import TestingSource, run_main
from stages import Stages

from config.settings import Settings
from flows.pipeline import build_flow
from operators.events import Account, SocialEvent, parse_event
from operators.records import Sentiment
from operators.scoring import score_texts
from sense_respond import recovery
from sense_respond.recovery import RecoveryOptions
from sense_respond.scenario import DEFAULT_START, generate

pytestmark = pytest.mark.usefixtures("recovery_clean_run_started")
"""When end-to-end recovery tests are selected too, their clean run (a session fixture of
`conftest.py`) runs on the other core while this module's tests do."""


@pytest.fixture(scope="module")
def scored_events() -> tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]]:
    """A small scenario, parsed and scored, with its brand accounts."""
    sc = generate(seed=11, background=400)
    now = datetime.now(UTC)
    events = [parse_event(line, now) for line in sc.jsonl_bytes().splitlines()]
    valid = [e for e in events if isinstance(e, SocialEvent)]
    scores = iter(score_texts([e.text for e in valid if e.text is not None]))
    pairs = [(e, next(scores) if e.text is not None else None) for e in valid]
    return pairs, list(sc.brand_accounts)


@pytest.mark.parametrize("split", [0.05, 0.37, 0.5, 0.81, 0.99])
def test_restored_state_carries_on_exactly_like_the_uninterrupted_one(
    scored_events: tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]], split: float
) -> None:
    pairs, brands = scored_events
    settings = Settings(brand_accounts=brands)
    k = int(len(pairs) * split)
    whole = Stages(settings)
    expected = whole.feed(pairs)
    first = Stages(settings)
    head = first.feed(pairs[:k])
    resumed = first.restored(settings)
    tail = resumed.feed(pairs[k:])
    assert head + tail == expected  # same records, same influence numbers, same alert ids
    assert any(isinstance(x, str) for x in expected)  # the scenario does alert


def test_resume_applies_the_current_brands_and_influence_settings(
    scored_events: tuple[list[tuple[SocialEvent, Sentiment | None]], list[str]],
) -> None:
    """State holds no settings: a resumed state runs under the current ones, no reconfigure."""
    pairs, brands = scored_events
    before = Settings(brand_accounts=brands)
    stages = Stages(before)
    stages.feed(pairs)
    enricher = stages.enricher
    watermark = enricher.watermark.value
    busiest = max(
        (e for e, _ in pairs if e.target is not None),
        key=lambda e: enricher.graph.inbound_accounts(
            e.customer_id, watermark, stages.enrich_policy.graph
        ),
    )
    new_brand = busiest.customer_id
    after = Settings(
        brand_accounts=[*brands, new_brand],
        influence={"half_life_seconds": 86_400},
        window={"length_seconds": 3600, "max_posts": 2, "allowed_lateness_seconds": 60},
        flow={"dedupe_seconds": 120},
    )
    resumed = stages.restored(after)
    # the new brand's interactions no longer count as reach (they still would under the old)
    replay = dataclasses.replace(busiest, id="after-resume", target=Account(id="new-one"))
    stale = stages.restored(before)
    edges = stale.enricher.graph.edge_count
    stale.feed([(replay, None)])
    assert stale.enricher.graph.edge_count == edges + 1
    edges = resumed.enricher.graph.edge_count
    resumed.feed([(replay, None)])
    assert resumed.enricher.graph.edge_count == edges
    # windows take the new length at once
    for state in resumed.customers.values():
        state.advance(watermark, resumed.policy, datetime.now(UTC))
        assert all(p.ts > state.window.now - 3600 for p in state.window.posts)
        assert state.window.summary(resumed.policy.window).window_seconds in (0, 3600)


def vip_post(event_id: str, minutes: float, text: str) -> bytes:
    created = DEFAULT_START + timedelta(minutes=minutes)
    return orjson.dumps(
        {"id": event_id, "platform": "twitter", "kind": "post", "created_at": created.isoformat(),
         "author": {"id": "vip", "handle": "vip", "followers": 50_000}, "text": text}
    )  # fmt: skip


def test_replayed_alert_leaves_the_view_of_its_moment(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """v1 writes a plain view, v2 fires the alert; a crash before any snapshot replays both."""
    lines = [
        vip_post("v1", 0, "This is the worst service ever. I am furious and disgusted."),
        vip_post("v2", 10, "Still no refund. Terrible, awful, horrible experience!!"),
    ]
    settings = Settings().with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    recovery.prepare(tmp_path, 1)
    config = RecoveryOptions(tmp_path).config()
    crash = [*lines, TestingSource.PAUSE(timedelta(seconds=0.3)), TestingSource.ABORT()]
    flow = build_flow(settings, TestingSource(crash))
    epoch = timedelta(seconds=60)  # no snapshot before the crash: the resume replays v1 and v2
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # stops at the ABORT
    key = f"{redis_prefix}customer:twitter:vip"
    assert orjson.loads(redis_client.hget(key, "sentiment"))["posts"] == 2  # type: ignore[arg-type]
    run_main(flow, epoch_interval=epoch, recovery_config=config)  # the ABORT fires only once
    assert redis_client.xlen(f"{redis_prefix}alerts") == 1
    view = redis_client.hgetall(key)
    last = orjson.loads(view[b"last_alert"])
    assert orjson.loads(view[b"sentiment"]) == last["data"]["sentiment"]
