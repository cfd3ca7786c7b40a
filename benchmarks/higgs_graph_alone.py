"""The influence benchmark's graph stage alone (`influence_higgs.py`): `Enricher` fed the Higgs
stream as compact `Touch` records, without Bytewax or Redis. Its speed, rankings and memory per
live edge, its pickled state, its final ranking against `networkx.pagerank` on the same decayed
graph, recovery's journal (a snapshot's cost per epoch, a resume's), and its CPU per event at a
scale.

Imported by the benchmark after it puts the repository on `sys.path`.
"""

from __future__ import annotations

import gc
import math
import pickle
import tempfile
import time
import tracemalloc
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import networkx as nx
import numpy as np
from scipy import stats

from benchmarks.higgs_data import Activity, touches_of
from config.settings import Settings
from connectors.graph_store import GraphJournal, GraphManifest, GraphStore, JournalPolicy
from flows.stateful_stages import InfluenceLogic
from operators.enrich import Enricher, EnrichPolicy, GraphBatch
from operators.influence import InfluenceGraph, Touch
from operators.watermark import ONE_WORKER

TOP = 1_000
SINK = "<decayed>"
EPOCH_EVENTS = 20_000
"""Events per epoch in the journal measurement (a 2 s epoch at 10k events/s)."""


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


def graph_alone(rows: list[Activity]) -> list[tuple[str, str]]:
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
        written = logic.journal.stats if logic.journal else None
        assert written is not None
    return [
        (
            f"snapshot with the journal ({EPOCH_EVENTS:,} events/epoch)",
            f"mean {np.mean(costs) * 1e3:.0f} ms, max {max(costs) * 1e3:.0f} ms;"
            f" {written.bytes_written / len(costs) / 1e6:.2f} MB written per snapshot"
            f" ({written.segments} segments, {written.bases} bases)",
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


class GraphCpu(NamedTuple):
    """The graph stage's CPU on a stream: µs an event in all and in its rankings, and how many
    rankings and power iterations it ran."""

    per_event_us: float
    rankings_per_event_us: float
    rankings: int
    iterations: int


def graph_cpu_per_event(rows: list[Activity], scale: int) -> GraphCpu:
    """CPU µs an event of the graph stage alone on the stream at `scale`, in the flow's
    500-record lists and with its garbage-collector settings."""
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
    return GraphCpu(
        cpu / count * 1e6,
        ranking["cpu"] / count * 1e6,
        ranking["count"],
        ranking["iterations"],
    )
