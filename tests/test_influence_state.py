"""InfluenceGraph state: amortised ranking and compact edge storage, the horizon bounding what is
kept, purging accounts (`forget`), colliding ids, and pickled snapshots."""

from __future__ import annotations

import pickle

import pytest
from influence_harness import DAY, Harness, background, cid, crowd, ev, random_feed

from operators.influence import InfluenceGraph


def test_ranking_is_amortised_to_the_graph_size() -> None:
    h = Harness(refresh_every_events=100)
    events = random_feed(11, 5_000, 30_000, days=1)
    h.feed(events)
    # geometric: a quarter of the graph's size between rankings, so O(log) of them
    assert 5 <= h.graph.refresh_count <= 40


def test_edge_storage_is_compact() -> None:
    h = Harness(refresh_every_events=100)
    h.feed(random_feed(12, 5_000, 30_000, days=1))
    h.refresh()
    parts = h.graph.memory_bytes()
    assert parts["edges"] / h.graph.edge_count <= 40  # 24 B per edge + 4 per account, plus slack
    # Everything (id bytes, indexes, columns, ranking): ~35 B per edge-or-account here.
    assert sum(parts.values()) <= 48 * (h.graph.edge_count + h.graph.known_accounts)
    blob = pickle.dumps(h.enricher)
    assert len(blob) < 100 * (h.graph.known_accounts + h.graph.edge_count)


def test_horizon_bounds_what_is_kept() -> None:
    h = Harness(refresh_every_events=10)
    h.feed(random_feed(13, 300, 2000, days=1))
    h.refresh()
    assert h.graph.edge_count > 1000
    h.feed(background(accounts=200, at=9 * DAY, seed=4))
    h.feed(crowd("late", 5, at=9 * DAY))
    h.refresh()
    assert h.graph.edge_count == 5  # everything older than the 7-day horizon is gone
    assert h.graph.known_accounts <= 206


def test_forget_without_compaction() -> None:
    h = Harness()
    h.feed(background(accounts=100))
    h.feed(crowd("star", 10, at=50))
    h.feed([ev(f"t{i}", "star", "reply", target="u99", at=60 + i) for i in range(3)])
    h.refresh()
    assert h.inf("u99").inbound_accounts == 1
    h.graph.forget(cid("star"))
    h.graph.forget(cid("nobody"))  # unknown: nothing happens
    assert cid("star") not in h.graph
    assert h.inf("u99").inbound_accounts == 0  # at once, before any ranking
    assert h.inf("star").inbound_accounts == 0
    h.refresh()
    assert cid("star") not in h.graph.to_networkx(h.wm, h.policy.graph)
    h.feed([ev("back", "star", at=200)])  # a purged account that comes back starts afresh
    assert h.inf("star").inbound_accounts == 0


def test_accounts_whose_ids_collide_keep_their_own_reach() -> None:
    a, b = "c38873", "c23502600"  # zlib.crc32 of "tw:c38873" and "tw:c23502600" are equal
    h = Harness(min_inbound_accounts=1)
    h.feed(background(accounts=50))
    h.feed(crowd(a, 3, at=100, prefix="x"))
    h.feed(crowd(b, 5, at=100, prefix="y"))
    h.feed([ev("ab", a, "reply", target=b, at=110)])
    assert (h.inf(a).inbound_accounts, h.inf(b).inbound_accounts) == (3, 6)
    edges = {(u, v) for u, v, _ in h.graph.decayed_edges(h.wm, h.policy.graph)}
    assert (cid(a), cid(b)) in edges and (cid(b), cid(a)) not in edges
    h.graph.forget(cid(a))
    assert cid(a) not in h.graph and h.inf(b).inbound_accounts == 5


def test_pickle_round_trip_carries_on_identically() -> None:
    h = Harness(refresh_every_events=100)
    events = random_feed(5, 200, 3000, days=2)
    h.feed(events[:2000])
    clone = Harness(refresh_every_events=100)
    clone.enricher = pickle.loads(pickle.dumps(h.enricher))
    assert pickle.dumps(clone.enricher.graph) == pickle.dumps(h.enricher.graph)
    for i in range(200):
        assert clone.inf(f"u{i}") == h.inf(f"u{i}")
    a = h.feed(events[2000:])
    b = clone.feed(events[2000:])
    assert a == b
    assert pickle.dumps(clone.enricher.graph) == pickle.dumps(h.enricher.graph)


def test_an_old_snapshot_is_refused_with_a_clear_error() -> None:
    graph = InfluenceGraph()
    with pytest.raises(ValueError, match="older version"):
        graph.__setstate__({"v": 2})
