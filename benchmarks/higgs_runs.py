"""The influence benchmark's whole runs (`influence_higgs.py`): `sense-respond run` on the Higgs
JSONL as a child process (its time, peak RSS and summary line; with `--recovery-dir`, what
recovery writes), alternated without and with recovery, and through a cluster of processes
(`throughput.cluster`); and what such a run is measured against in this process: loops that only
parse, or parse and validate, the same lines, and the CPU of the flow's stages on them.

Imported by the benchmark after it puts the repository on `sys.path`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.higgs_graph_alone import flow_gc
from benchmarks.pipeline_run import child_env, drop_run, fresh_prefix, run_command, write_config
from benchmarks.throughput import ClusterRun, cluster
from config.settings import Settings
from connectors.placement import ClusterPlace
from flows.stateful_stages import InfluenceLogic
from flows.stateless_steps import GRAPH_KEY
from operators.enrich import EnrichPolicy

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ChildRun:
    """One `sense-respond run` in a child process: its seconds (start-up included), its peak
    RSS, its summary line, and the graph files recovery wrote (with a recovery directory)."""

    seconds: float
    peak_rss_mb: float
    summary: str
    graph_files: GraphFiles | None


def child_run(
    path: Path,
    url: str,
    brands: list[str],
    extra: list[str] | None = None,
    watch: Path | None = None,
) -> ChildRun:
    """`sense-respond run` on the file, listening for `brands`, with `extra` flags.

    `watch`: a recovery directory whose graph files are recorded as they appear."""
    prefix = fresh_prefix()
    config = write_config(path.with_suffix(".toml"), brands)
    cmd = [*run_command(config, f"jsonl:{path}", url, prefix), *(extra or [])]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stderr=subprocess.PIPE, text=True)
    peak = PeakRss(proc.pid)
    files = GraphFiles(watch) if watch is not None else None
    err = proc.stderr.read() if proc.stderr else ""
    code = proc.wait()
    seconds = time.perf_counter() - start
    peak.stop()
    if files is not None:
        files.stop()
    if code != 0:
        raise RuntimeError(f"pipeline failed: {err[-2000:]}")
    drop_run(url, prefix)
    summary = next((ln for ln in err.splitlines() if ln.startswith("summary:")), "")
    return ChildRun(seconds, peak.mb, summary, files)


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


@dataclass(frozen=True)
class RecoveryRuns:
    """Runs without and with `--recovery-dir`, in alternation; what the last one with recovery
    wrote, and the sizes of the graph stage's snapshots in its tables."""

    plain: list[float]
    recovered: list[float]
    last: ChildRun
    snapshot_sizes: list[int]


def recovery_runs(
    path: Path, url: str, brands: list[str], first_plain: float, repeat: int
) -> RecoveryRuns:
    """`repeat` pairs of runs without / with recovery (2 s snapshots, the default), the first
    run without it being the one already timed (`first_plain` seconds); alternating, so that a
    noisy machine slows both alike."""
    plain = [first_plain]
    recovered: list[float] = []
    last: ChildRun | None = None
    snapshot_sizes: list[int] = []
    for k in range(repeat):
        if k:
            plain.append(child_run(path, url, brands).seconds)
        recovery = path.parent / f"recovery-{k}"
        last = child_run(path, url, brands, ["--recovery-dir", str(recovery)], watch=recovery)
        recovered.append(last.seconds)
        snapshot_sizes = graph_snapshot_bytes(recovery)
        shutil.rmtree(recovery)
    assert last is not None, "--repeat must be at least 1"
    return RecoveryRuns(plain, recovered, last, snapshot_sizes)


def cluster_runs(
    path: Path, url: str, brands: list[str], processes: int, repeat: int
) -> list[ClusterRun]:
    """The stream through a cluster of `processes` (`-i/-a`), `repeat` times, the input split by
    author as a deployment would partition it: the process that hosts the graph stage reads no
    input (`connectors.placement`), the others parse and listen."""
    lines = path.read_bytes().splitlines()
    runs = []
    for _ in range(repeat):
        prefix = fresh_prefix()
        parts = Path(tempfile.mkdtemp(dir=path.parent))
        try:
            runs.append(cluster(lines, parts, url, brands, processes, prefix))
        finally:
            shutil.rmtree(parts)
            drop_run(url, prefix)
    return runs


def graph_process(processes: int) -> int:
    """Which process of a cluster of `processes` hosts the graph stage."""
    return ClusterPlace(0, processes, 1).process_of(GRAPH_KEY)


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
