"""Memory and delivery through a Redis outage, against an uninterrupted run, measured in one run.

    .venv/bin/python benchmarks/redis_outage.py [--copies N] [--outage S]

Builds a feed of N scenario copies (default 8: ~60k events), then runs `sense-respond run` on it
twice against a private redis-server: once without trouble, once with the server stopped for S
seconds (default 30) right after the first alert and started again on the same port. Prints, for
both: exit status, alerts in the stream (distinct) and on the channel, peak RSS (the kernel's, via
wait4), and for the outage run the input read and RSS growth while Redis was away; then the ratio
of the peak RSS values. A flow that pauses reads nothing while Redis is away and peaks no higher.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fault-test harness: private server, run, channel

from private_redis import Channel, PrivateRedis, Run, scenario_feed  # noqa: E402


def measure(feed: Path, config: Path, directory: Path, outage: float | None) -> dict[str, object]:
    server = PrivateRedis(directory).start()
    channel = Channel(server, "sr:alerts")
    channel.subscribe()
    cmd = [
        sys.executable, "-m", "sense_respond", "run", "--config", str(config),
        "--input", f"jsonl:{feed}", "--redis-url", server.url, "--prefix", "sr:",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    started = time.monotonic()
    run = Run(cmd, env)
    row: dict[str, object] = {}
    try:
        if outage is not None:
            client = server.client()
            run.wait_for(lambda: client.xlen("sr:alerts") > 0, "the first alert")
            stopped = time.monotonic()
            server.stop()
            run.wait_for_line("Redis unavailable (")
            rss, position = run.rss_kb(), run.position(feed)
            time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
            row["read while paused (B)"] = run.position(feed) - position
            row["unread at the stop (B)"] = feed.stat().st_size - position
            row["RSS growth while paused (kB)"] = run.rss_kb() - rss
            server.start(before_tcp=channel.subscribe)
        code, peak_kb = run.finish()
        ids = [f[b"id"].decode() for _, f in server.client().xrange("sr:alerts")]
        published = channel.drain()
    finally:
        server.stop()
    row = {
        "exit": code,
        "wall (s)": round(time.monotonic() - started, 1),
        "alerts in stream": len(ids),
        "distinct": len(set(ids)),
        "published": len(published),
        "published twice": sum(n > 1 for n in Counter(published).values()),
        "peak RSS (MiB)": round(peak_kb / 1024, 1),
        **row,
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--outage", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sr-outage-") as tmp:
        directory = Path(tmp)
        feed, config = scenario_feed(directory, args.copies)
        lines = sum(1 for _ in feed.open("rb"))
        print(f"feed: {lines:,} events, {feed.stat().st_size / 1e6:.1f} MB")
        clean = measure(feed, config, directory / "clean", None)
        broken = measure(feed, config, directory / "outage", args.outage)
    width = max(len(k) for k in broken)
    print(f"{'':{width}}  {'no outage':>12}  {f'{args.outage:g} s outage':>12}")
    for key in broken:
        print(f"{key:{width}}  {clean.get(key, ''):>12}  {broken[key]:>12}")
    ratio = float(broken["peak RSS (MiB)"]) / float(clean["peak RSS (MiB)"])  # type: ignore[arg-type]
    print(f"peak RSS, outage / no outage: {ratio:.3f}")


if __name__ == "__main__":
    main()
