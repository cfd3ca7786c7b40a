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
        [--repeat 2] [--graph-only] [--processes 2]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import networkx as nx
import numpy as np
import orjson
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from connectors.graph_store import (  # noqa: E402
    GraphJournal,
    GraphManifest,
    GraphStore,
    JournalPolicy,
)
from connectors.placement import ClusterPlace  # noqa: E402
from flows.stateful_stages import InfluenceLogic  # noqa: E402
from flows.stateless_steps import GRAPH_KEY  # noqa: E402
from operators.enrich import Enricher, EnrichPolicy, GraphBatch  # noqa: E402
from operators.influence import InfluenceGraph, Touch  # noqa: E402
from operators.watermark import ONE_WORKER  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ACTIVITY = DATA / "higgs_twitter" / "higgs-activity_time.txt.gz"
TOP = 1_000
NO_LISTEN = "--no-listen" in sys.argv
SINK = "<decayed>"
KINDS = {"RT": "repost", "RE": "reply", "MT": "post"}
BRANDS = ["AcmeAir"]
"""The brand the runs listen for: nothing in the Higgs chatter is about it."""
EPOCH_EVENTS = 20_000
"""Events per epoch in the journal measurement (a 2 s epoch at 10k events/s)."""


def read_activity(path: Path, limit: int | None) -> list[tuple[str, str, int, str]]:
    """The activity lines as (userA, userB, unix_ts, type)."""
    rows = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            a, b, ts, kind = line.split()
            rows.append((a, b, int(ts), kind))
            if limit is not None and len(rows) >= limit:
                break
    return rows


def jsonl_line(n: int, row: tuple[str, str, int, str], copy: int = 0) -> bytes:
    """One activity row as a SocialEvent v1 line (copy k of the accounts for --scale)."""
    a, b, ts, code = row
    if copy:
        a, b = f"{a}x{copy}", f"{b}x{copy}"
    obj: dict[str, object] = {
        "id": f"{n}x{copy}" if copy else str(n),
        "platform": "twitter",
        "kind": KINDS[code],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        "author": {"id": a},
    }
    if code == "MT":
        obj["text"] = f"@{b}"
        obj["mentions"] = [{"id": b}]
    else:
        obj["target"] = {"id": b}
        if code == "RE":
            obj["text"] = f"@{b}"
    return orjson.dumps(obj)


def write_jsonl(rows: list[tuple[str, str, int, str]], path: Path, scale: int) -> int:
    """The stream (scale copies merged by time) as JSONL; returns the number of lines."""
    count = 0
    with path.open("wb") as out:
        for n, row in enumerate(rows):  # time-sorted: the copies of each row side by side
            for k in range(scale):
                out.write(jsonl_line(n, row, k) + b"\n")
                count += 1
    return count


def orjson_loop(path: Path) -> float:
    """Seconds a loop takes that only reads and parses the lines with orjson."""
    loads = orjson.loads
    start = time.perf_counter()
    with path.open("rb") as lines:
        for line in lines:
            loads(line)
    return time.perf_counter() - start


def validation_loop(path: Path) -> float:
    """Seconds a loop takes that parses each line with orjson and validates it with pydantic
    (`SocialEvent`), keeping a batch's events alive as a flow does: the floor of any pipeline
    that validates every input line once, as ours must."""
    from operators.events import SocialEvent

    loads = orjson.loads
    validate = SocialEvent.__pydantic_validator__.validate_python
    start = time.perf_counter()
    batch: list[object] = []
    with path.open("rb") as lines:
        for line in lines:
            batch.append(validate(loads(line)))
            if len(batch) == 500:
                batch = []
    return time.perf_counter() - start


