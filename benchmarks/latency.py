"""Event-to-alert latency in live mode: XADD of the triggering post → alert on the pub/sub channel.

    .venv/bin/python benchmarks/latency.py [--alerts 200] [--background-rate 500] [--redis-url URL]

Starts `sense-respond run --input redis:KEY` as a separate process, feeds it a steady background
of ordinary posts and interactions at `--background-rate` events/s, and every so often a fresh
account with 50k followers posting two angry posts; the second one makes the rule true. The
latency of an alert is the time from the XADD of that second post to the alert's arrival on the
channel, both taken on this machine's monotonic clock. Reports p50/p90/p99/max.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.embedded_redis import resolve_redis_url  # noqa: E402

ANGRY = [
    "This is the worst service ever. I am furious and disgusted.",
    "Still no refund. Terrible, awful, horrible experience!!",
]


def event(i: str, author: str, followers: int, text: str) -> bytes:
    return orjson.dumps(
        {
            "id": i,
            "platform": "twitter",
            "kind": "post",
            "created_at": datetime.now(UTC).isoformat(),
            "author": {"id": author, "handle": author, "followers": followers},
            "text": text,
        }
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--background-rate", type=float, default=500.0)
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = ap.parse_args()

    url, embedded = resolve_redis_url(args.redis_url)
    prefix = f"latency:{uuid.uuid4().hex[:8]}:"
    stream = f"{prefix}events"
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}alerts")
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            msg = pubsub.get_message(timeout=0.1)
            if msg is None:
                continue
            arrived = time.monotonic()
            alert = orjson.loads(msg["data"])
            trigger = alert["data"]["trigger_event_id"]
            if trigger in sent_at:
                latencies.append((arrived - sent_at[trigger]) * 1000)

    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    env["SR_FLOW__EPOCH_INTERVAL_SECONDS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sense_respond", "run", "--input", f"redis:{stream}",
         "--redis-url", url, "--prefix", prefix],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        # Warm up: wait until the flow consumes (its consumer group exists and lag is 0).
        client.xadd(stream, {"event": event("warm", "warm", 10, "hello")})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            groups = client.xinfo_groups(stream)
            if groups and groups[0]["pending"] == 0 and groups[0]["lag"] == 0:
                break
            time.sleep(0.1)
        interval = 1.0 / args.background_rate
        next_at = time.monotonic()
        n = 0
        for k in range(args.alerts):
            # ~0.25 s of background between two planted alerts
            for _ in range(max(1, int(args.background_rate / 4))):
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                n += 1
                client.xadd(stream, {"event": event(f"bg{n}", f"bg{n % 3000}", 200, "nice day")})
            vip = f"vip{k}"
            client.xadd(stream, {"event": event(f"{vip}-1", vip, 50_000, ANGRY[0])})
            sent_at[f"{vip}-2"] = time.monotonic()
            client.xadd(stream, {"event": event(f"{vip}-2", vip, 50_000, ANGRY[1])})
        deadline = time.monotonic() + 10
        while len(latencies) < args.alerts and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        listener.join(timeout=5)
        pubsub.close()
        proc.terminate()
        proc.wait(timeout=30)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()
        if embedded is not None:
            embedded.stop()

    if not latencies:
        print("no alerts received")
        return 1
    print(f"alerts received           {len(latencies)} / {args.alerts}")
    print(f"background rate           {args.background_rate:,.0f} events/s")
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        print(f"event-to-alert {name}        {percentile(latencies, q):.1f} ms")
    print(f"event-to-alert max        {max(latencies):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
