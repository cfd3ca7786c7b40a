"""Replay the SNAP Higgs Twitter activity stream through `InfluenceGraph` and compare rankings.

Data: /work/shared/data/higgs_twitter/higgs-activity_time.txt.gz ("userA userB unix_ts type",
time-sorted; type RT/MT/RE = A retweeted / mentioned / replied to B, so the edge is A -> B; see
PROVENANCE.txt there). RT -> repost, MT -> a post mentioning B, RE -> reply.

Reports: observe() throughput (with and without the refreshes it triggers), the refreshes
(count, mean, max), the final refresh against one cold `networkx.pagerank` on the same decayed
graph, the pickled state (size, dump and load time), and how well the influence ranking agrees with
plain PageRank on the whole static (undecayed, unweighted-by-kind) graph.

    .venv/bin/python benchmarks/influence_higgs.py [--half-life-days 3] [--limit N] [--data GZ]
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import time
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx
import numpy as np
from scipy import stats

from config.settings import InfluenceSettings
from operators.brands import BrandAccounts
from operators.events import Account, Mention, SocialEvent
from operators.influence import InfluenceGraph

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ACTIVITY = DATA / "higgs_twitter" / "higgs-activity_time.txt.gz"
CHUNK = 50_000
TOP = 1_000


class TimedGraph(InfluenceGraph):
    """InfluenceGraph that records how long each refresh takes (the operator never times)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.durations: list[float] = []
        self.iterations: list[int] = []
        self.sizes: list[tuple[int, int]] = []

    def refresh(self, *, warm_start: bool = True) -> None:
        """Time the refresh."""
        start = time.perf_counter()
        super().refresh(warm_start=warm_start)
        self.durations.append(time.perf_counter() - start)
        self.iterations.append(self.last_iterations)
        self.sizes.append((self.ranked_accounts, self.edge_count))


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