@contextmanager
def flow_gc() -> Iterator[None]:
    """The flow's garbage-collector settings (`tune_garbage_collector`) inside the block, this
    process's own after it: the collector's cost is part of what a stage costs in the flow."""
    from flows.pipeline import tune_garbage_collector

    thresholds = gc.get_threshold()
    tune_garbage_collector()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def stage_split(path: Path, brands: list[str]) -> dict[str, float]:
    """CPU seconds (`time.process_time`) of the flow's stages, run in this process on the
    lines in the flow's 500-line batches, without Bytewax: the parse step (`parse_batch`), the
    scoring step (`score_batch`: listening, compact records; no post here is about the brand,
    so nothing reaches VADER) and the graph stage (`InfluenceLogic.on_batch`). What the whole
    run takes beyond their sum is start-up, Bytewax's steps, the customer stage and Redis."""
    from flows.pipeline import listening
    from flows.stateless_steps import parse_batch, score_batch

    settings = Settings(brand_accounts=brands)
    listener, scorer = listening(settings)
    logic = InfluenceLogic(EnrichPolicy.from_settings(settings), None)
    with path.open("rb") as lines:
        raw = lines.read().splitlines()
    spent = dict.fromkeys(("parse", "score", "graph"), 0.0)
    clock = time.process_time
    with flow_gc():
        for start in range(0, len(raw), 500):
            t0 = clock()
            parsed = parse_batch(raw[start : start + 500])
            t1 = clock()
            scored = score_batch([e for b in parsed for e in b.valid], listener, scorer)
            t2 = clock()
            logic.on_batch([value for key, value in scored if key == GRAPH_KEY])
            t3 = clock()
            spent["parse"] += t1 - t0
            spent["score"] += t2 - t1
            spent["graph"] += t3 - t2
        del raw, logic
    return spent


def run_pipeline(
    path: Path, url: str, extra: list[str], watch: Path | None = None
) -> tuple[float, float, str]:
    """`sense-respond run` on the file: (seconds, peak RSS MB of the process, summary line).

    `watch`: a recovery directory whose graph files are recorded as they appear
    (`GraphFiles.seen`)."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    config = path.with_suffix(".toml")
    # A deployment listens for its brand: the Higgs chatter is not about it, so it feeds the
    # graph but is not scored (--no-listen: every post scored, as without listening rules).
    brands = [] if NO_LISTEN else BRANDS
    config.write_bytes(b"brand_accounts = " + orjson.dumps(brands) + b"\n")
    cmd = [sys.executable, "-m", "sense_respond", "run", "--config", str(config)]
    cmd += ["--input", f"jsonl:{path}", "--redis-url", url, "--prefix", prefix, *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    peak = PeakRss(proc.pid)
    files = GraphFiles(watch) if watch is not None else None
    err = proc.stderr.read() if proc.stderr else ""
    code = proc.wait()
    seconds = time.perf_counter() - start
    peak.stop()
    if files is not None:
        files.stop()
        GraphFiles.last = files
    if code != 0:
        raise RuntimeError(f"pipeline failed: {err[-2000:]}")
    _cleanup(url, prefix)
    summary = next((ln for ln in err.splitlines() if ln.startswith("summary:")), "")
    return seconds, peak.mb, summary


class PeakRss:
    """The peak RSS of a child process after its exec, read from /proc (VmHWM) while it runs.

    Not `wait4`'s `ru_maxrss`: that also counts the moment between fork and exec, when the child
    still maps this benchmark's own memory (the rows, the networkx graph: ~1 GB), which is how an
    earlier version of this script reported 1,059 MB for a run that peaks near 300 MB.
    """

    def __init__(self, pid: int, every: float = 0.05) -> None:
        self.mb = 0.0
        self._path = Path(f"/proc/{pid}/status")
        self._done = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            try:
                text = self._path.read_text()
            except OSError:  # exited (or a zombie without a status of its memory)
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.mb = max(self.mb, int(line.split()[1]) / 1024)
            self._done.wait(self._every)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class GraphFiles:
    """The graph stage's recovery files (immutable, content-addressed: one name, one write),
    recorded while a run goes; collected files are still counted."""

    last: GraphFiles | None = None

    def __init__(self, db_dir: Path, every: float = 0.05) -> None:
        self.seen: dict[str, int] = {}
        self._dir = db_dir / "graph"
        self._done = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            self._scan()
            if self._done.wait(self._every):
                self._scan()
                return

    def _scan(self) -> None:
        try:
            entries = list(os.scandir(self._dir))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(("base-", "seg-")) and entry.name not in self.seen:
                try:
                    self.seen[entry.name] = entry.stat().st_size
                except OSError:
                    continue

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def count(self, kind: str) -> tuple[int, int]:
        """(files, bytes) of one kind (`base` or `seg`)."""
        sizes = [n for name, n in self.seen.items() if name.startswith(kind + "-")]
        return len(sizes), sum(sizes)


def graph_snapshot_bytes(db_dir: Path) -> list[int]:
    """Sizes of the graph stage's snapshots Bytewax holds (pickled, in its tables)."""
    import sqlite3

    sizes = []
    for part in sorted(db_dir.glob("part-*.sqlite3")):
        con = sqlite3.connect(part)
        try:
            rows = con.execute(
                "SELECT length(ser_change) FROM snaps"
                " WHERE step_id LIKE '%influence%' AND ser_change IS NOT NULL"
            ).fetchall()
        finally:
            con.close()
        sizes += [int(n) for (n,) in rows]
    return sizes


