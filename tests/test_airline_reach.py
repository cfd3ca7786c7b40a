"""The real airline replay: every alert's reach is stated and real (shared data)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSource, run_main

from config.settings import Settings
from flows.pipeline import build_flow

TWEETS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "airline_sentiment" / "Tweets.csv"
)
BRANDS = ["united", "AmericanAir", "SouthwestAir", "JetBlue", "USAirways", "VirginAmerica"]
MENTION = re.compile(r"@(\w{1,15})")


def airline_lines() -> list[bytes]:
    """The tweets as SocialEvent v1 posts; the graph is the @mentions in the text."""
    rows = list(csv.DictReader(TWEETS.open(encoding="utf-8")))
    lines = []
    for row in rows:
        created = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z")
        handles = dict.fromkeys(m.lower() for m in MENTION.findall(row["text"]))
        lines.append(
            (
                created.astimezone(UTC),
                orjson.dumps(
                    {
                        "id": row["tweet_id"],
                        "platform": "twitter",
                        "kind": "post",
                        "created_at": created.astimezone(UTC).isoformat(),
                        "author": {"id": row["name"].lower(), "handle": row["name"]},
                        "text": row["text"],
                        "mentions": [{"id": h, "handle": h} for h in handles],
                    }
                ),
            )
        )
    lines.sort(key=lambda pair: pair[0])
    return [line for _, line in lines]


@pytest.mark.shared
def test_airline_replay_alerts_only_on_real_recent_reach(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    if not TWEETS.is_file():
        pytest.skip(f"shared data absent: {TWEETS}")
    settings = Settings(brand_accounts=BRANDS).with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    run_main(build_flow(settings, TestingSource(airline_lines(), 500)))
    alerts = [orjson.loads(f[b"alert"]) for _, f in redis_client.xrange(f"{redis_prefix}alerts")]
    rules, reach = settings.rules, settings.influence
    print(f"\n{len(alerts)} alerts on the airline replay")
    for alert in alerts:
        data = alert["data"]
        inf = data["influence"]
        print(
            f"  {data['customer_id']:<32} inbound {inf['inbound_accounts']:>3}"
            f"  pct {inf['percentile']}  followers {inf['followers']}  {data['reasons']}"
        )
        assert (
            inf["inbound_accounts"] >= reach.min_inbound_accounts
            or inf["followers"] >= rules.followers_threshold
        ), data
        assert data["customer_id"].split(":", 1)[1] not in {b.lower() for b in BRANDS}
