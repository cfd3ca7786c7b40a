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

Storage (~82 bytes per live edge on the Higgs stream by getsizeof, ~91 by tracemalloc, ids and
indexes included: see `memory_bytes` and benchmarks/influence_higgs.py). Accounts are numbered by
a compact exact index (`operators.node_index`); per-account values are array columns, the sparse
ones (follower counts, watches) only where present. The edges of the last ranking are CSR by
destination (per-account offsets, then source, weight, time and hash per edge), so the transition
matrix is built without a sort and an account's in-edges are one contiguous range, searched by
source. New edges go to a delta (the same columns, an open-addressing table of slots, and a
per-destination list) merged in at the next ranking. No per-edge or per-account Python objects
(but a bounded cache of recently used ids in front of the index).

Ranking (`operators.influence_refresh`, with PageRank in `operators.influence_rank`): a
weighted PageRank of the decayed graph, re-ranked inside `observe` at points of the stream
decided by the stream alone, amortised to O(1) per event. Between rankings, each new interaction
adds its share to its target's estimated PageRank (in `_interact`).

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
from typing import Any

import numpy as np

from operators.influence_policy import GraphPolicy, Touch, event_hash
from operators.influence_refresh import DELTA_GOLDEN, MIN_DELTA_TABLE, GraphRefresh
from operators.node_index import NodeIndex
from operators.records import Influence

_SMALL_RANGE = 32
"""In-edge ranges shorter than this are counted in Python (no numpy call overhead)."""

_M64 = (1 << 64) - 1

_NEG_INF = -math.inf

_crc32 = zlib.crc32

_STATE_VERSION = 4


__all__ = ["GraphPolicy", "InfluenceGraph", "Touch", "event_hash"]


class InfluenceGraph(GraphRefresh):
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
        self._dtable = array("i", [-1]) * MIN_DELTA_TABLE
        self._dshift = 64 - MIN_DELTA_TABLE.bit_length() + 1
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
            slot = ((key * DELTA_GOLDEN) & _M64) >> self._dshift
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
