"""The whole incident lifecycle through the pipeline (TestingSource/run_main, the real sink on the
real Redis), driven by a generated conversation, with a person acknowledging through the CLI."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSource, run_main
from redis_helpers import stream_alerts

from config.settings import Settings
from flows.pipeline import build_flow
from sense_respond.cli import main

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
BRAND = "AcmeAir"
VIP = "twitter:vip"

ANGRY = [
    "@AcmeAir you lost my bag again and nobody answers. Worst airline ever, I am furious!",
    "@AcmeAir still no refund after three weeks. Terrible, awful service. Disgusted.",
    "@AcmeAir cancelled my flight with no notice, horrible experience, never again!!",
    "@AcmeAir rude staff, broken seat, filthy cabin. I hate this, absolutely pathetic.",
]
HAPPY = [
    "@AcmeAir thank you so much, the refund arrived and the crew was wonderful!",
    "@AcmeAir great support today, really appreciate the help, you are awesome.",
    "@AcmeAir bag delivered to my door, excellent service, love it. Thanks!",
]
CHATTER = ["nice day at the beach", "coffee time", "watching the game tonight", "hello world"]


def event(i: str, author: str, minute: float, text: str, followers: int) -> bytes:
    obj: dict[str, Any] = {
        "id": i,
        "platform": "twitter",
        "kind": "reply" if text.startswith("@") else "post",
        "created_at": (T0 + timedelta(minutes=minute)).isoformat(),
        "author": {"id": author, "handle": author, "followers": followers},
        "text": text,
    }
    if text.startswith("@"):
        obj["target"] = {"id": "acme", "handle": BRAND}
    return orjson.dumps(obj)


def conversation(rng: random.Random, start: float, n: int, pool: list[str]) -> list[bytes]:
    """The VIP's `n` posts from `pool` a few minutes apart, with background chatter between."""
    lines, minute = [], start
    for k in range(n):
        for b in range(rng.randint(1, 3)):
            who = f"bg{rng.randrange(40)}"
            lines.append(event(f"c{start}-{k}-{b}", who, minute, rng.choice(CHATTER), 200))
        lines.append(event(f"v{start}-{k}", "vip", minute + 0.5, rng.choice(pool), 50_000))
        minute += rng.uniform(3, 9)
    return lines


