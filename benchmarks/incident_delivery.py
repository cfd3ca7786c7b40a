"""What the atomic lifecycle delivery costs: bare alerts vs. full incident events, one run.

    .venv/bin/python benchmarks/incident_delivery.py [--events 3000] [--batch 100] [--rounds 3]

Builds `--events` firing events of distinct customers through the real `CustomerState` (two
angry posts each, routed by a small `[[routes]]` table), then delivers them through the real
`AlertSinkPartition` in batches of `--batch` (one pipeline each), three ways, each into its own
fresh prefix on the same Redis:

* `bare`: the same payloads without an incident (stream + channel + view, marker last);
* `incident`: the full lifecycle script (key types checked, team channels, incident record,
  history, index, open set, view `incident`, marker last);
* `silenced`: as `incident`, with every customer silenced (the script reads the silence and
  rewrites the payload).

Reports events/s of each (best of `--rounds` rounds in rotating order) and the ratios to
`bare`, measured in this one run. Alerts are rare
(a handful per minute on a busy feed), so what matters is that the ratio stays far from making
delivery the bottleneck of a batch.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.detection import RuleSettings, WindowSettings  # noqa: E402
from config.notify import RouteSettings  # noqa: E402
from config.runtime import RedisSettings  # noqa: E402
from connectors import incident_store  # noqa: E402
from connectors.embedded_redis import resolve_redis_url  # noqa: E402
from connectors.redis_sinks import AlertSink  # noqa: E402
from operators.customer import CustomerPolicy, CustomerState  # noqa: E402
from operators.records import AlertRecord, Influence, ScoredPost, Sentiment  # noqa: E402
from operators.routing import Router  # noqa: E402

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def firing_events(n: int) -> list[AlertRecord]:
    router = Router.from_settings(
        [
            RouteSettings(team="vip", min_followers=10_000, **{"continue": True}),
            RouteSettings(team="billing", any_words=["refund"]),
        ],
        "service",
    )
    policy = CustomerPolicy(WindowSettings(), RuleSettings(), "urn:bench", router=router)
    detected = datetime.now(UTC)
    out: list[AlertRecord] = []
    for i in range(n):
        cid = f"twitter:bench{i}"
        state = CustomerState(policy.window)
        for k in range(2):
            post = ScoredPost(
                f"e{i}-{k}",
                cid,
                "twitter",
                f"bench{i}",
                T0 + timedelta(minutes=k),
                "Still no refund after three weeks. Terrible, awful service.",
                Sentiment(-0.8, 0.0, 0.4, 0.6),
                Influence(0.95, 0.95, 50_000, 0.001, 12, 500),
            )
            out.extend(state.on_post(post, policy, detected))
    return out


def deliver(url: str, prefix: str, events: list[AlertRecord], batch: int) -> float:
    """Seconds to deliver `events` in batches of `batch`."""
    part = AlertSink(url, RedisSettings(prefix=prefix)).build("bench", 0, 1)
    try:
        started = time.perf_counter()
        for i in range(0, len(events), batch):
            part.write_batch(events[i : i + batch])
        elapsed = time.perf_counter() - started
    finally:
        part.close()
    assert part.stats.alerts_new == len(events), part.stats
    return elapsed


def cleanup(client: redis.Redis, prefix: str) -> None:
    doomed = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(doomed), 500):
        client.unlink(*doomed[i : i + 500])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    url, embedded = resolve_redis_url(args.redis_url or "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    run = uuid.uuid4().hex[:8]
    modes = ("bare", "incident", "silenced")
    events = firing_events(args.events)
    bare = [AlertRecord(e.alert_id, e.customer_id, e.payload, e.view) for e in events]
    seconds: dict[str, float] = {}
    try:
        # Rounds in rotating order, best of each: a loaded machine and a growing Redis favour
        # neither mode.
        for rnd in range(args.rounds):
            for name in modes[rnd % 3 :] + modes[: rnd % 3]:
                prefix = f"bench-delivery:{run}:{rnd}:{name}:"
                if name == "silenced":
                    now = datetime.now(UTC)
                    for e in events:
                        incident_store.add_silence(
                            client, prefix, e.customer_id, timedelta(hours=1), "bench", "x", now
                        )
                try:
                    took = deliver(url, prefix, bare if name == "bare" else events, args.batch)
                finally:
                    cleanup(client, prefix)
                seconds[name] = min(seconds.get(name, took), took)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()
    print(f"{args.events} firing events, batches of {args.batch}, best of {args.rounds} rounds:")
    for name, secs in seconds.items():
        rate = args.events / secs
        ratio = seconds["bare"] / secs
        print(f"  {name:9} {rate:10,.0f} events/s   {ratio:.2f}x of bare")


if __name__ == "__main__":
    main()
