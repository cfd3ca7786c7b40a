"""The whole path: a generated conversation through the pipeline (TestingSource/run_main, the
real sink on the real Redis), a person acknowledging through the CLI, and the notifier pushing
every lifecycle event to local PagerDuty, Slack and webhook receivers while the flow runs.

Needs the dataflow half of issue 9 (incidents); skipped on a tree without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

pytest.importorskip("operators.incidents")

from bytewax.testing import TestingSource, run_main

from config.settings import Settings
from flows.pipeline import build_flow
from sense_respond.cli import main
from tests.notify_fixtures import Receiver, wait_for
from tests.notify_harness import (
    FAST,
    drained,
    pagerduty,
    running,
    slack,
    webhook,
)

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
ANGRY = [
    "@AcmeAir you lost my bag again and nobody answers. Worst airline ever, I am furious!",
    "@AcmeAir still no refund after three weeks. Terrible, awful service. Disgusted.",
    "@AcmeAir rude staff, broken seat, filthy cabin. I hate this, absolutely pathetic.",
]
HAPPY = [
    "@AcmeAir thank you so much, the refund arrived and the crew was wonderful!",
    "@AcmeAir great support today, really appreciate the help, you are awesome.",
    "@AcmeAir bag delivered to my door, excellent service, love it. Thanks!",
]


def post(i: str, minute: float, text: str) -> bytes:
    return orjson.dumps(
        {
            "id": i,
            "platform": "twitter",
            "kind": "reply",
            "created_at": (T0 + timedelta(minutes=minute)).isoformat(),
            "author": {"id": "vip", "handle": "vip", "followers": 50_000},
            "text": text,
            "target": {"id": "acme", "handle": "AcmeAir"},
        }
    )


def spell(start: float, n: int, pool: list[str]) -> list[bytes]:
    return [post(f"p{start}-{k}", start + 5 * k, pool[k % len(pool)]) for k in range(n)]


def test_lifecycle_through_the_pipeline_reaches_every_destination_in_order(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    stream_key = f"{redis_prefix}alerts"

    def entries() -> list[dict[str, Any]]:
        return [orjson.loads(f[b"alert"]) for _, f in redis_client.xrange(stream_key)]

    with Receiver() as pd, Receiver() as bags, Receiver() as crm:
        settings = Settings(
            brand_accounts=["AcmeAir"],
            influence={"min_accounts_to_rank": 5},
            routes=[{"name": "bags", "team": "baggage", "any_words": ["lost my bag", "bag"]}],
            redis={"url": redis_url, "prefix": redis_prefix},
            notify={
                **FAST,
                "destinations": [
                    pagerduty("oncall", pd.url),
                    slack("bags-chat", bags.url, teams=["baggage"]),
                    webhook("crm", crm.url),
                ],
            },
        )

        def source() -> Iterator[Any]:
            yield from spell(0, 3, ANGRY)
            deadline = time.monotonic() + 60
            while not entries():
                assert time.monotonic() < deadline, "the firing never reached Redis"
                yield TestingSource.PAUSE(timedelta(milliseconds=50))
            incident = entries()[0]["data"]["incident_id"]
            cli = ["--redis-url", redis_url, "--prefix", redis_prefix]
            assert main(["incidents", "ack", incident, "--by", "zoe", *cli]) == 0
            yield from spell(40, 6, HAPPY)
            yield from spell(8 * 60, 3, ANGRY)

        with running(settings):
            run_main(build_flow(settings, TestingSource(source(), batch_size=5)))
            wait_for(lambda: drained(redis_client, redis_prefix), timeout=60, what="all pushed")

    events = entries()
    statuses = [e["data"]["status"] for e in events]
    assert statuses == ["firing", "acknowledged", "resolved", "firing"]
    first, second = events[0]["data"]["incident_id"], events[3]["data"]["incident_id"]
    assert first != second

    got = [(b["dedup_key"], b["event_action"]) for b in (r.json() for r in pd.delivered())]
    assert got == [
        (first, "trigger"),
        (first, "acknowledge"),
        (first, "resolve"),
        (second, "trigger"),
    ]
    assert [orjson.loads(r.body) for r in crm.delivered()] == events
    assert [r.headers["webhook-id"] for r in crm.delivered()] == [e["id"] for e in events]
    # the bag complaints routed to the baggage team, whose channel heard all of it
    assert len(bags.delivered()) == 4
    assert "Acknowledged by zoe" in bags.delivered()[1].json()["text"]
    assert redis_client.xlen(f"{redis_prefix}notify:dlq") == 0
