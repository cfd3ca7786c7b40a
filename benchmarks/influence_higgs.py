"""The influence stage on the SNAP Higgs activity stream, alone and through `sense-respond run`.

Data: ../shared/data/higgs_twitter/higgs-activity_time.txt.gz ("userA userB unix_ts type",
time-sorted; RT/MT/RE = A retweeted / mentioned / replied to B, so the edge is A -> B; see
PROVENANCE.txt there). RT -> repost, RE -> reply (text "@B"), MT -> a post mentioning B (text
"@B").

Reports, all measured in this one run:

1. the graph stage alone (`Enricher` fed compact `Touch` records): events/s, rankings, memory per
   live edge, pickled state, and the final ranking against `networkx.pagerank` on the same
   decayed graph (plus its decayed sink node): max difference and Spearman on the top 1,000;
   then with recovery's journal: a snapshot's cost per epoch and a resume's;
2. the whole `sense-respond run` on the stream as JSONL, into Redis, against a loop that only
   parses the same lines with orjson: wall time, the ratio loop / pipeline, peak RSS; and the
   CPU time of the flow's stages run in this process on the same lines (`stage_split`), each
   against the 0.1 target's budget;
3. the same run with `--recovery-dir` (snapshots every 2 s): the recovery overhead (runs without
   and with recovery alternate, `--repeat` pairs; the ratio of the best of each), and what
   recovery writes: the graph stage's files (journal segments and bases, watched while the run
   goes) and the snapshot Bytewax pickles for it per epoch (a manifest, read from its tables);
   then the stream through a cluster of `--processes` (default 2) over input split by author:
   the best of `--repeat` runs against the best run of one process;
4. with `--scale 10`: a synthetic 10x stream (10 disjoint copies of the accounts, interleaved in
   time: 3M accounts, 5.6M events) through `sense-respond run`: time and peak RSS; and the
   graph stage's CPU per event alone on it, against the 1x stream.

    .venv/bin/python benchmarks/influence_higgs.py [--limit N] [--scale 10] [--skip-graph]
        [--repeat 2] [--graph-only] [--processes 2] [--no-listen]

This file parses the flags, runs the measurements in that order and prints the table; the
measurements are in `higgs_data.py` (the stream), `higgs_graph_alone.py` (1 and the CPU of 4)
and `higgs_runs.py` (2, 3 and the runs of 4).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.higgs_data import ACTIVITY, read_activity, write_jsonl  # noqa: E402
from benchmarks.higgs_graph_alone import GraphCpu, graph_alone, graph_cpu_per_event  # noqa: E402
from benchmarks.higgs_runs import (  # noqa: E402
    ChildRun,
    RecoveryRuns,
    child_run,
    cluster_runs,
    graph_process,
    orjson_loop,
    recovery_runs,
    stage_split,
    validation_loop,
)
from benchmarks.throughput import ClusterRun  # noqa: E402

BRANDS = ["AcmeAir"]
"""The brand the runs listen for: nothing in the Higgs chatter is about it."""

Rows = list[tuple[str, str]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines")
    parser.add_argument("--data", type=Path, default=ACTIVITY, help="higgs-activity_time.txt.gz")
    parser.add_argument("--scale", type=int, default=1, help="also run a synthetic N x stream")
    parser.add_argument("--skip-graph", action="store_true", help="only the whole runs")
    parser.add_argument(
        "--repeat", type=int, default=2, help="pairs of runs without / with recovery"
    )
    parser.add_argument("--graph-only", action="store_true", help="only the graph stage alone")
    parser.add_argument("--no-listen", action="store_true", help="score every post")
    parser.add_argument(
        "--processes", type=int, default=2, help="also time a cluster of N processes (0: skip)"
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    return parser.parse_args()


def main() -> int:
    """Run the benchmark and print the table."""
    args = parse_args()
    if not args.data.is_file():
        print(f"Higgs data absent ({args.data}); nothing to benchmark.")
        return 0
    from connectors.embedded_redis import resolve_redis_url

    url, _embedded = resolve_redis_url(args.redis_url)
    rows = read_activity(args.data, args.limit)
    table: Rows = [("interactions", f"{len(rows):,}")]
    if not args.skip_graph:
        table += graph_alone(rows)
    if args.graph_only:
        print_table(table)
        return 0
    # A deployment listens for its brand: the Higgs chatter is not about it, so it feeds the
    # graph but is not scored (--no-listen: every post scored, as without listening rules).
    brands = [] if args.no_listen else BRANDS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "higgs.jsonl"
        lines = write_jsonl(rows, path, 1)
        loop = orjson_loop(path)
        run = child_run(path, url, brands)
        loop = min(loop, orjson_loop(path))  # the better of two: the ratio stays conservative
        floor = min(validation_loop(path), validation_loop(path))
        table += whole_run_rows(run, lines, loop, floor, stage_split(path, brands))
        recovery = recovery_runs(path, url, brands, run.seconds, args.repeat)
        table += recovery_rows(recovery)
        if args.processes > 1:
            runs = cluster_runs(path, url, brands, args.processes, args.repeat)
            table += cluster_rows(runs, args.processes, lines, loop, min(recovery.plain))
        if args.scale > 1:
            path.unlink()
            big = Path(tmp) / "higgs-x.jsonl"
            n_big = write_jsonl(rows, big, args.scale)
            run_big = child_run(big, url, brands)
            one, many = graph_cpu_per_event(rows, 1), graph_cpu_per_event(rows, args.scale)
            table += scale_rows(args.scale, n_big, run_big, one, many)
    print_table(table)
    return 0


def whole_run_rows(
    run: ChildRun, lines: int, loop: float, floor: float, spent: dict[str, float]
) -> Rows:
    """The one-process run against the orjson loop (`loop` s) and the validation loop (`floor`
    s), with the CPU of its stages (`spent`)."""
    return [
        ("orjson-only loop", f"{loop:.2f} s"),
        (
            "orjson + pydantic validation loop",
            f"{floor:.2f} s: ratio loop / it {loop / floor:.3f} (validation alone's bound)",
        ),
        ("sense-respond run", f"{run.seconds:.1f} s, {lines / run.seconds:,.0f} events/s"),
        ("time ratio loop / pipeline", f"{loop / run.seconds:.3f}  (target >= 0.1)"),
        *stage_rows(spent, lines, loop, run.seconds),
        ("peak RSS", f"{run.peak_rss_mb:.0f} MB  (target <= 600)"),
        ("run summary", run.summary.removeprefix("summary: ")),
    ]


def stage_rows(spent: dict[str, float], lines: int, loop: float, seconds: float) -> Rows:
    """The stage split as rows: CPU per event, and each stage's share of the 0.1 target's
    budget (ten times the orjson loop for the whole run)."""
    budget = 10 * loop
    rows = [
        (
            f"  stage: {name}",
            f"{cpu:.2f} s CPU, {cpu / lines * 1e6:.1f} us/event, {cpu / budget:.0%} of the"
            " 0.1 target's whole budget",
        )
        for name, cpu in spent.items()
    ]
    rest = seconds - sum(spent.values())
    rows.append(
        ("  rest of the run", f"{rest:.2f} s (start-up, Bytewax steps, customer stage, Redis)")
    )
    return rows


def recovery_rows(recovery: RecoveryRuns) -> Rows:
    """The overhead of recovery (best against best, and pair by pair) and what it wrote."""
    plain, recovered = recovery.plain, recovery.recovered
    files = recovery.last.graph_files
    assert files is not None
    pairs = ", ".join(f"{r / p - 1:+.0%}" for p, r in zip(plain, recovered, strict=True))
    segments, segment_bytes = files.count("seg")
    bases, base_bytes = files.count("base")
    snapshots = max(segments + bases, 1)
    return [
        (
            "run with --recovery-dir (2 s)",
            f"{min(recovered):.1f} s (best of {len(recovered)}; without: best"
            f" {min(plain):.1f} s), peak RSS {recovery.last.peak_rss_mb:.0f} MB",
        ),
        (
            "recovery overhead",
            f"{min(recovered) / min(plain) - 1:+.1%}  (target <= 25%; pairs: {pairs})",
        ),
        (
            "graph snapshot files written",
            f"{segments} segments {segment_bytes / 1e6:.1f} MB + {bases} bases"
            f" {base_bytes / 1e6:.1f} MB: {(segment_bytes + base_bytes) / snapshots / 1e6:.2f}"
            f" MB per snapshot (segments alone {segment_bytes / max(segments, 1) / 1e3:.0f}"
            " kB)",
        ),
        (
            "graph snapshot pickled per epoch",
            f"{max(recovery.snapshot_sizes, default=0):,} B (manifest; the whole state, largest"
            f" base: {max(files.seen.values(), default=0) / 1e6:.1f} MB)",
        ),
    ]


def cluster_rows(
    runs: list[ClusterRun], processes: int, lines: int, loop: float, one_process: float
) -> Rows:
    """The best cluster run against the best one-process run (`one_process` s), and the CPU of
    its processes: the graph's apart."""
    best = min(runs)
    each = ", ".join(f"{r:.1f}" for r in runs)
    host = graph_process(processes)
    others = [cpu for i, cpu in enumerate(best.cpu) if i != host]
    return [
        (
            f"cluster of {processes} processes",
            f"{best:.1f} s incl. start-up (best of {len(runs)}: {each}),"
            f" {lines / best:,.0f} events/s: {one_process / best:.2f}x one process"
            f" (best {one_process:.1f} s), time ratio {loop / best:.3f}",
        ),
        (
            "  CPU of its processes",
            f"the graph's (reads no input) {best.cpu[host]:.2f} s, the others"
            f" {', '.join(f'{cpu:.2f}' for cpu in others)} s (in the best run)",
        ),
    ]