def test_unhappy_acked_recovered_then_a_new_incident(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    rng = random.Random(9)
    acked: list[str] = []
    cli = ["--redis-url", redis_url, "--prefix", redis_prefix]

    def source() -> Iterator[Any]:
        yield from conversation(rng, 0, 3, ANGRY)  # turns unhappy: firing
        deadline = time.monotonic() + 60
        while not stream_alerts(redis_client, redis_prefix):
            assert time.monotonic() < deadline, "the firing never reached Redis"
            yield TestingSource.PAUSE(timedelta(milliseconds=50))  # let the flow deliver
        iid = stream_alerts(redis_client, redis_prefix)[0]["data"]["incident_id"]
        args = ["incidents", "ack", iid[:8], "--by", "zoe", "--note", "calling her", *cli]
        assert main(args) == 0  # someone takes it, through the CLI
        acked.append(iid)
        yield from conversation(rng, 40, 6, HAPPY)  # recovers: resolved
        yield from conversation(rng, 8 * 60, 3, ANGRY)  # a second unhappy spell: a new incident

    settings = Settings(
        brand_accounts=[BRAND],
        influence={"min_accounts_to_rank": 5},
        routes=[{"name": "bags", "team": "baggage", "any_words": ["lost my bag", "bag"]}],
    ).with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    run_main(build_flow(settings, TestingSource(source(), batch_size=5)))

    events = stream_alerts(redis_client, redis_prefix)
    got = [
        (e["type"].removeprefix("sense_respond.unhappy_influential_customer"), e["data"]["status"])
        for e in events
    ]
    assert got == [
        ("", "firing"),
        (".acknowledged", "acknowledged"),
        (".resolved", "resolved"),
        ("", "firing"),
    ]
    first, ack, resolved, second = (e["data"] for e in events)
    assert acked == [first["incident_id"]]
    assert first["incident_id"] == ack["incident_id"] == resolved["incident_id"]
    assert second["incident_id"] != first["incident_id"]
    assert (first["incident_seq"], second["incident_seq"]) == (1, 2)
    assert ack["acknowledged_by"] == "zoe" and ack["note"] == "calling her"
    assert resolved["resolved_reason"] == "sentiment_recovered"
    assert resolved["sentiment"]["mean"] >= -0.05
    for data in (first, ack, resolved, second):
        assert data["customer_id"] == VIP
        assert data["platform"] == "twitter" and data["handle"] == "vip"
        assert data["severity"] in ("warning", "critical")
        assert {"team", "route", "matched"} <= set(data["routing"])
        assert data["event_time"]
    assert first["evidence"] and first["sentiment"]["mean"] <= -0.35
    assert first["influence"]["followers"] == 50_000

    # the ids are deterministic: a replay of the same output is de-duplicated
    assert len({e["id"] for e in events}) == 4

    # the shared view: the newest incident open, the first one resolved with who acted when
    view = redis_client.hgetall(f"{redis_prefix}customer:{VIP}")
    incident = orjson.loads(view[b"incident"])
    assert (incident["id"], incident["status"]) == (second["incident_id"], "firing")
    history = redis_client.zrevrange(f"{redis_prefix}customer:{VIP}:incidents", 0, -1)
    assert [h.decode() for h in history] == [second["incident_id"], first["incident_id"]]
    record = redis_client.hgetall(f"{redis_prefix}incident:{first['incident_id']}")
    assert record[b"status"] == b"resolved"
    assert record[b"acknowledged_by"] == b"zoe"
    actions = [a["action"] for a in orjson.loads(record[b"activity"])]
    assert actions == ["opened", "acknowledged", "resolved"]


@pytest.mark.parametrize("silenced", [False, True])
def test_routes_and_silences_through_the_pipeline(
    redis_url: str, redis_prefix: str, redis_client: Any, silenced: bool
) -> None:
    rng = random.Random(3)
    if silenced:
        cli = ["--redis-url", redis_url, "--prefix", redis_prefix]
        assert main(["silence", "add", "--customer", VIP, "--duration", "1h", "--by", "zoe",
                     "--comment", "known issue", *cli]) == 0  # fmt: skip
    pubsub = redis_client.pubsub()
    pubsub.subscribe(f"{redis_prefix}alerts:team:baggage")
    settings = Settings(
        brand_accounts=[BRAND],
        routes=[{"name": "bags", "team": "baggage", "any_words": ["bag"]}],
    ).with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    lines = conversation(rng, 0, 3, [ANGRY[0]])
    run_main(build_flow(settings, TestingSource(lines, batch_size=4)))
    [fired] = stream_alerts(redis_client, redis_prefix)
    assert fired["data"]["routing"]["team"] == "baggage"
    assert fired["data"]["routing"]["matched"] == ["words bag"]
    assert ("silenced_by" in fired["data"]) is silenced
    redis_client.publish(f"{redis_prefix}alerts:team:baggage", b"end")
    team_msgs = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is None:
            continue
        if msg["data"] == b"end":
            break
        team_msgs.append(orjson.loads(msg["data"])["id"])
    pubsub.close()
    assert team_msgs == ([] if silenced else [fired["id"]])


def test_quiet_resolution_on_the_customers_next_post_and_the_view_after_it(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    lines = [event(f"v{k}", "vip", k, ANGRY[k], 50_000) for k in range(2)]
    lines.append(event("later", "vip", 9 * 60, "@AcmeAir what time does boarding start?", 50_000))
    settings = Settings(brand_accounts=[BRAND]).with_redis_url(redis_url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": redis_prefix})}
    )
    run_main(build_flow(settings, TestingSource(lines, batch_size=10)))
    events = [e["data"] for e in stream_alerts(redis_client, redis_prefix)]
    assert [(d["status"], d.get("resolved_reason")) for d in events] == [
        ("firing", None),
        ("resolved", "quiet"),
    ]
    assert events[1]["event_time"] == "2026-03-02T14:01:00Z"  # last angry post + 6 h
    view = redis_client.hgetall(f"{redis_prefix}customer:{VIP}")
    assert orjson.loads(view[b"sentiment"])["posts"] == 1  # the later post, placed after it
    assert orjson.loads(view[b"incident"])["status"] == "resolved"