def _cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10)
    names = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(names), 1000):
        client.delete(*names[start : start + 1000])
    client.close()


def touches_of(rows: list[tuple[str, str, int, str]], scale: int = 1) -> list[Touch]:
    """The rows as the graph stage's records (copy k of the accounts for a scale, as in
    `jsonl_line`; copies side by side in time)."""
    touches = []
    for n, (a, b, ts, code) in enumerate(rows):
        mention = code == "MT"
        for k in range(scale):
            tag = f"x{k}" if k else ""
            src, dst = f"twitter:{a}{tag}", f"twitter:{b}{tag}"
            touches.append(
                Touch(
                    key=f"twitter:{n}{tag}",
                    event_id=f"{n}{tag}",
                    ts=float(ts),
                    kind=KINDS[code],
                    author=src,
                    handle=None,
                    followers=None,
                    target=None if mention else dst,
                    mentions=(dst,) if mention else (),
                )
            )
    return touches


def graph_cpu_per_event(rows: list[tuple[str, str, int, str]], scale: int) -> tuple[float, ...]:
    """CPU µs an event of the graph stage alone on the stream at `scale`, in the flow's
    500-record lists and with its garbage-collector settings: (all of it, its rankings' share,
    rankings, power iterations)."""
    policy = EnrichPolicy.from_settings(Settings())
    touches = touches_of(rows, scale)
    count = len(touches)
    ranking = {"cpu": 0.0, "count": 0, "iterations": 0}
    refresh = InfluenceGraph.refresh

    def timed_refresh(graph: InfluenceGraph, *args: object, **kwargs: object) -> None:
        start = time.process_time()
        refresh(graph, *args, **kwargs)  # type: ignore[arg-type]
        ranking["cpu"] += time.process_time() - start
        ranking["count"] += 1
        ranking["iterations"] += graph.last_iterations

    with flow_gc():
        enricher = Enricher()
        enricher.graph.refresh = types.MethodType(timed_refresh, enricher.graph)  # type: ignore[method-assign]
        start = time.process_time()
        for i in range(0, count, 500):
            enricher.process_batch(GraphBatch(ONE_WORKER, touches[i : i + 500]), policy, None)
        cpu = time.process_time() - start
        del touches, enricher
    return (
        cpu / count * 1e6,
        ranking["cpu"] / count * 1e6,
        ranking["count"],
        ranking["iterations"],
    )


