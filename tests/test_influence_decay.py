"""InfluenceGraph: decay that reaches influence (a silent source passes on decayed influence), and
PageRank that agrees with networkx on the decayed graph, generated and real (a Higgs prefix)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from influence_harness import DAY, SINK, T0, Harness, background, crowd, ev, random_feed
from scipy import stats

HIGGS = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "higgs_twitter"
    / "higgs-activity_time.txt.gz"
)

# ----------------------------------------------------------------------------- decay


@pytest.mark.parametrize("half_lives", [10, 12, 20])
def test_a_silent_source_passes_on_decayed_influence(half_lives: int) -> None:
    half_life = 3 * DAY
    h = Harness(half_life_seconds=half_life, reach_horizon_seconds=100 * DAY)
    h.feed(background(accounts=100))
    h.feed(crowd("old", 40, at=0, prefix="o"))
    later = half_lives * half_life
    h.feed(background(accounts=100, at=later, seed=8))
    h.feed(crowd("new", 5, at=later, prefix="n"))
    h.refresh()
    assert h.inf("old").pagerank < h.inf("new").pagerank


def test_without_time_between_them_more_engagement_wins() -> None:
    h = Harness()
    h.feed(background(accounts=100))
    h.feed(crowd("old", 40, at=0, prefix="o"))
    h.feed(crowd("new", 5, at=0, prefix="n"))
    h.refresh()
    assert h.inf("old").pagerank > h.inf("new").pagerank


def test_an_active_source_splits_its_vote_exactly_as_networkx() -> None:
    # Fresh weights >= 1: the ordinary PageRank normalisation, no sink edge at all.
    h = Harness()
    h.feed([ev(f"e{i}", f"a{i % 7}", "reply", target=f"a{(i * 3 + 1) % 7}") for i in range(30)])
    h.feed(background(accounts=10))
    h.refresh()
    graph = h.graph.to_networkx(h.wm, h.policy.graph)
    expected = nx.pagerank(graph, alpha=0.85, weight="weight", tol=1e-13, max_iter=10_000)
    for node in graph:
        assert h.graph.pagerank_estimate(node) == pytest.approx(expected[node], abs=1e-7)


@pytest.mark.parametrize(
    ("seed", "accounts", "interactions", "damping", "days"),
    [
        (1, 30, 60, 0.85, 1),
        (2, 300, 2000, 0.85, 6),
        (3, 200, 300, 0.5, 3),
        (4, 3000, 8000, 0.95, 6),
    ],
)
def test_pagerank_agrees_with_networkx_on_the_decayed_graph(
    seed: int, accounts: int, interactions: int, damping: float, days: float
) -> None:
    h = Harness(damping=damping, half_life_seconds=DAY)
    h.feed(random_feed(seed, accounts, interactions, days))
    h.refresh()
    graph = h.graph.to_networkx(h.wm, h.policy.graph, decayed_node=SINK)
    assert not any(u == v for u, v in graph.edges)
    expected = nx.pagerank(graph, alpha=damping, weight="weight", tol=1e-13, max_iter=10_000)
    real = [node for node in graph if node != SINK]
    scale = math.fsum(expected[node] for node in real)
    mine = np.array([h.graph.pagerank_estimate(node) for node in real])
    theirs = np.array([expected[node] / scale for node in real])
    assert np.max(np.abs(mine - theirs)) < 1e-7  # the same ranking, value for value
    assert math.fsum(mine) == pytest.approx(1.0)
    top = np.argsort(-theirs, kind="stable")[:1000]
    rho = stats.spearmanr(mine[top], theirs[top]).statistic
    assert rho >= 0.99


# ----------------------------------------------------------------------------- real data


@pytest.mark.shared
def test_higgs_prefix_agrees_with_networkx() -> None:
    """The first 20,000 Higgs interactions (A retweeted/mentioned/replied to B: edge A -> B)."""
    if not HIGGS.is_file():
        pytest.skip(f"shared data absent: {HIGGS}")
    kinds = {"RT": "repost", "RE": "reply", "MT": "mention"}
    h = Harness(min_accounts_to_rank=50, refresh_every_events=2000)
    inbound: dict[str, set[str]] = {}
    with gzip.open(HIGGS, "rt") as lines:
        events = []
        for n, line in zip(range(20_000), lines, strict=False):
            a, b, ts, code = line.split()
            at = int(ts) - T0.timestamp()
            if kinds[code] == "mention":
                events.append(ev(n, a, "post", mentions=[b], at=at))
            else:
                events.append(ev(n, a, kinds[code], target=b, at=at))
            if a != b:
                inbound.setdefault(b, set()).add(a)
    h.feed(events)
    assert h.graph.refresh_count >= 3
    h.refresh()
    graph = h.graph.to_networkx(h.wm, h.policy.graph, decayed_node=SINK)
    expected = nx.pagerank(graph, alpha=0.85, weight="weight", tol=1e-12, max_iter=1000)
    real = [c for c in graph if c != SINK]
    scale = math.fsum(expected[c] for c in real)
    worst = max(abs(h.graph.pagerank_estimate(c) - expected[c] / scale) for c in real)
    assert worst < 1e-6
    for account in sorted(inbound, key=lambda b: -len(inbound[b]))[:20]:
        influence = h.inf(account)
        assert influence.inbound_accounts == len(inbound[account])
