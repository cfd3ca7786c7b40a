"""The decaying interaction graph, reach, and the influence ranking derived from them.

Graph. Every reply, quote, repost, like, follow and mention is a directed edge from its author to
the account it targets, weighted by its kind (`InfluenceSettings.kind_weights`) and decaying
exponentially with event time (`half_life_seconds`). Parallel interactions add up on one edge.
Self-loops are ignored, and so is every interaction authored by a brand account (a support reply
is not reach). The auto-mention of a reply's own target is not counted a second time. Only
interactions within `reach_horizon_seconds` of the watermark are kept: older edges are dropped
at the next ranking, so the horizon bounds the memory.

Reach. `inbound_accounts` is exactly the number of distinct non-brand accounts with an
interaction toward the account within the reach horizon (an edge whose newest interaction is
that recent), counted when asked (O(log E + in-degree)). Graph influence needs at least
`min_inbound_accounts` of them; below that an account's percentile is 0, whatever its PageRank.

Idempotent edges. Each edge keeps the event time and a hash of the id of its newest
interaction, and accepts an interaction only when it is newer (by time, then hash), or older but
still inside the de-duplication memory (`flow.dedupe_seconds` behind the watermark, where an
exact duplicate was already dropped by id). A redelivery of any age therefore never counts twice;
an interaction that is both older than its edge's newest and older than the memory is not
counted either (it cannot be told from a redelivery).

Ranking: weighted PageRank with decay that reaches influence. A source passes on the decayed
weight of its edges, normalised by max(its out-weight, 1): an active source (out-weight >= one
fresh interaction) splits its vote exactly as in `networkx.pagerank`, and a source that fell
silent passes on only what is left of its interactions, the rest teleports uniformly, as a
dangling node's does. On the same decayed graph plus one "decayed" sink node that receives the
unpassed weight, `networkx.pagerank` gives the same ranking (the sink's mass is uniform, so it
changes every value by the same factor; see the tests). Damping `damping`, uniform teleport,
scipy.sparse power iteration warm-started from the last vector, L1 change below 1e-7.

Storage (~82 bytes per live edge on the Higgs stream by getsizeof, ~91 by tracemalloc, ids and
indexes included: see `memory_bytes` and benchmarks/influence_higgs.py). Accounts are numbered by
a compact exact index (`operators.node_index`); per-account values are array columns, the sparse
ones (follower counts, watches) only where present. The edges of the last ranking are CSR by
destination (per-account offsets, then source, weight, time and hash per edge), so the transition
matrix is built without a sort and an account's in-edges are one contiguous range, searched by
source. New edges go to a delta (the same columns, an open-addressing table of slots, and a
per-destination list) merged in at the next ranking. No per-edge or per-account Python objects
(but a bounded cache of recently used ids in front of the index).

Amortised ranking. A ranking runs inside `observe`, at a point of the stream decided by the
stream alone (deterministic on every replay), once the changes since the last one reach a
half of the graph's size (and `refresh_every_events`), or once the watermark moved
`refresh_every_seconds` and a quarter of the graph changed: its O(V + E) cost is O(1) per event.
Between rankings an account's PageRank is estimated in O(1) per interaction: every new
interaction u -> v adds damping * pr(u) * w / max(out(u), 1) to v, with pr from the last ranking.

Percentiles rank only accounts with evidence: those that authored an event within the reach
horizon (accounts seen only as targets or mentions do not pad the population). The percentile
is the fraction of those ranked with a strictly lower PageRank (ties share the lower rank, so a
bottom block of accounts without reach gets 0). Followers are a separate path (the rule's
`followers_threshold`), not part of the percentile.

Hysteresis. An account becomes influential by rank when it has the reach and its percentile
reaches `rules.influence_percentile`; it stays so until the percentile falls below that minus
`percentile_hysteresis` or its reach falls below the minimum. `observe` reports the accounts that
became influential on an interaction toward them, when they are watched (they posted something
negative within the window): the interaction is the honest trigger of a rise alert.

State only: every method takes the policy (`GraphPolicy`) it needs; nothing of the settings is
kept here, so a resumed graph runs under the current settings.
"""

from __future__ import annotations

import math
import sys
import zlib
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx as nx

