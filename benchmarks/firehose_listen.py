"""Whole-pipeline events/s on a firehose-shaped mix, with and without listening rules, in one run.

    .venv/bin/python benchmarks/firehose_listen.py [--events N] [--relevant 0.01] [--redis-url URL]

The mix follows the kinds of 152 contiguous real Bluesky Jetstream messages
(../shared/data/streaming_fixtures): 69% likes, 11% posts (a third of them replies), 10% reposts,
6% follows, plus a few quotes, among 50,000 accounts, without follower counts (Jetstream carries
none). Post texts are real tweets (../shared/data airline and vaccine tweets, every @handle
replaced) when present, else the scenario generator's texts; `--relevant` of the posts (1%) are
about the brand (an @acmeair mention or the keyword "acme air").

Both runs read the same file with the same settings, into Redis, in this process:
  today:     no listening rule, every post is scored (the pipeline before issue 6);
  listening: brand account + keywords: only the ~1% relevant posts are scored; every event still
             grows the interaction graph.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_run import run_pipeline  # noqa: E402
from connectors.embedded_redis import resolve_redis_url  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TEXT_SOURCES = [
    (SHARED / "airline_sentiment" / "Tweets.csv", "text"),
    (SHARED / "vaccination_tweets_followers" / "vaccination_tweets.csv", "text"),
]
KINDS = (("like", 0.69), ("post", 0.074), ("reply", 0.036), ("repost", 0.10), ("follow", 0.06),
         ("quote", 0.04))  # fmt: skip
LISTEN = {"keywords": ["acme air", "acmeair", "#acmeair", "acmeair.com"], "brand_mentions": True}
BRANDS = ["acmeair"]
_HANDLE = re.compile(r"@\w+")
_BRAND_WORDS = re.compile(r"acme\s*air", re.IGNORECASE)


def texts() -> tuple[list[str], str]:
    out: list[str] = []
    for path, column in TEXT_SOURCES:
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                out += [_HANDLE.sub("@someone", row[column]) for row in csv.DictReader(fh)]
    if out:
        return [t for t in out if not _BRAND_WORDS.search(t)], "real tweets (handles replaced)"
    from sense_respond.scenario import generate

    feed = generate(seed=3, background=400).events
    return [e["text"] for e in feed if "text" in e], "scenario texts"


def firehose(n: int, relevant_share: float, pool: list[str], seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    accounts = [f"did:plc:{rng.getrandbits(64):016x}" for _ in range(50_000)]
    kinds, weights = zip(*KINDS, strict=True)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    lines = []
    for i in range(n):
        kind = rng.choices(kinds, weights)[0]
        event: dict = {
            "id": f"at://x/{i}",
            "platform": "bluesky",
            "kind": kind,
            "created_at": (start + timedelta(milliseconds=20 * i)).isoformat(),
            "author": {"id": rng.choice(accounts)},
        }
        if kind != "post":
            event["target"] = {"id": rng.choice(accounts)}
        if kind in ("post", "reply", "quote"):
            text = rng.choice(pool)
            if rng.random() < relevant_share:
                text = rng.choice(("@acmeair ", "Acme Air: ")) + text
            event["text"] = text
        lines.append(orjson.dumps(event))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--relevant", type=float, default=0.01, help="share of posts about the brand")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = ap.parse_args()
    pool, source = texts()
    lines = firehose(args.events, args.relevant, pool)
    posts = sum(b'"text"' in line for line in lines)
    url, embedded = resolve_redis_url(args.redis_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "firehose.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            today = run_pipeline(path, url)
            listening = run_pipeline(path, url, brand_accounts=BRANDS, listen=LISTEN)
            today_again = run_pipeline(path, url)  # before and after: the machine is noisy
    finally:
        if embedded is not None:
            embedded.stop()
    best_today = min(today.seconds, today_again.seconds)
    print(f"feed: {len(lines):,} events, {posts:,} with text ({source}), "
          f"{args.relevant:.0%} of those about the brand")  # fmt: skip
    rows = [
        ("today (no listening, every post scored)", best_today, today.customer_views),
        ("listening (only relevant posts scored)", listening.seconds, listening.customer_views),
    ]
    for name, seconds, views in rows:
        print(f"{name:<42} {seconds:6.2f} s  {len(lines) / seconds:>8,.0f} events/s  "
              f"customer views {views:,}")  # fmt: skip
    print(f"{'speed-up listening/today':<42} {best_today / listening.seconds:.2f}x "
          f"(today's runs: {today.seconds:.2f} s, {today_again.seconds:.2f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