def graph_alone(rows: list[tuple[str, str, int, str]]) -> list[tuple[str, str]]:
    """The graph stage alone, and its ranking against networkx."""
    settings = Settings()
    policy = EnrichPolicy.from_settings(settings)
    enricher = Enricher()
    touches = touches_of(rows)
    start = time.perf_counter()
    enricher.process_batch(GraphBatch(ONE_WORKER, touches), policy, None)
    seconds = time.perf_counter() - start
    graph = enricher.graph
    wm = enricher.watermark.value
    refreshes = graph.refresh_count
    stored = graph.edge_count  # before the final ranking: the delta since the last one included
    at_end = sum(graph.memory_bytes().values())
    t0 = time.perf_counter()
    graph.refresh(wm, policy.graph)
    final = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph.refresh(wm, policy.graph, warm_start=False)
    cold = time.perf_counter() - t0
    cold_iterations = graph.last_iterations
    parts = graph.memory_bytes()
    edges = graph.edge_count
    t0 = time.perf_counter()
    blob = pickle.dumps(enricher, protocol=pickle.HIGHEST_PROTOCOL)
    dump = time.perf_counter() - t0
    loaded, load = traced_load(pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL))
    decayed = graph.to_networkx(wm, policy.graph, decayed_node=SINK)
    t0 = time.perf_counter()
    # networkx's default stops at an L1 change of N * 1e-6 (0.3 here): too loose to compare
    reference = nx.pagerank(
        decayed, alpha=settings.influence.damping, weight="weight", tol=1e-10, max_iter=1000
    )
    nx_seconds = time.perf_counter() - t0
    real = [c for c in decayed if c != SINK]
    scale = math.fsum(reference[c] for c in real)
    mine = np.array([graph.pagerank_estimate(c) for c in real])
    theirs = np.array([reference[c] / scale for c in real])
    top = np.argsort(-theirs, kind="stable")[:TOP]
    rho = stats.spearmanr(mine[top], theirs[top]).statistic
    overlap = len(set(top.tolist()) & set(np.argsort(-mine, kind="stable")[:TOP].tolist())) / TOP
    return [
        ("graph stage alone", f"{len(rows) / seconds:,.0f} events/s ({seconds:.2f} s)"),
        ("accounts / live edges", f"{graph.known_accounts:,} / {edges:,}"),
        ("rankings during the stream", f"{refreshes} (amortised: half the graph between)"),
        (
            "final ranking warm / cold",
            f"{final * 1e3:.0f} ms / {cold * 1e3:.0f} ms, {cold_iterations} it.",
        ),
        ("networkx.pagerank tol 1e-10 (same graph)", f"{nx_seconds * 1e3:.0f} ms"),
        ("max |ours - networkx| (rescaled)", f"{float(np.max(np.abs(mine - theirs))):.1e}"),
        (f"Spearman top {TOP} vs networkx", f"{rho:.5f}  (top-{TOP} overlap {overlap:.1%})"),
        ("edge columns per live edge", f"{parts['edges'] / edges:.1f} B"),
        (
            "whole graph per live edge (getsizeof)",
            f"{sum(parts.values()) / edges:.1f} B, ids and indexes included ("
            + ", ".join(f"{name} {size / edges:.1f}" for name, size in parts.items())
            + ")",
        ),
        (
            "whole graph per live edge (tracemalloc)",
            f"{loaded / edges:.1f} B allocated by the graph loaded from its pickle",
        ),
        (
            "at the end of the stream, before the final ranking",
            f"{at_end / stored:.1f} B per stored edge ({stored - edges:,} not live yet dropped"
            " or still in the delta)",
        ),
        (
            "pickled graph-stage state",
            f"{len(blob) / 1e6:.1f} MB, dump {dump * 1e3:.0f} ms, graph load {load * 1e3:.0f} ms",
        ),
        *journal_alone(touches, policy),
    ]


