"""Real mixed replay: airline complaints + unrelated vaccine chatter, before and after listening.

    .venv/bin/python benchmarks/listen_mixed_replay.py [--redis-url URL] [--airline-followers MODE]

Input (../shared/data, skipped when absent):
  * the 14,485 airline tweets (Tweets.csv, de-duplicated on tweet_id), authored by their `name`;
  * the 5,656 vaccine tweets (vaccination_tweets.csv) with their authors' real follower counts,
    their timestamps mapped linearly onto the airline tweets' week so the two interleave.
@mentions in the texts become structured mentions (as a Twitter feed gives them), so both sets
also build the interaction graph. The airline data set has no follower counts: by default each
airline author gets one drawn (deterministically, by name) from the vaccine authors' real
follower distribution (`--airline-followers sampled`); `none` leaves them without.

Two runs of the whole pipeline, one process, into Redis, on the same feed:
  before: no listening rule (every post counts, as before issue 6);
  after:  the six airlines as brand accounts and their names as keywords (`LISTEN`).
Each alert is counted as "about an airline" when its customer authored airline tweets, and "not"
when it authored vaccine tweets.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_run import run_pipeline  # noqa: E402
from connectors.embedded_redis import resolve_redis_url  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
AIRLINE = SHARED / "airline_sentiment" / "Tweets.csv"
VACCINE = SHARED / "vaccination_tweets_followers" / "vaccination_tweets.csv"
BRANDS = ["united", "AmericanAir", "SouthwestAir", "JetBlue", "USAirways", "VirginAmerica"]
LISTEN = {
    "keywords": [
        "united airlines", "#unitedairlines", "american airlines", "#americanairlines",
        "southwest airlines", "#southwestairlines", "jetblue", "#jetblue", "us airways",
        "usairways", "virgin america", "virginamerica",
    ],
    "brand_mentions": True,
}  # fmt: skip
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")


def mentions(text: str) -> list[dict[str, str]]:
    seen = dict.fromkeys(m.lower() for m in _MENTION.findall(text))
    return [{"id": h, "handle": h} for h in seen]


def build_feed(airline_followers: str) -> tuple[list[bytes], set[str], set[str]]:
    """The mixed feed (event-time order) and the customer ids of each data set's authors."""
    with AIRLINE.open(encoding="utf-8") as fh:
        airline_rows = list({r["tweet_id"]: r for r in csv.DictReader(fh)}.values())
    with VACCINE.open(encoding="utf-8") as fh:
        vaccine_rows = list(csv.DictReader(fh))
    a_times = [datetime.strptime(r["tweet_created"], "%Y-%m-%d %H:%M:%S %z") for r in airline_rows]
    v_times = [
        datetime.strptime(r["date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) for r in vaccine_rows
    ]
    a0, a1, v0, v1 = min(a_times), max(a_times), min(v_times), max(v_times)
    scale = (a1 - a0) / (v1 - v0)
    followers_pool = sorted(int(r["user_followers"]) for r in vaccine_rows)
    events: list[tuple[datetime, dict]] = []
    airline_ids, vaccine_ids = set(), set()
    for row, ts in zip(airline_rows, a_times, strict=True):
        author: dict = {"id": row["name"].lower(), "handle": row["name"]}
        if airline_followers == "sampled":
            pick = zlib.crc32(row["name"].encode()) % len(followers_pool)
            author["followers"] = followers_pool[pick]
        airline_ids.add(f"twitter:{author['id']}")
        events.append(
            (ts, {"id": row["tweet_id"], "kind": "post", "author": author, "text": row["text"]})
        )
    for row, ts in zip(vaccine_rows, v_times, strict=True):
        name = row["user_name"] or "unknown"
        author = {
            "id": "vax-" + name.lower(),
            "handle": None,
            "followers": int(row["user_followers"]),
        }
        vaccine_ids.add(f"twitter:{author['id']}")
        at = a0 + (ts - v0) * scale
        events.append(
            (at, {"id": row["id"], "kind": "post", "author": author, "text": row["text"]})
        )
    events.sort(key=lambda e: e[0])
    lines = []
    for ts, event in events:
        event.update(platform="twitter", created_at=ts.astimezone(UTC).isoformat())
        event["mentions"] = mentions(event["text"])
        lines.append(orjson.dumps(event))
    return lines, airline_ids, vaccine_ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    ap.add_argument("--airline-followers", choices=("sampled", "none"), default="sampled")
    ap.add_argument("--show", type=int, default=3, help="alerts to print per run")
    args = ap.parse_args()
    if not (AIRLINE.exists() and VACCINE.exists()):
        print("../shared/data is absent: nothing to replay", file=sys.stderr)
        return 1
    lines, airline_ids, vaccine_ids = build_feed(args.airline_followers)
    url, embedded = resolve_redis_url(args.redis_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "mixed.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            runs = {
                "before (no listening rule)": run_pipeline(path, url),
                "after (brands + keywords)": run_pipeline(
                    path, url, brand_accounts=BRANDS, listen=LISTEN
                ),
            }
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"feed: {len(lines):,} events ({len(lines) - 5656:,} airline, 5,656 vaccine tweets); "
          f"airline authors' followers: {args.airline_followers}")  # fmt: skip
    print(f"{'run':<28} {'alerts':>6} {'about an airline':>17} {'not':>5} {'events/s':>9}")
    for name, result in runs.items():
        alerts = result.alerts
        about = sum(a["subject"] in airline_ids for a in alerts)
        other = sum(a["subject"] in vaccine_ids for a in alerts)
        rate = len(lines) / result.seconds
        print(f"{name:<28} {len(alerts):>6} {about:>17} {other:>5} {rate:>9,.0f}")
    for name, result in runs.items():
        print(f"\n{name}: first alerts")
        for a in result.alerts[: args.show]:
            d = a["data"]
            worst = d["evidence"][0]
            matched = worst.get("matched", [])
            print(f"  {a['subject']} followers {d['influence']['followers']:,} mean "
                  f"{d['sentiment']['mean']:+.2f}: {worst['text'][:90]!r} {matched}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
