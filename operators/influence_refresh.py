"""The influence graph's re-ranking and compaction, purge, and export: off the per-event path.

`GraphRefresh` is mixed into `operators.influence.InfluenceGraph` and works on the columns laid out
there (its `__init__` describes them); the per-event path (`observe`, `_interact`) stays there, so
an event pays no extra call. PageRank itself is `operators.influence_rank`.

Ranking: weighted PageRank with decay that reaches influence. A source passes on the decayed
weight of its edges, normalised by max(its out-weight, 1): an active source (out-weight >= one
fresh interaction) splits its vote exactly as in `networkx.pagerank`, and a source that fell
silent passes on only what is left of its interactions, the rest teleports uniformly, as a
dangling node's does. On the same decayed graph plus one "decayed" sink node that receives the
unpassed weight, `networkx.pagerank` gives the same ranking (the sink's mass is uniform, so it
changes every value by the same factor; see the tests and `to_networkx`). Damping `damping`,
uniform teleport, scipy.sparse power iteration warm-started from the last vector, L1 change
below 1e-7.

Amortised ranking. A ranking runs inside `observe`, at a point of the stream decided by the
stream alone (deterministic on every replay), once the changes since the last one reach a
half of the graph's size (and `refresh_every_events`), or once the watermark moved
`refresh_every_seconds` and a quarter of the graph changed: its O(V + E) cost is O(1) per event.
Between rankings an account's PageRank is estimated in O(1) per interaction: every new
interaction u -> v adds damping * pr(u) * w / max(out(u), 1) to v, with pr from the last ranking.

A ranking also maintains the storage: it merges the delta into the CSR of the last ranking (a
sorted run plus the delta, so the sort is nearly linear), drops edges that left the reach horizon
or touch a forgotten account, and renumbers the nodes once forgotten and idle accounts are a
quarter of them, so memory follows the live graph rather than everything ever seen.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

from operators.influence_policy import GraphPolicy
from operators.influence_rank import weighted_pagerank
from operators.node_index import probe_table, table_size

_GROWTH_FRACTION = 0.5
"""Re-rank once the changes since the last ranking are this fraction of the graph's size."""

_TIME_FRACTION = 0.25
"""The watermark trigger needs this fraction of the graph changed (so it stays amortised)."""

_COMPACT_FRACTION = 0.25
"""Renumber the nodes once forgotten and idle accounts are this fraction of them."""

_LOW32 = 0xFFFFFFFF

DELTA_GOLDEN = 0x9E3779B97F4A7C15
"""Fibonacci hashing of delta edge keys: the top bits of key * golden (mod 2^64) pick the slot.
`_index_delta_table` places keys with it and `InfluenceGraph._interact` probes with it."""

MIN_DELTA_TABLE = 16