def journal_alone(touches: list[Touch], policy: EnrichPolicy) -> list[tuple[str, str]]:
    """The graph stage with recovery's journal (`connectors.graph_store`, default policy):
    the cost of a snapshot at the end of each epoch of `EPOCH_EVENTS`, and of a resume from the
    last one (load the base, replay the journal on it)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = GraphStore(Path(tmp))
        logic = InfluenceLogic(policy, None, GraphJournal(store, JournalPolicy()))
        costs = []
        for start in range(0, len(touches), EPOCH_EVENTS):
            logic.on_batch([GraphBatch(ONE_WORKER, touches[start : start + EPOCH_EVENTS])])
            t0 = time.perf_counter()
            manifest = logic.snapshot()
            costs.append(time.perf_counter() - t0)
        assert isinstance(manifest, GraphManifest)
        t0 = time.perf_counter()
        resumed = InfluenceLogic(policy, manifest, GraphJournal(store, JournalPolicy()))
        resume = time.perf_counter() - t0
        assert resumed.enricher.graph.edge_count == logic.enricher.graph.edge_count
        stats = logic.journal.stats if logic.journal else None
        assert stats is not None
    return [
        (
            f"snapshot with the journal ({EPOCH_EVENTS:,} events/epoch)",
            f"mean {np.mean(costs) * 1e3:.0f} ms, max {max(costs) * 1e3:.0f} ms;"
            f" {stats.bytes_written / len(costs) / 1e6:.2f} MB written per snapshot"
            f" ({stats.segments} segments, {stats.bases} bases)",
        ),
        (
            "resume from the last snapshot",
            f"{resume:.2f} s (base {manifest.base_bytes / 1e6:.1f} MB + journal"
            f" {manifest.journal_bytes / 1e6:.1f} MB in {len(manifest.segments)} segments)",
        ),
    ]


def traced_load(blob: bytes) -> tuple[int, float]:
    """Bytes a graph allocates when loaded from its pickle (tracemalloc), and the load time.

    Counts every object of the loaded graph, id strings and indexes included: the honest size
    of the structure, whatever its layout.
    """
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    graph = pickle.loads(blob)
    seconds = time.perf_counter() - t0
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del graph
    return size, seconds


def main() -> int:
    """Run the benchmark and print the table."""
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
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"Higgs data absent ({args.data}); nothing to benchmark.")
        return 0
    from connectors.embedded_redis import resolve_redis_url

    url, _embedded = resolve_redis_url(args.redis_url)
    rows = read_activity(args.data, args.limit)
    table: list[tuple[str, str]] = [("interactions", f"{len(rows):,}")]
    if not args.skip_graph:
        table += graph_alone(rows)
    if args.graph_only:
        print_table(table)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "higgs.jsonl"
        lines = write_jsonl(rows, path, 1)
        loop = orjson_loop(path)
        seconds, rss, summary = run_pipeline(path, url, [])
        loop = min(loop, orjson_loop(path))  # the better of two: the ratio stays conservative
        floor = min(validation_loop(path), validation_loop(path))
        table += [
            ("orjson-only loop", f"{loop:.2f} s"),
            (
                "orjson + pydantic validation loop",
                f"{floor:.2f} s: ratio loop / it {loop / floor:.3f} (validation alone's bound)",
            ),
            ("sense-respond run", f"{seconds:.1f} s, {lines / seconds:,.0f} events/s"),
            ("time ratio loop / pipeline", f"{loop / seconds:.3f}  (target >= 0.1)"),
            *stage_rows(stage_split(path, [] if NO_LISTEN else BRANDS), lines, loop, seconds),
            ("peak RSS", f"{rss:.0f} MB  (target <= 600)"),
            ("run summary", summary.removeprefix("summary: ")),
        ]
        plain = [seconds]
        recovered: list[float] = []
        for k in range(args.repeat):
            if k:
                plain.append(run_pipeline(path, url, [])[0])
            recovery = Path(tmp) / f"recovery-{k}"
            with_recovery, rss_r, _ = run_pipeline(
                path, url, ["--recovery-dir", str(recovery)], watch=recovery
            )
            recovered.append(with_recovery)
            files = GraphFiles.last
            assert files is not None
            snapshot_sizes = graph_snapshot_bytes(recovery)
            shutil.rmtree(recovery)
        pairs = ", ".join(f"{r / p - 1:+.0%}" for p, r in zip(plain, recovered, strict=True))
        segments, segment_bytes = files.count("seg")
        bases, base_bytes = files.count("base")
        snapshots = max(segments + bases, 1)
        table += [
            (
                "run with --recovery-dir (2 s)",
                f"{min(recovered):.1f} s (best of {len(recovered)}; without: best"
                f" {min(plain):.1f} s), peak RSS {rss_r:.0f} MB",
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
                f"{max(snapshot_sizes, default=0):,} B (manifest; the whole state, largest base:"
                f" {max(files.seen.values(), default=0) / 1e6:.1f} MB)",
            ),
        ]
        if args.processes > 1:
            table += cluster_rows(path, url, args.processes, loop, min(plain), args.repeat)
        if args.scale > 1:
            path.unlink()
            big = Path(tmp) / "higgs-x.jsonl"
            n_big = write_jsonl(rows, big, args.scale)
            seconds_big, rss_big, summary_big = run_pipeline(big, url, [])
            table += [
                (f"synthetic {args.scale}x", f"{n_big:,} events"),
                (
                    f"{args.scale}x sense-respond run",
                    f"{seconds_big:.0f} s, {n_big / seconds_big:,.0f} events/s",
                ),
                (f"{args.scale}x peak RSS", f"{rss_big:.0f} MB  (target <= 3000)"),
                (f"{args.scale}x summary", summary_big.removeprefix("summary: ")),
            ]
            one, many = graph_cpu_per_event(rows, 1), graph_cpu_per_event(rows, args.scale)
            table += [
                (
                    f"graph stage alone, 1x / {args.scale}x",
                    f"{one[0]:.2f} / {many[0]:.2f} us CPU an event ({many[0] / one[0] - 1:+.1%})",
                ),
                (
                    "  of which rankings",
                    f"{one[1]:.2f} / {many[1]:.2f} us an event ({many[1] / one[1] - 1:+.1%};"
                    f" {one[2]} / {many[2]} rankings, {one[3]} / {many[3]} iterations)",
                ),
                (
                    "  the rest (per event)",
                    f"{one[0] - one[1]:.2f} / {many[0] - many[1]:.2f} us an event"
                    f" ({(many[0] - many[1]) / (one[0] - one[1]) - 1:+.1%})",
                ),
            ]
    print_table(table)
    return 0


def cluster_rows(
    path: Path, url: str, processes: int, loop: float, one_process: float, repeat: int
) -> list[tuple[str, str]]:
    """The same stream through a cluster of `processes` (`-i/-a`), the input split by author as
    a deployment would partition it: the process that hosts the graph stage reads no input
    (`connectors.placement`), the others parse and listen. The best of `repeat` runs, against
    the best one-process run (`one_process`)."""
    from throughput import cluster

    runs = []
    for _ in range(repeat):
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        parts = Path(tempfile.mkdtemp(dir=path.parent))
        try:
            lines = path.read_bytes().splitlines()
            runs.append(cluster(lines, parts, url, [] if NO_LISTEN else BRANDS, processes, prefix))
        finally:
            shutil.rmtree(parts)
            _cleanup(url, prefix)
    best = min(runs)
    each = ", ".join(f"{r:.1f}" for r in runs)
    host = ClusterPlace(0, processes, 1).process_of(GRAPH_KEY)
    others = [cpu for i, cpu in enumerate(best.cpu) if i != host]
    return [
        (
            f"cluster of {processes} processes",
            f"{best:.1f} s incl. start-up (best of {len(runs)}: {each}),"
            f" {len(lines) / best:,.0f} events/s: {one_process / best:.2f}x one process"
            f" (best {one_process:.1f} s), time ratio {loop / best:.3f}",
        ),
        (
            "  CPU of its processes",
            f"the graph's (reads no input) {best.cpu[host]:.2f} s, the others"
            f" {', '.join(f'{cpu:.2f}' for cpu in others)} s (in the best run)",
        ),
    ]


def stage_rows(
    spent: dict[str, float], lines: int, loop: float, seconds: float
) -> list[tuple[str, str]]:
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


def print_table(table: list[tuple[str, str]]) -> None:
    """The rows, aligned."""
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    raise SystemExit(main())
