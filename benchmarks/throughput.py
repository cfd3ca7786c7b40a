"""Whole-run throughput against a bare VADER loop over the same texts, measured in one run.

    .venv/bin/python benchmarks/throughput.py [--feed FILE.jsonl] [--repeat N] [--redis-url URL]

The feed defaults to the real airline complaint tweets (../shared/data/airline_sentiment, turned
into SocialEvent v1 lines, repeated with fresh ids), else the bundled demo feed. The pipeline runs
in this process, one worker, into Redis ($REDIS_URL, else an embedded server), exactly as
`sense-respond run` would. The bare loop is timed before and after the pipeline and the better of
the two is used, so the ratio is conservative on a noisy machine.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bytewax.testing import run_main  # noqa: E402

from config.settings import Settings  # noqa: E402
from connectors.embedded_redis import resolve_redis_url  # noqa: E402
from connectors.redis_client import make_client  # noqa: E402
from flows.pipeline import build_flow  # noqa: E402
from operators.events import SocialEvent, parse_event  # noqa: E402
from operators.scoring import analyzer  # noqa: E402

AIRLINE = ROOT.parent / "shared" / "data" / "airline_sentiment" / "Tweets.csv"
DEMO = ROOT / "sense_respond" / "data" / "demo_feed.jsonl"
AIRLINE_BRANDS = ["united", "AmericanAir", "SouthwestAir", "JetBlue", "USAirways", "VirginAmerica"]


def airline_events(repeat: int) -> list[bytes]:
    """The airline tweets as SocialEvent v1 lines; each repetition shifted by a week."""
    rows = list(csv.DictReader(AIRLINE.open(encoding="utf-8")))
    lines = []
    for rep in range(repeat):
        shift = timedelta(days=7 * rep)
        for row in rows:
            created = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z")
            lines.append(
                orjson.dumps(
                    {
                        "id": f"{row['tweet_id']}-{rep}",
                        "platform": "twitter",
                        "kind": "post",
                        "created_at": (created + shift).astimezone(UTC).isoformat(),
                        "author": {"id": row["name"], "handle": row["name"]},
                        "text": row["text"],
                    }
                )
            )
    lines.sort(key=lambda b: orjson.loads(b)["created_at"])
    return lines


def texts_of(lines: list[bytes]) -> list[str]:
    now = datetime.now(UTC)
    out = []
    for line in lines:
        ev = parse_event(line, now)
        if isinstance(ev, SocialEvent) and ev.text is not None:
            out.append(ev.text)
    return out


def bare_vader(texts: list[str]) -> float:
    polarity = analyzer().polarity_scores
    gc.collect()
    start = time.perf_counter()
    for text in texts:
        polarity(text)
    return time.perf_counter() - start


def pipeline(path: Path, url: str, brands: list[str]) -> tuple[float, int]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    settings = Settings(input=f"jsonl:{path}", brand_accounts=brands).with_redis_url(url)
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"prefix": prefix})}
    )
    flow = build_flow(settings)
    gc.collect()
    start = time.perf_counter()
    run_main(flow)
    elapsed = time.perf_counter() - start
    client = make_client(url, settings.redis)
    alerts = client.xlen(f"{prefix}alerts")
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.unlink(*keys[i : i + 500])
    client.close()
    return elapsed, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feed", type=Path, help="a SocialEvent JSONL file")
    ap.add_argument("--repeat", type=int, default=4, help="airline tweets repetitions")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.feed:
            path, brands, name = args.feed, [], args.feed.name
            lines = path.read_bytes().splitlines()
        elif AIRLINE.exists():
            lines = airline_events(args.repeat)
            path = Path(tmp) / "airline.jsonl"
            path.write_bytes(b"\n".join(lines) + b"\n")
            brands, name = AIRLINE_BRANDS, f"airline tweets x{args.repeat}"
        else:
            path, name = DEMO, "bundled demo feed"
            truth = orjson.loads((DEMO.parent / "demo_truth.json").read_bytes())
            brands, lines = truth["brand_accounts"], DEMO.read_bytes().splitlines()
        texts = texts_of(lines)
        url, embedded = resolve_redis_url(args.redis_url)
        try:
            analyzer()
            bare_before = bare_vader(texts)
            run_seconds, alerts = pipeline(path, url, brands)
            bare_after = bare_vader(texts)
        finally:
            if embedded is not None:
                embedded.stop()

    bare = min(bare_before, bare_after)
    rows = [
        ("feed", name),
        ("events", f"{len(lines):,}"),
        ("texts scored", f"{len(texts):,}"),
        ("bare VADER loop", f"{bare:.2f} s  ({len(texts) / bare:,.0f} texts/s)"),
        ("bare VADER (before, after)", f"{bare_before:.2f} s, {bare_after:.2f} s"),
        (
            "whole run (1 worker)",
            f"{run_seconds:.2f} s  ({len(lines) / run_seconds:,.0f} events/s)",
        ),
        ("alerts delivered", f"{alerts}"),
        ("throughput ratio run/bare", f"{bare / run_seconds:.2f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