from operators.influence_policy import GraphPolicy, Touch, event_hash
from operators.influence_rank import weighted_pagerank
from operators.node_index import NodeIndex, probe_table, table_size
from operators.records import Influence

_GROWTH_FRACTION = 0.5
"""Re-rank once the changes since the last ranking are this fraction of the graph's size."""

_TIME_FRACTION = 0.25
"""The watermark trigger needs this fraction of the graph changed (so it stays amortised)."""

_COMPACT_FRACTION = 0.25
"""Renumber the nodes once forgotten and idle accounts are this fraction of them."""

_SMALL_RANGE = 32
"""In-edge ranges shorter than this are counted in Python (no numpy call overhead)."""

_LOW32 = 0xFFFFFFFF

_GOLDEN = 0x9E3779B97F4A7C15
"""Fibonacci hashing of edge keys: the top bits of key * golden (mod 2^64) pick the slot."""

_M64 = (1 << 64) - 1

_MIN_DELTA_TABLE = 16

_NEG_INF = -math.inf

_crc32 = zlib.crc32

_STATE_VERSION = 4


__all__ = ["GraphPolicy", "InfluenceGraph", "Touch", "event_hash"]


class InfluenceGraph:
    """Decaying, brand-filtered interaction graph with exact reach and an amortised ranking."""

    def __init__(self) -> None:
        # Nodes: customer id <-> number (compact, exact), then one column entry per number.
        self._ids = NodeIndex()
        self._intern = self._ids.intern  # bound once: the hot path's account lookups
        self._recent = self._ids.recent
        # Follower counts, and the event time of each (the latest wins). Allocated up to the
        # highest account that ever had one: feeds without counts pay nothing.
        self._followers = array("q")
        self._followers_t = array("d")
        self._authored = array("d")  # last event time the account authored something
        # Accounts watched for rises (they posted something negative) -> until when (watermark).
        # Sparse: few accounts posted something negative within the window.
        self._watch: dict[int, float] = {}
        self._above = bytearray()  # influential by rank (hysteresis state)
        self._gain = array("d")  # PageRank estimated to have arrived since the last ranking
        self._out = array("d")  # out-weight (decayed at the last ranking, plus new weight)
        self._authors = 0  # accounts that ever authored (before the first ranking)
        self._removed = 0  # forgotten accounts not yet compacted away
        # Edges of the last ranking, CSR by destination: node d's in-edges are the slots
        # in_start[d]:in_start[d + 1], sorted by source; weight (at `last`), newest time, hash.
        self._n_base = 0
        self._in_start = array("I", [0])
        self._src = array("I")
        self._w = array("d")
        self._last = array("d")
        self._h = array("I")
        # Edges new since: key dst << 32 | src, same columns; found through an open-addressing
        # table of slots, and per destination through a list (head per node, next per edge).
        self._dk = array("q")
        self._dw = array("d")
        self._dl = array("d")
        self._dh = array("I")
        self._dnext = array("i")
        self._dhead = array("i")
        self._dtable = array("i", [-1]) * _MIN_DELTA_TABLE
        self._dshift = 64 - _MIN_DELTA_TABLE.bit_length() + 1
        # Ranking of the last refresh.
        self._pr = array("d")  # indexed like the nodes at that time
        self._base = 0.0  # PageRank of an account nobody interacts with
        self._n_ranked = 0
        self._sorted_authors = array("d")  # quantised PageRank of the accounts with evidence
        self._changes = 0
        self._due = -1.0  # -1: not ranked yet
        self._time_due = 1.0
        self._gate = 0.0  # min(_due, _time_due) once ranked: fewer changes never re-rank
        self._next_time = math.inf
        self.refresh_count = 0
        self.last_iterations = 0

    # ------------------------------------------------------------------ observe (hot path)

    def observe(
        self, touch: Touch, watermark: float, author_is_brand: bool, policy: GraphPolicy
    ) -> list[tuple[str, Influence]]:
        """Record one event; returns the watched accounts that became influential by rank on it.

        May re-rank (see the module docstring); never reads the wall clock.
        """
        t = touch.ts
        recent = self._recent
        authored = self._authored
        author = touch.author
        src = recent(author)
        if src is None:
            src = self._intern(author)
            if src == len(authored):
                self._add_node()
        if authored[src] < t:
            if authored[src] == _NEG_INF:
                self._authors += 1
            authored[src] = t
        if touch.followers is not None:
            self._set_followers(src, touch.followers, t)
        compound = touch.compound
        if compound is not None and compound <= policy.watch_compound:
            until = t + policy.watch_seconds
            if until > self._watch.get(src, _NEG_INF):
                self._watch[src] = until
        risen: list[tuple[str, Influence]] = []
        target = touch.target
        dst = -1
        if target is not None:
            dst = recent(target)
            if dst is None:
                dst = self._intern(target)
                if dst == len(authored):
                    self._add_node()
            if touch.target_followers is not None:
                self._set_followers(dst, touch.target_followers, t)
        if not author_is_brand and not touch.edit:
            # An edit re-scores its post: its interactions were counted already. An interaction
            # outside the reach horizon does not count: it would be dropped at the next ranking.
            # Rises are checked for watched accounts (before the watermark moves, for all).
            counts = t >= watermark - policy.horizon
            h = -1
            if counts and dst >= 0 and dst != src:
                weight = policy.kind_weights.get(touch.kind, 0.0)
                if weight > 0.0:
                    h = _crc32(touch.key.encode())  # event_hash(touch.key), inlined
                    if self._interact(src, dst, weight, t, h, watermark, policy) and (
                        self._watch or watermark == _NEG_INF
                    ):
                        self._check_rise(target, dst, watermark, policy, risen)  # type: ignore[arg-type]
            mentions = touch.mentions
            if mentions and policy.mention_weight > 0.0:
                if counts and h < 0:
                    h = _crc32(touch.key.encode())
                done = (src, dst)
                for mention in mentions:
                    m = recent(mention)  # known even when the interaction does not count
                    if m is None:
                        m = self._intern(mention)
                        if m == len(authored):
                            self._add_node()
                    if m in done:
                        continue
                    done = (*done, m)
                    if (
                        counts
                        and self._interact(src, m, policy.mention_weight, t, h, watermark, policy)
                        and (self._watch or watermark == _NEG_INF)
                    ):
                        self._check_rise(mention, m, watermark, policy, risen)
        # Every trigger needs at least `_gate` changes: one comparison on most events.
        if self._changes >= self._gate:
            if self._due < 0:
                if self._authors >= policy.min_accounts:
                    self.refresh(watermark, policy)
            elif self._changes >= self._due or (
                watermark >= self._next_time and self._changes >= self._time_due
            ):
                self.refresh(watermark, policy)
        return risen

    def _add_node(self) -> None:
        """The columns of the account the index just numbered (interned, not here yet)."""
        self._authored.append(-math.inf)
        self._above.append(0)
        self._gain.append(0.0)
        self._out.append(0.0)
        self._dhead.append(-1)
        self._changes += 1

    def _set_followers(self, i: int, followers: int, t: float) -> None:
        # The latest count by event time wins, so a late event cannot roll a count back.
        times = self._followers_t
        if i >= len(times):
            missing = i + 1 - len(times)
            times.extend(array("d", [-math.inf]) * missing)
            self._followers.extend(array("q", bytes(8 * missing)))
        if t >= times[i]:
            times[i] = t
            self._followers[i] = min(followers, 2**62)

    def _followers_of(self, i: int) -> int:
        return self._followers[i] if i < len(self._followers) else 0

    def _interact(
        self, src: int, dst: int, weight: float, t: float, h: int, wm: float, policy: GraphPolicy
    ) -> bool:
        """Add one interaction to edge src -> dst; False when it does not count (see above)."""
        j = -1
        n_base = self._n_base
        if dst < n_base and src < n_base:  # maybe an edge of the last ranking: search dst's
            start = self._in_start
            lo = start[dst]
            hi = start[dst + 1]
            if lo < hi:
                sources = self._src
                j = bisect_left(sources, src, lo, hi)
                if j == hi or sources[j] != src:
                    j = -1
        if j >= 0:
            ws, ls, hs = self._w, self._last, self._h
        else:  # an edge new since: probe the delta's table
            key = (dst << 32) | src
            keys, table = self._dk, self._dtable
            mask = len(table) - 1
            slot = ((key * _GOLDEN) & _M64) >> self._dshift
            j = table[slot]
            while j >= 0 and keys[j] != key:
                slot = (slot + 1) & mask
                j = table[slot]
            if j >= 0:
                ws, ls, hs = self._dw, self._dl, self._dh
            else:
                j = len(keys)
                table[slot] = j
                keys.append(key)
                self._dw.append(weight)
                self._dl.append(t)
                self._dh.append(h)
                head = self._dhead
                self._dnext.append(head[dst])
                head[dst] = j
                if 3 * (j + 1) > 2 * (mask + 1):
                    self._index_delta_table()
                j = -1
        if j >= 0:
            last, last_h = ls[j], hs[j]
            if t > last or (t == last and h > last_h):
                ws[j] = ws[j] * math.exp(-policy.lam * (t - last)) + weight
                ls[j] = t
                hs[j] = h
            elif t == last and h == last_h:
                return False  # the same event again
            elif t >= wm - policy.dedupe_seconds:
                ws[j] += weight * math.exp(-policy.lam * (last - t))  # late, but surely new
            else:
                return False  # older than the edge's newest and than the memory of ids
        out = self._out[src] + weight
        self._out[src] = out
        ranks = self._pr
        pr = ranks[src] if src < len(ranks) else self._base
        self._gain[dst] += policy.damping * pr * weight / (out if out > 1.0 else 1.0)
        self._changes += 1
        return True

    def _check_rise(
        self,
        customer_id: str,
        i: int,
        wm: float,
        policy: GraphPolicy,
        risen: list[tuple[str, Influence]],
    ) -> None:
        if self._above[i] or self._watch.get(i, -math.inf) < wm or self._due < 0:
            return
        influence = self._assess(i, wm, policy)
        if influence.by_rank:
            risen.append((customer_id, influence))

    # ------------------------------------------------------------------ queries

    def inbound_accounts(self, customer_id: str, watermark: float, policy: GraphPolicy) -> int:
        """Distinct non-brand accounts that interacted with the account within the horizon."""
        i = self._ids.find(customer_id)
        return 0 if i < 0 else self._inbound(i, watermark - policy.horizon)

    def _inbound(self, i: int, cutoff: float) -> int:
        n = 0
        if i < self._n_base:
            lo = self._in_start[i]
            hi = self._in_start[i + 1]
            last = self._last
            if hi - lo < _SMALL_RANGE:
                for j in range(lo, hi):
                    if last[j] >= cutoff:
                        n += 1
            else:
                n = int(np.count_nonzero(np.frombuffer(last, dtype=np.float64)[lo:hi] >= cutoff))
        j = self._dhead[i]
        if j >= 0:
            dl, dnext = self._dl, self._dnext
            while j >= 0:
                if dl[j] >= cutoff:
                    n += 1
                j = dnext[j]
        return n

    def influence_of(self, customer_id: str, watermark: float, policy: GraphPolicy) -> Influence:
        """The account's influence now (and its hysteresis state updated)."""
        i = self._ids.find(customer_id)
        if i < 0:
            return Influence(0.0, self._percentile_or_none(0.0, policy), 0, 0.0, 0, self._n_ranked)
        return self._assess(i, watermark, policy)

    def _percentile_or_none(self, pct: float, policy: GraphPolicy) -> float | None:
        return None if self._due < 0 or self._n_ranked < policy.min_accounts else pct

    def pagerank_estimate(self, customer_id: str) -> float:
        """PageRank at the last ranking plus what arrived since (0 for an unknown account)."""
        i = self._ids.find(customer_id)
        return 0.0 if i < 0 else self._estimate(i)

    def _estimate(self, i: int) -> float:
        pr = self._pr[i] if i < len(self._pr) else self._base
        return pr + self._gain[i]

    def _assess(self, i: int, wm: float, policy: GraphPolicy) -> Influence:
        inbound = self._inbound(i, wm - policy.horizon)
        pagerank = self._estimate(i)
        n = self._n_ranked
        ranked = n if self._due >= 0 else 0
        followers = self._followers_of(i)
        if ranked == 0 or n < policy.min_accounts:
            self._above[i] = 0
            return Influence(0.0, None, followers, pagerank, inbound, ranked, False)
        pct = 0.0
        if inbound >= policy.min_inbound:
            q = round(pagerank * len(self._pr), 9)
            pct = bisect_left(self._sorted_authors, q) / n
        held = self._above[i] and pct >= policy.threshold - policy.hysteresis
        by_rank = inbound >= policy.min_inbound and (pct >= policy.threshold or bool(held))
        self._above[i] = 1 if by_rank else 0
        return Influence(pct, pct, followers, pagerank, inbound, n, by_rank)

    def __contains__(self, customer_id: object) -> bool:
        return isinstance(customer_id, str) and self._ids.find(customer_id) >= 0

    @property
    def known_accounts(self) -> int:
        """How many accounts the graph knows (authors, targets, mentions; not forgotten)."""
        return len(self._ids) - self._removed

    @property
    def edge_count(self) -> int:
        """Stored (src, dst) edges, including the delta and expired ones not yet dropped."""
        return len(self._src) + len(self._dk)

    @property
    def ranked_accounts(self) -> int:
        """How many accounts with evidence the last ranking ranked."""
        return self._n_ranked

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held, by part: every container's own size (`sys.getsizeof`, allocation
        included), the id strings (the index's blob) included; nothing estimated."""
        edges = _sizes(self._in_start, self._src, self._w, self._last, self._h)
        delta = _sizes(self._dk, self._dw, self._dl, self._dh, self._dnext, self._dtable)
        nodes = _sizes(
            self._followers,
            self._followers_t,
            self._authored,
            self._above,
            self._gain,
            self._out,
            self._dhead,
        )
        ranking = _sizes(self._pr, self._sorted_authors)
        watch = sys.getsizeof(self._watch) + sum(
            sys.getsizeof(i) + sys.getsizeof(until) for i, until in self._watch.items()
        )
        return {
            "edges": edges,
            "delta": delta,
            "nodes": nodes + watch,
            "ranking": ranking,
            "index": self._ids.memory_bytes(),
        }

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
        size = max(_MIN_DELTA_TABLE, table_size(len(keys)))
        shift = 65 - size.bit_length()  # the top log2(size) bits of the 64-bit product
        self._dshift = shift
        homes = (keys.view(np.uint64) * np.uint64(_GOLDEN)) >> np.uint64(shift)
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

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        # Compact columns only (arrays pickle as raw bytes); tables and lists are rebuilt on load.
        watch = self._watch
        return {
            "v": _STATE_VERSION,
            "ids": self._ids,
            "columns": {name: getattr(self, name) for name in _COLUMNS},
            "watch": (array("I", watch.keys()), array("d", watch.values())),
            "scalars": tuple(getattr(self, name) for name in _SCALARS),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("v") != _STATE_VERSION:
            raise ValueError(
                "unsupported InfluenceGraph state (a snapshot of an older version): "
                "resume needs a recovery directory written by this version"
            )
        self._ids = state["ids"]
        self._intern = self._ids.intern
        self._recent = self._ids.recent
        for name, value in state["columns"].items():
            setattr(self, name, value)
        nodes, until = state["watch"]
        self._watch = dict(zip(nodes.tolist(), until.tolist(), strict=True))
        for name, value in zip(_SCALARS, state["scalars"], strict=True):
            setattr(self, name, value)
        self._index_delta_table()
        self._index_delta_lists()


_COLUMNS = (
    "_followers",
    "_followers_t",
    "_authored",
    "_above",
    "_gain",
    "_out",
    "_in_start",
    "_src",
    "_w",
    "_last",
    "_h",
    "_dk",
    "_dw",
    "_dl",
    "_dh",
    "_pr",
    "_sorted_authors",
)
"""The per-node and per-edge columns a snapshot holds (arrays: pickled as raw bytes)."""

_SCALARS = (
    "_authors",
    "_removed",
    "_n_base",
    "_base",
    "_n_ranked",
    "_changes",
    "_due",
    "_time_due",
    "_gate",
    "_next_time",
    "refresh_count",
    "last_iterations",
)


def _sizes(*containers: object) -> int:
    return sum(sys.getsizeof(c) for c in containers)


def _to_array(typecode: str, values: np.ndarray) -> array:
    """A numpy vector as a compact, bisectable, picklable `array.array`."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out