def scale_rows(scale: int, events: int, run: ChildRun, one: GraphCpu, many: GraphCpu) -> Rows:
    """The synthetic stream's run, and the graph stage's CPU an event on it (`many`) against
    the 1x stream's (`one`): in all, in rankings, and the rest."""
    rest_one = one.per_event_us - one.rankings_per_event_us
    rest_many = many.per_event_us - many.rankings_per_event_us
    return [
        (f"synthetic {scale}x", f"{events:,} events"),
        (
            f"{scale}x sense-respond run",
            f"{run.seconds:.0f} s, {events / run.seconds:,.0f} events/s",
        ),
        (f"{scale}x peak RSS", f"{run.peak_rss_mb:.0f} MB  (target <= 3000)"),
        (f"{scale}x summary", run.summary.removeprefix("summary: ")),
        (
            f"graph stage alone, 1x / {scale}x",
            f"{one.per_event_us:.2f} / {many.per_event_us:.2f} us CPU an event"
            f" ({many.per_event_us / one.per_event_us - 1:+.1%})",
        ),
        (
            "  of which rankings",
            f"{one.rankings_per_event_us:.2f} / {many.rankings_per_event_us:.2f} us an event"
            f" ({many.rankings_per_event_us / one.rankings_per_event_us - 1:+.1%};"
            f" {one.rankings} / {many.rankings} rankings,"
            f" {one.iterations} / {many.iterations} iterations)",
        ),
        (
            "  the rest (per event)",
            f"{rest_one:.2f} / {rest_many:.2f} us an event ({rest_many / rest_one - 1:+.1%})",
        ),
    ]


def print_table(table: Rows) -> None:
    """The rows, aligned."""
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
