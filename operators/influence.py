"""The decaying interaction graph and the influence ranking derived from it.

Graph. Every reply, quote, repost, like, follow and mention is a directed edge from its author to
the account it targets, weighted by its kind (`InfluenceSettings.kind_weights`) and decaying
exponentially with *event* time (`half_life_seconds`). Parallel interactions add up on one edge.
Self-loops are ignored, and so is every interaction authored by a brand account (a support reply
is not reach). The auto-mention of a reply's own target is not counted a second time.

Decay in O(1). A weight w observed at event time t is stored as w * exp(lam * (t - t_ref)) (growth
form) for a reference time t_ref, so nothing is touched when time advances: the decayed weight
at the graph clock T is the stored one times exp(-lam * (T - t_ref)), the same factor for every
edge. PageRank is scale-invariant, so the ranking uses the stored weights directly. When the
exponent grows large the store is rebased (one vectorised multiply). The graph clock is the
largest event time seen, so out-of-order events decay correctly and a replay is repeatable.

Ranking. Weighted PageRank (damping `damping`, uniform teleport, dangling mass spread uniformly,
i.e. `networkx.pagerank` semantics) by scipy.sparse power iteration, warm-started from the last
vector, run to an L1 change below 1e-8 (tighter than networkx's default, which stops at an L1
change of N * 1e-6). Every account the graph knows is ranked: authors, targets and mentioned
accounts (a brand's reply still records that its target exists, just not the edge). It is
recomputed inside `observe` - never on wall clock - when the ranking has at least
`min_accounts_to_rank` accounts to rank and something changed, and either
`refresh_every_events` interactions arrived since the last refresh, or event time advanced by
`refresh_every_seconds` and at least 0.5% of the graph changed, or the graph grew by a quarter
since it was last ranked (so a small, young graph is re-ranked often while that is cheap;
geometric, so amortised O(1)).

Influence score. Followers and PageRank live on unrelated scales (a heavy-tailed count versus a
probability that shrinks with the graph), so each is turned into a percentile among the ranked
accounts (fraction of accounts with a strictly lower value) and the score is their maximum:

    score = max(followers percentile, pagerank percentile)

The maximum makes influence an OR, like the alert rule itself (percentile or follower count): an
account with an ordinary audience that many distinct accounts reply to, repost and mention is
influential through the graph alone, and a famous account that nobody interacts with this week is
influential through its audience alone. A mean or product would pull both of them down to the
middle, which is exactly what the product issue forbids. The reported `percentile` is the
fraction of ranked accounts with a strictly lower score (ties at the bottom get 0), so it stays
uniform even though a maximum of two percentiles is skewed upwards. Between refreshes, an
account's followers percentile uses its current follower count against the last refresh's
sorted follower counts (bisect), and accounts new since then have PageRank 0.

Memory. Interactions older than `PRUNE_HALF_LIVES` half-lives are below 2**-20 of a fresh one;
such edges, and accounts idle that long without any live edge, are dropped when they make up a
quarter of the graph (amortised compaction at a refresh). `forget` is lazy: the account disappears
at once, its edges at the next refresh.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from typing import Any

import networkx as nx
import numpy as np
from scipy import sparse

from config.settings import InfluenceSettings
from operators.brands import BrandAccounts
from operators.events import SocialEvent
from operators.records import Influence

PRUNE_HALF_LIVES = 20
"""Edges decayed below 2**-PRUNE_HALF_LIVES of a fresh unit interaction are dead."""

_REBASE_EXPONENT = 40.0
"""Rebase growth-form weights once exp(lam * (clock - t_ref)) would exceed e**40."""

_PAGERANK_TOL = 1e-8
"""Power iteration stops when the L1 change of the vector (which sums to 1) is below this."""

_PAGERANK_MAX_ITER = 500

_COMPACT_FRACTION = 0.25
"""Compact when dead edges and expired accounts are this fraction of the graph."""

_GROWTH_FRACTION = 0.25
"""Re-rank when the graph grew by this fraction since the last ranking."""

_TIME_TRIGGER_FRACTION = 0.005
"""The event-time trigger needs this fraction of the graph changed: a handful of events in a
quiet stretch cannot move a large ranking, and re-ranking 300k accounts for them every
`refresh_every_seconds` would dominate a backfill."""

_STATE_VERSION = 2

_REFRESH_FIELDS = (
    "_dirty",
    "_interactions_since",
    "_accounts_since",
    "_refresh_clock",
    "_next_refresh_clock",
    "_growth_due",
    "_total_interactions",
    "refresh_count",
    "last_iterations",
)
"""The refresh bookkeeping, in the order the snapshot stores it."""


def _default_kind_weights() -> dict[str, float]:
    return dict(InfluenceSettings().kind_weights)


class InfluenceGraph:
    """Decaying, brand-filtered interaction graph with an incremental influence ranking."""

    def __init__(
        self,
        settings: InfluenceSettings,
        brands: BrandAccounts,
        watch_percentile: float | None = None,
    ) -> None:
        """An empty graph; `brands` are the accounts whose interactions do not count.

        With `watch_percentile`, every refresh records the accounts that rose to that influence
        percentile since the previous one (`take_risen()`): the alert rule's threshold, so that
        a customer who is already unhappy is alerted when their reach grows, not only when they
        post again.
        """
        self._settings = settings
        self._brands = brands
        self._watch = watch_percentile
        self._above: set[str] = set()  # accounts at or above the watched percentile
        self._risen: list[str] = []  # accounts that rose there at the last refreshes
        self._init_derived()
        # Nodes: customer id <-> index, per-index columns. Tombstones (forgotten) hold None.
        self._index: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._followers = array("q")
        self._followers_t = array("d")  # event time of the follower count kept (latest wins)
        self._seen = array("d")  # last event time the account authored something (or appeared)
        self._inbound = array("l")  # distinct accounts with an edge into the node
        self._removed = 0  # tombstones not yet compacted
        # Edges, aggregated per (src, dst): key src << 32 | dst -> edge index.
        self._edge_index: dict[int, int] = {}
        self._src = array("i")
        self._dst = array("i")
        self._w = array("d")  # growth form, relative to t_ref
        self._order: np.ndarray | None = None  # edges by destination at the last refresh
        self._clock = -math.inf
        self._t_ref = 0.0
        # Refresh bookkeeping.
        self._dirty = False
        self._interactions_since = 0
        self._accounts_since = 0
        self._refresh_clock: float | None = None
        self._next_refresh_clock = math.inf  # refresh_clock + refresh_every_seconds
        self._growth_due = 0.0  # changes since the last refresh that make the graph 25% bigger
        self._time_due = 1.0  # changes the event-time trigger needs (0.5% of the graph)
        self._total_interactions = 0
        self.refresh_count = 0
        self.last_iterations = 0
        # Ranking of the last refresh, indexed like the nodes at that time.
        self._n_ranked = 0
        self._pagerank = array("d")
        self._pp = array("d")  # pagerank percentile
        self._sorted_followers = array("q")
        self._sorted_scores = array("d")

    def _init_derived(self) -> None:
        settings = self._settings
        self._lam = math.log(2.0) / settings.half_life_seconds
        self._horizon = PRUNE_HALF_LIVES * settings.half_life_seconds
        weights = _default_kind_weights()
        weights.update(settings.kind_weights)
        self._kind_w = weights
        self._mention_w = weights.get("mention", 0.0)
        self._has_brands = bool(self._brands)
        self._alpha = settings.damping
        self._every_events = settings.refresh_every_events
        self._every_seconds = settings.refresh_every_seconds
        self._min_accounts = settings.min_accounts_to_rank

    def reconfigure(
        self,
        settings: InfluenceSettings,
        brands: BrandAccounts,
        watch_percentile: float | None = None,
    ) -> None:
        """Apply the current settings to a graph restored from a snapshot (recovery resume).

        A snapshot holds the settings of the run that took it; without this, changed
        `brand_accounts` or `[influence]` settings would be ignored until the state is dropped.
        Recorded interactions keep their weights: a new half-life applies from the graph clock
        on (the stored weights are first decayed to the clock under the old one), new kind
        weights and brands apply to new interactions.
        """
        if settings.half_life_seconds != self._settings.half_life_seconds:
            self._rebase()
        self._settings = settings
        self._brands = brands
        self._watch = watch_percentile
        self._init_derived()

    # ------------------------------------------------------------------ observe (hot path)

    def observe(self, event: SocialEvent) -> None:
        """Record one event: the author (and its followers), and its interactions as edges.

        May recompute the ranking (see the module docstring); never reads the wall clock.
        """
        t = event.created_at.timestamp()
        if t > self._clock:
            self._clock = t
            if (t - self._t_ref) * self._lam > _REBASE_EXPONENT:
                self._rebase()
        author = event.author
        platform = event.platform
        src_id = f"{platform}:{author.id}"
        src = self._index.get(src_id)
        if src is None:
            src = self._add_node(src_id, t)
        elif t > self._seen[src]:
            self._seen[src] = t
        if author.followers is not None:
            self._set_followers(src, author.followers, t)
        if event.target is not None or event.mentions:
            self._interact(event, src, src_id, t)
        # The refresh policy, inlined: it runs for every event.
        if (
            self._dirty
            and (
                self._interactions_since >= self._every_events
                or (
                    self._clock >= self._next_refresh_clock
                    and self._interactions_since + self._accounts_since >= self._time_due
                )
                or self._interactions_since + self._accounts_since >= self._growth_due
            )
            and len(self._index) >= self._min_accounts
        ):
            self.refresh()

    def _add_node(self, customer_id: str, t: float) -> int:
        i = len(self._ids)
        self._index[customer_id] = i
        self._ids.append(customer_id)
        self._followers.append(0)
        self._followers_t.append(-math.inf)
        self._seen.append(t)
        self._inbound.append(0)
        self._accounts_since += 1
        self._dirty = True
        return i

    def _set_followers(self, i: int, followers: int, t: float) -> None:
        # The latest count by event time wins, so a late event cannot roll a count back.
        if t >= self._followers_t[i]:
            self._followers_t[i] = t
            followers = min(followers, 2**62)
            if self._followers[i] != followers:
                self._followers[i] = followers
                self._dirty = True

    def _interact(self, event: SocialEvent, src: int, src_id: str, t: float) -> None:
        platform = event.platform
        index = self._index
        target = event.target
        dst = -1
        if target is not None:
            target_id = f"{platform}:{target.id}"
            dst = index.get(target_id, -1)
            if dst < 0:
                dst = self._add_node(target_id, t)
            if target.followers is not None:
                self._set_followers(dst, target.followers, t)
        if self._has_brands and self._brands.matches(src_id, event.author.handle):
            return
        if t < self._clock - self._horizon:
            return  # already decayed below the pruning floor
        growth = math.exp((t - self._t_ref) * self._lam)
        added = False
        if dst >= 0 and dst != src:
            weight = self._kind_w.get(event.kind, 0.0)
            if weight > 0.0:
                # _add_edge inlined: the target edge is the common case.
                key = (src << 32) | dst
                e = self._edge_index.get(key)
                if e is None:
                    self._edge_index[key] = len(self._w)
                    self._src.append(src)
                    self._dst.append(dst)
                    self._w.append(weight * growth)
                    self._inbound[dst] += 1
                else:
                    self._w[e] += weight * growth
                added = True
        mentions = event.mentions
        if mentions and self._mention_w > 0.0:
            weight = self._mention_w * growth
            done = {dst, src}
            for mention in mentions:
                mention_id = f"{platform}:{mention.id}"
                m = index.get(mention_id, -1)
                if m < 0:
                    m = self._add_node(mention_id, t)
                elif m in done:
                    continue
                done.add(m)
                self._add_edge(src, m, weight)
                added = True
        if added:
            self._interactions_since += 1
            self._total_interactions += 1
            self._dirty = True

    def _add_edge(self, src: int, dst: int, weight: float) -> None:
        key = (src << 32) | dst
        e = self._edge_index.get(key)
        if e is None:
            self._edge_index[key] = len(self._w)
            self._src.append(src)
            self._dst.append(dst)
            self._w.append(weight)
            self._inbound[dst] += 1
        else:
            self._w[e] += weight

    def _rebase(self) -> None:
        """Move t_ref to the clock: every stored weight times exp(-lam * (clock - t_ref))."""
        factor = math.exp(-(self._clock - self._t_ref) * self._lam)
        if self._w:
            view = np.frombuffer(self._w, dtype=np.float64)
            view *= factor
            del view  # release the buffer so the array can grow again
        self._t_ref = self._clock

    # ------------------------------------------------------------------ queries

    def influence_of(self, customer_id: str) -> Influence:
        """The account's influence now: O(log n) against the last refresh's sorted arrays."""
        i = self._index.get(customer_id)
        if i is None:
            followers = inbound = 0
            pagerank = pp = 0.0
        else:
            followers = self._followers[i]
            inbound = self._inbound[i]
            if i < len(self._pp):
                pagerank = self._pagerank[i]
                pp = self._pp[i]
            else:
                pagerank = pp = 0.0
        n = self._n_ranked
        if n == 0:
            return Influence(0.0, None, followers, pagerank, inbound, 0)
        score = max(bisect_left(self._sorted_followers, followers) / n, pp)
        percentile: float | None = None
        if len(self._index) >= self._min_accounts:
            percentile = bisect_left(self._sorted_scores, score) / n
        return Influence(score, percentile, followers, pagerank, inbound, n)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._index

    @property
    def known_accounts(self) -> int:
        """How many accounts the graph knows (authors, targets, mentions; not forgotten)."""
        return len(self._index)

    @property
    def edge_count(self) -> int:
        """Stored (src, dst) edges, including dead ones not yet compacted."""
        return len(self._w)

    @property
    def clock(self) -> float | None:
        """The graph clock: the largest event time seen (Unix seconds), None before any event."""
        return None if self._clock == -math.inf else self._clock

    @property
    def ranked_accounts(self) -> int:
        """How many accounts the last refresh ranked."""
        return self._n_ranked

    def decay_factor(self) -> float:
        """Stored weight times this = weight decayed to the graph clock."""
        if self._clock == -math.inf:
            return 1.0
        return math.exp(-(self._clock - self._t_ref) * self._lam)

    def to_networkx(self) -> nx.DiGraph:
        """The current graph with decayed weights (edge attribute `weight`), for checks."""
        graph = nx.DiGraph()
        ids = self._ids
        for i, customer_id in enumerate(ids):
            if customer_id is not None:
                graph.add_node(customer_id, followers=self._followers[i])
        factor = self.decay_factor()
        for s, d, w in zip(self._src, self._dst, self._w, strict=True):
            s_id, d_id = ids[s], ids[d]
            if s_id is not None and d_id is not None:
                graph.add_edge(s_id, d_id, weight=w * factor)
        return graph

    # ------------------------------------------------------------------ purge

    def forget(self, customer_id: str) -> None:
        """Drop an account (purge): gone at once from queries, its edges at the next refresh."""
        i = self._index.pop(customer_id, None)
        if i is None:
            return
        self._ids[i] = None
        self._followers[i] = 0
        self._inbound[i] = 0
        self._removed += 1
        self._dirty = True
        if i < len(self._pp):
            self._pp[i] = 0.0
            self._pagerank[i] = 0.0

    # ------------------------------------------------------------------ refresh

    def refresh(self, *, warm_start: bool = True) -> None:
        """Recompute PageRank and the percentile arrays now.

        `warm_start=False` starts the power iteration from the uniform vector (benchmarks).
        """
        self._compact_if_needed()
        n = len(self._ids)
        self.refresh_count += 1
        self._dirty = False
        self._interactions_since = 0
        self._accounts_since = 0
        self._refresh_clock = None if self._clock == -math.inf else self._clock
        self._next_refresh_clock = (
            math.inf if self._refresh_clock is None else self._refresh_clock + self._every_seconds
        )
        self._growth_due = _GROWTH_FRACTION * (self._total_interactions + n)
        self._time_due = max(1.0, _TIME_TRIGGER_FRACTION * (self._total_interactions + n))
        self._n_ranked = n
        if n == 0:
            self._pagerank = array("d")
            self._pp = array("d")
            self._sorted_followers = array("q")
            self._sorted_scores = array("d")
            self.last_iterations = 0
            return
        ranks = self._pagerank_vector(n, warm_start)
        followers = np.array(self._followers, dtype=np.int64)
        sorted_followers = np.sort(followers)
        fp = np.searchsorted(sorted_followers, followers, side="left") / n
        # Round away power-iteration noise so structurally equal accounts tie.
        quantized = np.round(ranks * n, 9)
        pp = np.searchsorted(np.sort(quantized), quantized, side="left") / n
        scores = np.maximum(fp, pp)
        sorted_scores = np.sort(scores)
        self._pagerank = _to_array("d", ranks)
        self._pp = _to_array("d", pp)
        self._sorted_followers = _to_array("q", sorted_followers)
        self._sorted_scores = _to_array("d", sorted_scores)
        if self._watch is not None and len(self._index) >= self._min_accounts:
            self._track_risen(np.searchsorted(sorted_scores, scores, side="left") / n)

    def _track_risen(self, percentiles: np.ndarray) -> None:
        ids = self._ids
        above = {cid for cid in (ids[i] for i in np.flatnonzero(percentiles >= self._watch)) if cid}
        self._risen.extend(sorted(above - self._above))  # sorted: replays emit the same order
        self._above = above

    def take_risen(self) -> list[str]:
        """Accounts that rose to the watched percentile since the last call (oldest first)."""
        risen, self._risen = self._risen, []
        return risen

    def _pagerank_vector(self, n: int, warm_start: bool) -> np.ndarray:
        src = np.array(self._src, dtype=np.int32)
        dst = np.array(self._dst, dtype=np.int32)
        w = np.array(self._w, dtype=np.float64)
        alpha = self._alpha
        out = np.bincount(src, weights=w, minlength=n)
        dangling = np.flatnonzero(out == 0.0)
        out[dangling] = 1.0  # dangling rows have no entries to scale
        matrix = self._transition_matrix(n, src, dst, w / out[src])
        # Warm start: the last vector for accounts it ranked, the uniform share for new ones.
        x = np.full(n, 1.0 / n)
        old = np.array(self._pagerank if warm_start else (), dtype=np.float64)[:n]
        if old.size:
            x[: old.size] = np.where(old > 0.0, old, 1.0 / n)
        x /= x.sum()
        teleport = (1.0 - alpha) / n
        diff = np.empty(n)
        iterations = 0
        while iterations < _PAGERANK_MAX_ITER:
            iterations += 1
            y = matrix @ x
            y *= alpha
            # A gather, not a BLAS dot: no thread pool spun up for one dot product.
            y += alpha * np.take(x, dangling).sum() / n + teleport
            np.subtract(y, x, out=diff)
            np.abs(diff, out=diff)
            x = y
            if diff.sum() < _PAGERANK_TOL:
                break
        self.last_iterations = iterations
        return x

    def _transition_matrix(
        self, n: int, src: np.ndarray, dst: np.ndarray, data: np.ndarray
    ) -> sparse.csr_array:
        """P[dst, src] = share of src's out-weight, as CSR built without scipy's index sort.

        Edges only ever get appended between compactions, so the by-destination order of the
        last refresh is kept and only the new tail is merged in (timsort: nearly linear).
        """
        e = len(data)
        order = self._order
        if order is None or len(order) > e:
            order = np.argsort(dst, kind="stable")
        elif len(order) < e:
            order = np.concatenate([order, np.arange(len(order), e)])
            order = order[np.argsort(dst[order], kind="stable")]
        self._order = order
        indptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
        return sparse.csr_array((data[order], src[order], indptr), shape=(n, n))

    def _compact_if_needed(self) -> None:
        n = len(self._ids)
        e = len(self._w)
        if self._removed == 0 and n + e < 64:
            return
        floor = 2.0**-PRUNE_HALF_LIVES / self.decay_factor()  # in growth form
        w = np.array(self._w, dtype=np.float64)
        dead_edges = int(np.count_nonzero(w < floor))
        if self._removed == 0 and dead_edges < _COMPACT_FRACTION * (n + e):
            # Idle accounts only matter once edges die too; cheap check first.
            seen = np.array(self._seen, dtype=np.float64)
            idle = int(np.count_nonzero(seen < self._clock - self._horizon))
            if dead_edges + idle < _COMPACT_FRACTION * (n + e):
                return
        self._compact(floor)

    def _compact(self, floor: float) -> None:
        """Rebuild nodes and edges without tombstones, dead edges and idle edge-less accounts."""
        n = len(self._ids)
        alive = np.array([customer_id is not None for customer_id in self._ids], dtype=bool)
        src = np.array(self._src, dtype=np.int64)
        dst = np.array(self._dst, dtype=np.int64)
        w = np.array(self._w, dtype=np.float64)
        live_edge = (w >= floor) & alive[src] & alive[dst]
        degree = np.bincount(src[live_edge], minlength=n) + np.bincount(dst[live_edge], minlength=n)
        seen = np.array(self._seen, dtype=np.float64)
        keep = alive & ((degree > 0) | (seen >= self._clock - self._horizon))
        new_index = np.cumsum(keep) - 1
        kept = np.flatnonzero(keep)
        ids = [self._ids[i] for i in kept.tolist()]
        self._ids = ids
        self._index = {customer_id: i for i, customer_id in enumerate(ids)}  # type: ignore[misc]
        self._followers = _to_array("q", np.array(self._followers, dtype=np.int64)[kept])
        self._followers_t = _to_array("d", np.array(self._followers_t, dtype=np.float64)[kept])
        self._seen = _to_array("d", seen[kept])
        new_src = new_index[src[live_edge]]
        new_dst = new_index[dst[live_edge]]
        self._src = _to_array("i", new_src.astype(np.int32))
        self._dst = _to_array("i", new_dst.astype(np.int32))
        self._w = _to_array("d", w[live_edge])
        self._edge_index = _edge_index(new_src, new_dst)
        self._order = None
        self._inbound = _to_array("l", np.bincount(new_dst, minlength=len(ids)))
        # Keep the last vector (remapped) as the next warm start.
        old = np.array(self._pagerank, dtype=np.float64)
        if old.size:
            old = np.concatenate([old, np.zeros(max(0, n - old.size))])[:n]
            self._pagerank = _to_array("d", old[kept])
            self._pp = _to_array("d", np.zeros(len(ids)))
        self._removed = 0

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        return {
            "v": _STATE_VERSION,
            "settings": self._settings,
            "brands": self._brands,
            "ids": self._ids,
            "followers": self._followers,
            "followers_t": self._followers_t,
            "seen": self._seen,
            "inbound": self._inbound,
            "removed": self._removed,
            "src": self._src,
            "dst": self._dst,
            "w": self._w,
            "clock": self._clock,
            "t_ref": self._t_ref,
            "refresh": tuple(getattr(self, name) for name in _REFRESH_FIELDS),
            "watch": (self._watch, self._above, self._risen),
            "n_ranked": self._n_ranked,
            "pagerank": self._pagerank,
            "pp": self._pp,
            "sorted_followers": self._sorted_followers,
            "sorted_scores": self._sorted_scores,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported InfluenceGraph state version {state.get('v')!r}")
        self._settings = state["settings"]
        self._brands = state["brands"]
        self._init_derived()
        self._ids = state["ids"]
        self._index = {cid: i for i, cid in enumerate(self._ids) if cid is not None}
        self._followers = state["followers"]
        self._followers_t = state["followers_t"]
        self._seen = state["seen"]
        self._inbound = state["inbound"]
        self._removed = state["removed"]
        self._src = state["src"]
        self._dst = state["dst"]
        self._w = state["w"]
        self._edge_index = _edge_index(
            np.array(self._src, dtype=np.int64), np.array(self._dst, dtype=np.int64)
        )
        self._order = None
        self._clock = state["clock"]
        self._t_ref = state["t_ref"]
        for name, value in zip(_REFRESH_FIELDS, state["refresh"], strict=True):
            setattr(self, name, value)
        self._time_due = max(1.0, self._growth_due / _GROWTH_FRACTION * _TIME_TRIGGER_FRACTION)
        self._watch, self._above, self._risen = state["watch"]
        self._n_ranked = state["n_ranked"]
        self._pagerank = state["pagerank"]
        self._pp = state["pp"]
        self._sorted_followers = state["sorted_followers"]
        self._sorted_scores = state["sorted_scores"]


def _to_array(typecode: str, values: np.ndarray) -> array:
    """A numpy vector as a compact, bisectable, picklable `array.array`."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out


def _edge_index(src: np.ndarray, dst: np.ndarray) -> dict[int, int]:
    keys = (src.astype(np.int64) << 32) | dst.astype(np.int64)
    return dict(zip(keys.tolist(), range(len(keys)), strict=True))