def to_event(n: int, row: tuple[str, str, int, str]) -> SocialEvent:
    """One activity row as a SocialEvent (built with model_construct: the rows are trusted)."""
    a, b, ts, kind = row
    created = datetime.fromtimestamp(ts, UTC)
    author = Account.model_construct(id=a, handle=None, followers=None)
    fields = {
        "id": str(n),
        "platform": "twitter",
        "created_at": created,
        "author": author,
        "text": "",
        "mentions": [],
        "in_reply_to": None,
        "lang": None,
        "url": None,
        "edited_at": None,
        "target": None,
    }
    if kind == "MT":
        fields["kind"] = "post"
        fields["mentions"] = [Mention.model_construct(id=b, handle=None)]
    else:
        fields["kind"] = "repost" if kind == "RT" else "reply"
        fields["target"] = Account.model_construct(id=b, handle=None, followers=None)
    return SocialEvent.model_construct(**fields)


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-life-days", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines")
    parser.add_argument("--data", type=Path, default=ACTIVITY, help="higgs-activity_time.txt.gz")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"Higgs data absent ({args.data}); nothing to benchmark.")
        return 0

    rows = read_activity(args.data, args.limit)
    settings = InfluenceSettings(half_life_seconds=int(args.half_life_days * 86_400))
    graph = TimedGraph(settings, BrandAccounts())

    observe_seconds = 0.0
    for start in range(0, len(rows), CHUNK):
        events = [to_event(start + k, row) for k, row in enumerate(rows[start : start + CHUNK])]
        observe = graph.observe
        t0 = time.perf_counter()
        for event in events:
            observe(event)
        observe_seconds += time.perf_counter() - t0
    refresh_seconds = sum(graph.durations)
    n_refreshes = len(graph.durations)
    slowest = int(np.argmax(graph.durations)) if n_refreshes else 0

    graph.refresh()  # the final ranking, timed like the others (warm start)
    final_refresh = graph.durations[-1]
    final_iterations = graph.iterations[-1]

    t0 = time.perf_counter()
    blob = pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
    dump_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pickle.loads(blob)
    load_s = time.perf_counter() - t0

    # Cold reference: networkx on the same decayed graph, and our cold refresh on it too.
    decayed = graph.to_networkx()
    t0 = time.perf_counter()
    reference = nx.pagerank(decayed, alpha=settings.damping, weight="weight")
    nx_seconds = time.perf_counter() - t0
    cold = pickle.loads(blob)
    cold.durations, cold.iterations, cold.sizes = [], [], []  # not part of the pickled state
    cold.refresh(warm_start=False)
    cold_refresh = cold.durations[-1]
    t0 = time.perf_counter()
    tight = nx.pagerank(decayed, alpha=settings.damping, weight="weight", tol=1e-12, max_iter=1000)
    nx_tight_seconds = time.perf_counter() - t0
    ids = list(decayed.nodes)
    mine = np.array([graph.influence_of(cid).pagerank for cid in ids])
    max_diff_tight = float(np.max(np.abs(mine - np.array([tight[c] for c in ids]))))
    max_diff_default = float(np.max(np.abs(mine - np.array([reference[c] for c in ids]))))

    # Static graph: every interaction once, no decay, no kind weights, no self-loops.
    static = nx.DiGraph()
    static.add_nodes_from(ids)
    for a, b, _, _ in rows:
        if a != b:
            u, v = f"twitter:{a}", f"twitter:{b}"
            if static.has_edge(u, v):
                static[u][v]["weight"] += 1.0
            else:
                static.add_edge(u, v, weight=1.0)
    static_rank = nx.pagerank(static, alpha=settings.damping, weight="weight", tol=1e-10)
    influence = np.array([graph.influence_of(cid).score for cid in ids])
    static_pr = np.array([static_rank[cid] for cid in ids])
    rho = stats.spearmanr(influence, static_pr).statistic
    top_ours = set(np.argsort(-mine, kind="stable")[:TOP].tolist())
    top_static = set(np.argsort(-static_pr, kind="stable")[:TOP].tolist())
    overlap = len(top_ours & top_static) / TOP
    top_decile = {i for i, cid in enumerate(ids) if graph.influence_of(cid).percentile >= 0.9}
    static_top_in_decile = len(top_static & top_decile) / TOP

    n_events = len(rows)
    table = [
        ("events replayed", f"{n_events:,}"),
        ("accounts / edges", f"{graph.known_accounts:,} / {graph.edge_count:,}"),
        ("half-life", f"{args.half_life_days:g} d"),
        ("observe incl. refreshes", f"{n_events / observe_seconds:,.0f} ev/s"),
        (
            "observe excl. refreshes",
            f"{n_events / (observe_seconds - refresh_seconds):,.0f} ev/s "
            f"({(observe_seconds - refresh_seconds) / n_events * 1e6:.2f} us/ev)",
        ),
        (
            "refreshes in replay",
            f"{n_refreshes} (mean {refresh_seconds / max(n_refreshes, 1) * 1e3:.1f} ms, "
            f"max {max(graph.durations[:n_refreshes] or [0]) * 1e3:.1f} ms)",
        ),
        (
            "slowest refresh",
            f"#{slowest + 1}: {graph.durations[slowest] * 1e3:.0f} ms, "
            f"{graph.iterations[slowest]} iter., {graph.sizes[slowest][0]:,} accounts"
            if n_refreshes
            else "-",
        ),
        (
            "median refresh iterations",
            f"{int(np.median(graph.iterations[:n_refreshes])) if n_refreshes else 0}",
        ),
        ("final refresh (warm)", f"{final_refresh * 1e3:.1f} ms, {final_iterations} iterations"),
        ("final refresh (cold)", f"{cold_refresh * 1e3:.1f} ms, {cold.last_iterations} iter."),
        ("networkx.pagerank (cold)", f"{nx_seconds * 1e3:.0f} ms (default tol)"),
        ("networkx.pagerank tol=1e-12", f"{nx_tight_seconds * 1e3:.0f} ms"),
        (
            "ratio networkx / ours",
            f"{nx_seconds / cold_refresh:.1f}x cold, {nx_seconds / final_refresh:.1f}x warm "
            f"(tol 1e-12: {nx_tight_seconds / cold_refresh:.1f}x cold)",
        ),
        ("max |ours - nx| (tol 1e-12)", f"{max_diff_tight:.1e}"),
        ("max |ours - nx| (default tol)", f"{max_diff_default:.1e}"),
        (
            "pickle state",
            f"{len(blob) / 1e6:.1f} MB, dump {dump_s * 1e3:.0f} ms, load {load_s * 1e3:.0f} ms",
        ),
        ("Spearman(score, static PR)", f"{rho:.4f}"),
        (f"top-{TOP} overlap PR vs static PR", f"{overlap:.1%}"),
        (f"static top-{TOP} in our top decile", f"{static_top_in_decile:.1%}"),
    ]
    width = max(len(name) for name, _ in table)
    for name, value in table:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
