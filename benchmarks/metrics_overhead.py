"""What the metrics cost on the hot path: the parse step with and without them, in one run.

    .venv/bin/python benchmarks/metrics_overhead.py [--batches N]

The parse step stamps every event with its read time (for `event_to_alert_seconds`) and counts
events and dead letters per batch. This times the bare parser loop (`parse_event` over a batch)
against the instrumented step (`flows.stateless_steps.parse_batch`) on the bundled demo feed in
500-line batches, interleaved, best of several rounds, and the metrics' own work alone (stamp +
count), which is what a loaded machine measures most steadily. It also shows the pickled size of an
event (events cross workers pickled; the stamp adds one int).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.stateless_steps import parse_batch  # noqa: E402
from operators.events import DeadLetter, SocialEvent, parse_event  # noqa: E402
from sense_respond.metrics import count_read  # noqa: E402

DEMO = ROOT / "sense_respond" / "data" / "demo_feed.jsonl"
BATCH = 500


def _bare(batches: list[list[bytes]]) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    for batch in batches:
        out = []
        for line in batch:
            parsed = parse_event(line, now, "jsonl:bench")
            if parsed is not None:
                out.append(parsed)
    return time.perf_counter() - start


def _instrumented(batches: list[list[bytes]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        parse_batch(batch, "jsonl:bench")
    return time.perf_counter() - start


def _metrics_only(parsed: list[list[object]]) -> float:
    """Just what the metrics add to the step: the read stamp and the per-batch counting."""
    start = time.perf_counter()
    for batch in parsed:
        read_ns = time.time_ns()
        for item in batch:
            if type(item) is SocialEvent:
                item.stamp_read(read_ns)
        dead = [item for item in batch if isinstance(item, DeadLetter)]
        count_read(len(batch) - len(dead), dead, "jsonl:bench")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    lines = DEMO.read_bytes().splitlines(keepends=True)
    batches = [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]
    now = datetime.now(UTC)
    parsed = [[e for e in (parse_event(x, now) for x in b) if e is not None] for b in batches]
    events = len(lines)
    gc.disable()
    bare, instrumented, extra = [], [], []
    for _ in range(args.rounds):  # interleaved, so load on the machine hits all three alike
        bare.append(_bare(batches))
        instrumented.append(_instrumented(batches))
        extra.append(_metrics_only(parsed))
    gc.enable()
    b, i, m = min(bare), min(instrumented), min(extra)
    print(f"events per round               {events:,} (best of {args.rounds} rounds)")
    print(f"bare parse_event loop          {b / events * 1e6:7.2f} µs/event")
    print(f"parse step (parse_batch)       {i / events * 1e6:7.2f} µs/event")
    print(f"metrics alone (stamp + count)  {m / events * 1e6:7.2f} µs/event")
    print(f"metrics / bare parse           {m / b:7.3f}")

    sample = [e for batch in parsed for e in batch if isinstance(e, SocialEvent)][:2000]
    plain = [pickle.dumps(e.stamp_read(0)) for e in sample]
    stamped = [pickle.dumps(e.stamp_read(time.time_ns())) for e in sample]
    print(
        f"pickled event size             {sum(map(len, plain)) / len(plain):7.1f} B"
        f" (stamped: {sum(map(len, stamped)) / len(stamped):.1f} B)"
    )


if __name__ == "__main__":
    main()