class GraphRefresh:
    """Re-ranking, compaction, purge and export of `InfluenceGraph` (whose columns it uses)."""

    # ------------------------------------------------------------------ refresh

    def refresh(self, watermark: float, policy: GraphPolicy, *, warm_start: bool = True) -> None:
        """Merge the delta, drop what left the horizon, and recompute PageRank and percentiles.

        `warm_start=False` starts the power iteration from the uniform vector (benchmarks).
        """
        clock = self._clock(watermark)
        cutoff = clock - policy.horizon
        src, dst, w, last, h = self._merged_edges()
        alive = np.frombuffer(self._ids.alive, dtype=np.uint8).astype(bool)
        live = (last >= cutoff) & alive[src] & alive[dst]
        if not live.all():
            src, dst, w, last, h = src[live], dst[live], w[live], last[live], h[live]
        authored = np.frombuffer(self._authored, dtype=np.float64)
        n = len(self._ids)
        idle = n - int(
            np.count_nonzero(
                alive
                & (
                    (authored >= cutoff)
                    | (np.bincount(src, minlength=n) > 0)
                    | (np.bincount(dst, minlength=n) > 0)
                )
            )
        )
        if idle >= _COMPACT_FRACTION * n and idle > 0:
            remap = self._compact_nodes(src, dst, cutoff)
            src, dst = remap[src], remap[dst]  # the remap is monotone: still sorted
            n = len(self._ids)
        if watermark > -math.inf:  # a watch that ended cannot start again (see _check_rise)
            self._watch = {i: until for i, until in self._watch.items() if until >= watermark}
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
        self._n_base = n
        self._in_start = _to_array("I", indptr)
        self._src = _to_array("I", src)
        self._w = _to_array("d", w)
        self._last = _to_array("d", last)
        self._h = _to_array("I", h)
        self._dk, self._dw, self._dl = array("q"), array("d"), array("d")
        self._dh, self._dnext = array("I"), array("i")
        self._dhead = array("i", [-1]) * n
        self._index_delta_table()

        self.refresh_count += 1
        decayed = w * np.exp(-policy.lam * np.maximum(clock - last, 0.0))
        start = np.frombuffer(self._pr, dtype=np.float64) if warm_start else np.zeros(0)
        ranks, out, self.last_iterations = weighted_pagerank(
            n, src, indptr, decayed, policy.damping, start
        )
        del start
        self._pr = _to_array("d", ranks)
        self._out = _to_array("d", out)
        self._gain = array("d", bytes(8 * n))
        passed = np.minimum(out, 1.0)
        self._base = float(
            (policy.damping * ((1.0 - passed) * ranks).sum() + (1.0 - policy.damping)) / n
        )
        authored = np.frombuffer(self._authored, dtype=np.float64)
        alive = np.frombuffer(self._ids.alive, dtype=np.uint8).astype(bool)
        with_evidence = alive & (authored >= cutoff)
        quantized = np.round(ranks * n, 9)
        sorted_authors = np.sort(quantized[with_evidence])
        self._sorted_authors = _to_array("d", sorted_authors)
        self._n_ranked = len(sorted_authors)
        self._clear_fallen(quantized, dst, last >= cutoff, n, policy)
        size = n + len(self._src)
        self._changes = 0
        self._due = max(float(policy.refresh_floor), _GROWTH_FRACTION * size)
        self._time_due = max(1.0, _TIME_FRACTION * size)
        self._gate = min(self._due, self._time_due)
        self._next_time = clock + policy.refresh_seconds

    def _clock(self, watermark: float) -> float:
        if watermark > -math.inf:
            return watermark
        newest = [max(a) for a in (self._last, self._dl, self._authored) if len(a)]
        return max(newest) if newest else 0.0

    def _merged_edges(self) -> tuple[np.ndarray, ...]:
        """(src, dst, weight, last, hash) of every stored edge, sorted by (dst, src): copies."""
        indptr = np.frombuffer(self._in_start, dtype=np.uint32).astype(np.int64)
        src = np.frombuffer(self._src, dtype=np.uint32).astype(np.int64)
        dst = np.repeat(np.arange(self._n_base, dtype=np.int64), np.diff(indptr))
        w = np.frombuffer(self._w, dtype=np.float64)
        last = np.frombuffer(self._last, dtype=np.float64)
        h = np.frombuffer(self._h, dtype=np.uint32)
        if not len(self._dk):
            return src, dst, w.copy(), last.copy(), h.copy()
        keys = np.concatenate([(dst << 32) | src, np.frombuffer(self._dk, dtype=np.int64)])
        w = np.concatenate([w, np.frombuffer(self._dw, dtype=np.float64)])
        last = np.concatenate([last, np.frombuffer(self._dl, dtype=np.float64)])
        h = np.concatenate([h, np.frombuffer(self._dh, dtype=np.uint32)])
        order = np.argsort(keys, kind="stable")  # a sorted run plus the delta: nearly linear
        keys = keys[order]
        return keys & _LOW32, keys >> 32, w[order], last[order], h[order]

    def _index_delta_table(self) -> None:
        """(Re)build the delta's probing table for its keys (load 1/3 to 2/3 as it grows)."""
        keys = np.frombuffer(self._dk, dtype=np.int64)
        size = max(MIN_DELTA_TABLE, table_size(len(keys)))
        shift = 65 - size.bit_length()  # the top log2(size) bits of the 64-bit product
        self._dshift = shift
        homes = (keys.view(np.uint64) * np.uint64(DELTA_GOLDEN)) >> np.uint64(shift)
        self._dtable = probe_table(homes.astype(np.int64), size)

    def _index_delta_lists(self) -> None:
        """Per destination, its delta edges newest first (head per node, next per edge)."""
        keys = np.frombuffer(self._dk, dtype=np.int64)
        dst = keys >> 32
        head = np.full(len(self._ids), -1, dtype=np.int32)
        nxt = np.full(len(keys), -1, dtype=np.int32)
        if len(keys):
            order = np.argsort(dst, kind="stable")  # by destination, then slot
            grouped = dst[order]
            same = grouped[1:] == grouped[:-1]
            nxt[order[1:][same]] = order[:-1][same]
            ends = np.append(~same, True)
            head[grouped[ends]] = order[ends]
        self._dhead = _to_array("i", head)
        self._dnext = _to_array("i", nxt)

    def _compact_nodes(self, src: np.ndarray, dst: np.ndarray, cutoff: float) -> np.ndarray:
        """Renumber without forgotten accounts and idle ones (no live edge, no recent evidence)."""
        n = len(self._ids)
        alive = np.frombuffer(self._ids.alive, dtype=np.uint8).astype(bool)
        authored = np.frombuffer(self._authored, dtype=np.float64)
        degree = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
        keep = alive & ((degree > 0) | (authored >= cutoff))
        del alive, authored
        remap = np.cumsum(keep) - 1
        kept = np.flatnonzero(keep)
        self._ids.compact(keep)
        for attr, code in (("_authored", "d"), ("_out", "d")):
            column = np.frombuffer(getattr(self, attr), dtype=np.dtype(code))
            setattr(self, attr, _to_array(code, column[kept]))
        with_count = kept[kept < len(self._followers)]  # a prefix of the kept ones
        for attr, code in (("_followers", "q"), ("_followers_t", "d")):
            column = np.frombuffer(getattr(self, attr), dtype=np.dtype(code))
            setattr(self, attr, _to_array(code, column[with_count]))
        self._above = bytearray(np.frombuffer(self._above, dtype=np.uint8)[kept].tobytes())
        self._watch = {int(remap[i]): until for i, until in self._watch.items() if keep[i]}
        old = np.frombuffer(self._pr, dtype=np.float64)
        padded = np.concatenate([old, np.zeros(max(0, n - len(old)))])[:n]
        del old
        self._pr = _to_array("d", padded[kept])
        self._removed = 0
        return remap.astype(np.int64)

    def _clear_fallen(
        self, quantized: np.ndarray, dst: np.ndarray, recent: np.ndarray, n: int, p: GraphPolicy
    ) -> None:
        """Hysteresis after a ranking: drop those below threshold - margin or without reach."""
        above = np.flatnonzero(np.frombuffer(self._above, dtype=np.uint8))
        if not len(above):
            return
        if self._n_ranked == 0:
            for i in above.tolist():
                self._above[i] = 0
            return
        inbound = np.bincount(dst[recent], minlength=n)[above]
        pct = np.searchsorted(self._sorted_authors, quantized[above], side="left") / self._n_ranked
        fallen = (inbound < p.min_inbound) | (pct < p.threshold - p.hysteresis)
        for i in above[fallen].tolist():
            self._above[i] = 0

    # ------------------------------------------------------------------ purge

    def forget(self, customer_id: str) -> None:
        """Drop an account (purge) now: its node and its edges stop counting at once.

        No compaction: in-edges are one range (cleared), out-edges one vectorised scan; the
        space is reclaimed when enough has been forgotten.
        """
        i = self._ids.forget(customer_id)
        if i < 0:
            return
        if i < len(self._followers):
            self._followers[i] = 0
        self._authored[i] = -math.inf
        self._watch.pop(i, None)
        self._above[i] = 0
        self._gain[i] = 0.0
        self._removed += 1
        last = np.frombuffer(self._last, dtype=np.float64)
        weights = np.frombuffer(self._w, dtype=np.float64)
        if i < self._n_base:
            lo, hi = self._in_start[i], self._in_start[i + 1]
            last[lo:hi] = -math.inf
            weights[lo:hi] = 0.0
        out_edges = np.flatnonzero(np.frombuffer(self._src, dtype=np.uint32) == i)
        last[out_edges] = -math.inf
        weights[out_edges] = 0.0
        del last, weights
        if len(self._dk):
            keys = np.frombuffer(self._dk, dtype=np.int64)
            touching = np.flatnonzero(((keys >> 32) == i) | ((keys & _LOW32) == i))
            last = np.frombuffer(self._dl, dtype=np.float64)
            weights = np.frombuffer(self._dw, dtype=np.float64)
            last[touching] = -math.inf
            weights[touching] = 0.0
            del last, weights

    # ------------------------------------------------------------------ checks

    def decayed_edges(self, watermark: float, policy: GraphPolicy) -> list[tuple[str, str, float]]:
        """Every live edge (src, dst, weight decayed to the watermark), for checks."""
        src, dst, w, last, _ = self._merged_edges()
        clock = self._clock(watermark)
        names = self._ids.customer_ids()
        out = []
        for u, v, weight, t in zip(
            src.tolist(), dst.tolist(), w.tolist(), last.tolist(), strict=True
        ):
            s, d = names[u], names[v]
            if s is not None and d is not None and t >= clock - policy.horizon:
                out.append((s, d, weight * math.exp(-policy.lam * max(clock - t, 0.0))))
        return out

    def to_networkx(
        self, watermark: float, policy: GraphPolicy, decayed_node: str | None = None
    ) -> nx.DiGraph:
        """The graph with decayed weights (edge attribute `weight`).

        With `decayed_node`, each account with out-weight below 1 also gets an edge to that
        node carrying the rest: `networkx.pagerank` on it ranks the accounts as we do.
        """
        import networkx as nx  # checks and benchmarks only: not loaded by the flow

        graph = nx.DiGraph()
        graph.add_nodes_from(cid for cid in self._ids.customer_ids() if cid is not None)
        out: dict[str, float] = {}
        for s, d, weight in self.decayed_edges(watermark, policy):
            graph.add_edge(s, d, weight=weight)
            out[s] = out.get(s, 0.0) + weight
        if decayed_node is not None:
            graph.add_node(decayed_node)
            for s, total in out.items():
                if total < 1.0:
                    graph.add_edge(s, decayed_node, weight=1.0 - total)
        return graph


def _to_array(typecode: str, values: np.ndarray) -> array:
    """A numpy vector as a compact, bisectable, picklable `array.array`."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out
