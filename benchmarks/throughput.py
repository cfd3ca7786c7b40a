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
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_run import (  # noqa: E402
    child_env,
    fresh_prefix,
    run_command,
    run_pipeline,
    write_config,
)
from connectors.embedded_redis import resolve_redis_url  # noqa: E402
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
    result = run_pipeline(path, url, brand_accounts=brands)
    return result.seconds, len(result.alerts)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


class ClusterRun(float):
    """Seconds a cluster run took (start-up included), with each process's CPU seconds (user
    and system, from `wait4`) in process order."""

    cpu: tuple[float, ...]

    def __new__(cls, seconds: float, cpu: tuple[float, ...]) -> ClusterRun:
        run = super().__new__(cls, seconds)
        run.cpu = cpu
        return run


def cluster(
    lines: list[bytes],
    tmp: Path,
    url: str,
    brands: list[str],
    processes: int,
    prefix: str | None = None,
) -> ClusterRun:
    """`sense-respond run` as a cluster of processes over input partitioned by author: seconds,
    start-up included, and each process's CPU. Its keys are under `prefix` (default: a new one,
    left in Redis)."""
    parts = tmp / "parts"
    parts.mkdir()
    files = [(parts / f"part{i}.jsonl").open("wb") for i in range(processes)]
    for line in lines:
        author = orjson.loads(line)["author"]["id"]
        files[zlib.crc32(author.encode()) % processes].write(line + b"\n")
    for fh in files:
        fh.close()
    config = write_config(tmp / "bench.toml", brands)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    prefix = prefix or fresh_prefix()
    cmd = [*run_command(config, f"jsonl:{parts}", url, prefix), "-a", addresses]
    env = child_env()
    env["SR_FLOW__SHARED_FILES"] = "true"  # one machine: the graph's process reads no file
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*cmd, "-i", str(i)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for i in range(processes)
    ]
    codes, cpu = [], []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
        codes.append(p.returncode)
        cpu.append(usage.ru_utime + usage.ru_stime)
    elapsed = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"cluster run failed: exit codes {codes}")
    return ClusterRun(elapsed, tuple(cpu))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feed", type=Path, help="a SocialEvent JSONL file")
    ap.add_argument("--repeat", type=int, default=4, help="airline tweets repetitions")
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    ap.add_argument(
        "--processes", type=int, default=2, help="also time a cluster of N processes (0: skip)"
    )
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
            cluster_seconds = (
                cluster(lines, Path(tmp), url, brands, args.processes) if args.processes else None
            )
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
    if cluster_seconds is not None:
        rate = len(lines) / cluster_seconds
        rows += [
            (
                f"cluster of {args.processes} processes",
                f"{cluster_seconds:.2f} s  ({rate:,.0f} events/s, incl. start-up)",
            ),
            ("throughput ratio cluster/bare", f"{bare / cluster_seconds:.2f}x"),
        ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
