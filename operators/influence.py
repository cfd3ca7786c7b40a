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

Edges are stored sorted by (destination, source), so the transition matrix is CSR without a sort
and an account's in-edges are one contiguous range. New edges go to a small delta (dict) merged
in at the next ranking.

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
import zlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    import networkx as nx

from config.settings import Settings
from operators.records import Influence

_PAGERANK_TOL = 1e-7
"""Power iteration stops when the L1 change of the vector (which sums to 1) is below this."""

_PAGERANK_MAX_ITER = 500

_GROWTH_FRACTION = 0.5
"""Re-rank once the changes since the last ranking are this fraction of the graph's size."""

_TIME_FRACTION = 0.25
"""The watermark trigger needs this fraction of the graph changed (so it stays amortised)."""

_COMPACT_FRACTION = 0.25
"""Renumber the nodes once forgotten and idle accounts are this fraction of them."""

_SMALL_RANGE = 32
"""In-edge ranges shorter than this are counted in Python (no numpy call overhead)."""

_LOW32 = 0xFFFFFFFF

_STATE_VERSION = 3


@dataclass(frozen=True, slots=True)
class GraphPolicy:
    """The settings the graph needs, derived once per flow (never stored in the state)."""

    lam: float
    horizon: float
    min_inbound: int
    damping: float
    min_accounts: int
    refresh_floor: int
    refresh_seconds: float
    kind_weights: dict[str, float] = field(hash=False)
    mention_weight: float
    threshold: float
    hysteresis: float
    watch_compound: float
    watch_seconds: float
    dedupe_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphPolicy:
        """The policy of these settings."""
        inf = settings.influence
        defaults = type(inf)().kind_weights
        weights = {**defaults, **inf.kind_weights}
        return cls(
            lam=math.log(2.0) / inf.half_life_seconds,
            horizon=float(inf.reach_horizon_seconds),
            min_inbound=inf.min_inbound_accounts,
            damping=inf.damping,
            min_accounts=inf.min_accounts_to_rank,
            refresh_floor=inf.refresh_every_events,
            refresh_seconds=float(inf.refresh_every_seconds),
            kind_weights=weights,
            mention_weight=weights.get("mention", 0.0),
            threshold=settings.rules.influence_percentile,
            hysteresis=inf.percentile_hysteresis,
            watch_compound=settings.rules.unhappy_mean_compound,
            watch_seconds=float(
                settings.window.length_seconds + settings.window.allowed_lateness_seconds
            ),
            dedupe_seconds=float(settings.flow.dedupe_seconds),
        )


class Touch(NamedTuple):
    """What the graph stage needs of one event: a compact record, no text.

    `author`, `target` and `mentions` are customer ids (`platform:id`). `compound` is the
    sentiment of the event's scored post (None when it has none); `post` says that a scored post
    of this event went to the author's customer stage and waits for its influence.

    A named tuple, not a frozen dataclass: one is built for every event, and a frozen dataclass's
    `__init__` (a guarded `setattr` per field) was most of what building one cost. It pickles as
    a plain tuple when it crosses workers.
    """

    key: str
    event_id: str
    ts: float
    kind: str
    author: str
    handle: str | None
    followers: int | None
    target: str | None = None
    target_followers: int | None = None
    mentions: tuple[str, ...] = ()
    compound: float | None = None
    post: bool = False
    edit: bool = False
    read_ns: int = 0
    """When the flow shell read the event (wall clock, ns): measures latency only."""


def event_hash(key: str) -> int:
    """A stable 32-bit hash of an event's de-duplication key (the same in every process)."""
    return zlib.crc32(key.encode())


class InfluenceGraph:
    """Decaying, brand-filtered interaction graph with exact reach and an amortised ranking."""

    def __init__(self) -> None:
        # Nodes: customer id <-> index, per-index columns. Forgotten accounts hold None.
        self._index: dict[str, int] = {}
        self._names: list[str | None] = []
        self._alive = bytearray()
        self._followers = array("q")
        self._followers_t = array("d")  # event time of the follower count kept (latest wins)
        self._authored = array("d")  # last event time the account authored something
        self._watch = array("d")  # watched for rises while the watermark is before this
        self._above = bytearray()  # influential by rank (hysteresis state)
        self._gain = array("d")  # PageRank estimated to have arrived since the last ranking
        self._out = array("d")  # out-weight (decayed at the last ranking, plus new weight)
        self._authors = 0  # accounts that ever authored (before the first ranking)
        self._removed = 0  # forgotten accounts not yet compacted away
        # Edges sorted by key = dst << 32 | src, with weight (at `last`), newest time and hash.
        self._keys = array("q")
        self._w = array("d")
        self._last = array("d")
        self._h = array("I")
        # Edges new since the last ranking: dst -> {src: slot} into the delta columns.
        self._delta: dict[int, dict[int, int]] = {}
        self._dk = array("q")
        self._dw = array("d")
        self._dl = array("d")
        self._dh = array("I")
        # Ranking of the last refresh.
        self._pr = array("d")  # indexed like the nodes at that time
        self._base = 0.0  # PageRank of an account nobody interacts with
        self._n_ranked = 0
        self._sorted_authors = array("d")  # quantised PageRank of the accounts with evidence
        self._changes = 0
        self._due = -1.0  # -1: not ranked yet
        self._time_due = 1.0
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
        src = self._node(touch.author)
        if self._authored[src] < t:
            if self._authored[src] == -math.inf:
                self._authors += 1
            self._authored[src] = t
        if touch.followers is not None:
            self._set_followers(src, touch.followers, t)
        compound = touch.compound
        if compound is not None and compound <= policy.watch_compound:
            until = t + policy.watch_seconds
            if until > self._watch[src]:
                self._watch[src] = until
        risen: list[tuple[str, Influence]] = []
        target = touch.target
        dst = -1
        if target is not None:
            dst = self._node(target)
            if touch.target_followers is not None:
                self._set_followers(dst, touch.target_followers, t)
        if not author_is_brand and not touch.edit:
            # An edit re-scores its post; its interactions were counted already.
            h = event_hash(touch.key)
            if dst >= 0 and dst != src:
                weight = policy.kind_weights.get(touch.kind, 0.0)
                if weight > 0.0 and self._interact(src, dst, weight, t, h, watermark, policy):
                    self._check_rise(target, dst, watermark, policy, risen)  # type: ignore[arg-type]
            if touch.mentions and policy.mention_weight > 0.0:
                done = {dst, src}
                for mention in touch.mentions:
                    m = self._node(mention)
                    if m in done:
                        continue
                    done.add(m)
                    if self._interact(src, m, policy.mention_weight, t, h, watermark, policy):
                        self._check_rise(mention, m, watermark, policy, risen)
        if self._due < 0:
            if self._authors >= policy.min_accounts:
                self.refresh(watermark, policy)
        elif self._changes >= self._due or (
            watermark >= self._next_time and self._changes >= self._time_due
        ):
            self.refresh(watermark, policy)
        return risen

    def _node(self, customer_id: str) -> int:
        i = self._index.get(customer_id)
        if i is not None:
            return i
        i = len(self._names)
        self._index[customer_id] = i
        self._names.append(customer_id)
        self._alive.append(1)
        self._followers.append(0)
        self._followers_t.append(-math.inf)
        self._authored.append(-math.inf)
        self._watch.append(-math.inf)
        self._above.append(0)
        self._gain.append(0.0)
        self._out.append(0.0)
        self._changes += 1
        return i

    def _set_followers(self, i: int, followers: int, t: float) -> None:
        # The latest count by event time wins, so a late event cannot roll a count back.
        if t >= self._followers_t[i]:
            self._followers_t[i] = t
            self._followers[i] = min(followers, 2**62)

    def _interact(
        self, src: int, dst: int, weight: float, t: float, h: int, wm: float, policy: GraphPolicy
    ) -> bool:
        """Add one interaction to edge src -> dst; False when it does not count (see above)."""
        if t < wm - policy.horizon:
            return False  # outside the reach horizon: it would be dropped at the next ranking
        slots = self._delta.get(dst)
        j = -1 if slots is None else slots.get(src, -1)
        if j >= 0:
            ws, ls, hs = self._dw, self._dl, self._dh
        else:
            key = (dst << 32) | src
            keys = self._keys
            j = bisect_left(keys, key)
            if j < len(keys) and keys[j] == key:
                ws, ls, hs = self._w, self._last, self._h
            else:
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
        else:
            if slots is None:
                slots = self._delta[dst] = {}
            slots[src] = len(self._dk)
            self._dk.append((dst << 32) | src)
            self._dw.append(weight)
            self._dl.append(t)
            self._dh.append(h)
        out = self._out[src] + weight
        self._out[src] = out
        pr = self._pr[src] if src < len(self._pr) else self._base
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
        if self._above[i] or self._watch[i] < wm or self._due < 0:
            return
        influence = self._assess(i, wm, policy)
        if influence.by_rank:
            risen.append((customer_id, influence))

    # ------------------------------------------------------------------ queries

    def inbound_accounts(self, customer_id: str, watermark: float, policy: GraphPolicy) -> int:
        """Distinct non-brand accounts that interacted with the account within the horizon."""
        i = self._index.get(customer_id)
        return 0 if i is None else self._inbound(i, watermark - policy.horizon)

    def _inbound(self, i: int, cutoff: float) -> int:
        keys = self._keys
        lo = bisect_left(keys, i << 32)
        hi = bisect_left(keys, (i + 1) << 32, lo)
        last = self._last
        if hi - lo < _SMALL_RANGE:
            n = 0
            for j in range(lo, hi):
                if last[j] >= cutoff:
                    n += 1
        else:
            n = int(np.count_nonzero(np.frombuffer(last, dtype=np.float64)[lo:hi] >= cutoff))
        slots = self._delta.get(i)
        if slots:
            dl = self._dl
            for j in slots.values():
                if dl[j] >= cutoff:
                    n += 1
        return n

    def influence_of(self, customer_id: str, watermark: float, policy: GraphPolicy) -> Influence:
        """The account's influence now (and its hysteresis state updated)."""
        i = self._index.get(customer_id)
        if i is None:
            return Influence(0.0, self._percentile_or_none(0.0, policy), 0, 0.0, 0, self._n_ranked)
        return self._assess(i, watermark, policy)

    def _percentile_or_none(self, pct: float, policy: GraphPolicy) -> float | None:
        return None if self._due < 0 or self._n_ranked < policy.min_accounts else pct

    def pagerank_estimate(self, customer_id: str) -> float:
        """PageRank at the last ranking plus what arrived since (0 for an unknown account)."""
        i = self._index.get(customer_id)
        return 0.0 if i is None else self._estimate(i)

    def _estimate(self, i: int) -> float:
        pr = self._pr[i] if i < len(self._pr) else self._base
        return pr + self._gain[i]

    def _assess(self, i: int, wm: float, policy: GraphPolicy) -> Influence:
        inbound = self._inbound(i, wm - policy.horizon)
        pagerank = self._estimate(i)
        n = self._n_ranked
        ranked = n if self._due >= 0 else 0
        if ranked == 0 or n < policy.min_accounts:
            self._above[i] = 0
            return Influence(0.0, None, self._followers[i], pagerank, inbound, ranked, False)
        pct = 0.0
        if inbound >= policy.min_inbound:
            q = round(pagerank * len(self._pr), 9)
            pct = bisect_left(self._sorted_authors, q) / n
        held = self._above[i] and pct >= policy.threshold - policy.hysteresis
        by_rank = inbound >= policy.min_inbound and (pct >= policy.threshold or bool(held))
        self._above[i] = 1 if by_rank else 0
        return Influence(pct, pct, self._followers[i], pagerank, inbound, n, by_rank)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._index

    @property
    def known_accounts(self) -> int:
        """How many accounts the graph knows (authors, targets, mentions; not forgotten)."""
        return len(self._index)

    @property
    def edge_count(self) -> int:
        """Stored (src, dst) edges, including the delta and expired ones not yet dropped."""
        return len(self._keys) + len(self._dk)

    @property
    def ranked_accounts(self) -> int:
        """How many accounts with evidence the last ranking ranked."""
        return self._n_ranked

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held, by part (columns and indexes; the id strings themselves not included)."""
        edge_columns = sum(a.itemsize * a.buffer_info()[1] for a in (self._keys, self._w))
        edge_columns += sum(a.itemsize * a.buffer_info()[1] for a in (self._last, self._h))
        delta = sum(a.itemsize * a.buffer_info()[1] for a in (self._dk, self._dw, self._dl))
        delta += self._dh.itemsize * len(self._dh)
        delta += sum(100 * len(v) + 200 for v in self._delta.values())  # dict estimate
        node_columns = sum(
            a.itemsize * len(a)
            for a in (
                self._followers,
                self._followers_t,
                self._authored,
                self._watch,
                self._gain,
                self._out,
                self._pr,
            )
        ) + 2 * len(self._alive)
        index = (
            self._index.__sizeof__() + self._names.__sizeof__() + 28 * len(self._index)
        )  # dict + list + index ints
        return {"edges": edge_columns, "delta": delta, "nodes": node_columns, "index": index}

    # ------------------------------------------------------------------ purge

    def forget(self, customer_id: str) -> None:
        """Drop an account (purge) now: its node and its edges stop counting at once.

        No compaction: in-edges are one range (cleared), out-edges one vectorised scan; the
        space is reclaimed when enough has been forgotten.
        """
        i = self._index.pop(customer_id, None)
        if i is None:
            return
        self._names[i] = None
        self._alive[i] = 0
        self._followers[i] = 0
        self._authored[i] = -math.inf
        self._watch[i] = -math.inf
        self._above[i] = 0
        self._gain[i] = 0.0
        self._removed += 1
        keys = self._keys
        lo = bisect_left(keys, i << 32)
        hi = bisect_left(keys, (i + 1) << 32, lo)
        last = np.frombuffer(self._last, dtype=np.float64)
        weights = np.frombuffer(self._w, dtype=np.float64)
        last[lo:hi] = -math.inf
        weights[lo:hi] = 0.0
        out_edges = np.flatnonzero((np.frombuffer(keys, dtype=np.int64) & _LOW32) == i)
        last[out_edges] = -math.inf
        weights[out_edges] = 0.0
        del last, weights
        self._delta.pop(i, None)
        for slots in self._delta.values():
            j = slots.pop(i, None)
            if j is not None:
                self._dl[j] = -math.inf
                self._dw[j] = 0.0
        for j, k in enumerate(self._dk):
            if k >> 32 == i:
                self._dl[j] = -math.inf
                self._dw[j] = 0.0

    # ------------------------------------------------------------------ refresh

    def refresh(self, watermark: float, policy: GraphPolicy, *, warm_start: bool = True) -> None:
        """Merge the delta, drop what left the horizon, and recompute PageRank and percentiles.

        `warm_start=False` starts the power iteration from the uniform vector (benchmarks).
        """
        clock = self._clock(watermark)
        cutoff = clock - policy.horizon
        keys, w, last, h = self._merged_edges()
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        src = keys & _LOW32
        dst = keys >> 32
        live = (last >= cutoff) & alive[src] & alive[dst]
        if not live.all():
            keys, w, last, h, src, dst = (
                keys[live],
                w[live],
                last[live],
                h[live],
                src[live],
                dst[live],
            )
        authored = np.frombuffer(self._authored, dtype=np.float64)
        n = len(self._names)
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
        remap = None
        if idle >= _COMPACT_FRACTION * n and idle > 0:
            remap = self._compact_nodes(src, dst, cutoff)
            src, dst = remap[src], remap[dst]
            keys = (dst << 32) | src  # the remap is monotone: still sorted
            n = len(self._names)
        self._keys = _to_array("q", keys)
        self._w = _to_array("d", w)
        self._last = _to_array("d", last)
        self._h = _to_array("I", h)
        self._delta = {}
        self._dk, self._dw, self._dl, self._dh = array("q"), array("d"), array("d"), array("I")

        self.refresh_count += 1
        decayed = w * np.exp(-policy.lam * np.maximum(clock - last, 0.0))
        ranks, out = self._pagerank(n, src, dst, decayed, policy.damping, warm_start)
        self._pr = _to_array("d", ranks)
        self._out = _to_array("d", out)
        self._gain = array("d", bytes(8 * n))
        passed = np.minimum(out, 1.0)
        self._base = float(
            (policy.damping * ((1.0 - passed) * ranks).sum() + (1.0 - policy.damping)) / n
        )
        authored = np.frombuffer(self._authored, dtype=np.float64)
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        with_evidence = alive & (authored >= cutoff)
        quantized = np.round(ranks * n, 9)
        sorted_authors = np.sort(quantized[with_evidence])
        self._sorted_authors = _to_array("d", sorted_authors)
        self._n_ranked = len(sorted_authors)
        self._clear_fallen(quantized, dst, last >= cutoff, n, policy)
        size = n + len(self._keys)
        self._changes = 0
        self._due = max(float(policy.refresh_floor), _GROWTH_FRACTION * size)
        self._time_due = max(1.0, _TIME_FRACTION * size)
        self._next_time = clock + policy.refresh_seconds

    def _clock(self, watermark: float) -> float:
        if watermark > -math.inf:
            return watermark
        newest = [max(a) for a in (self._last, self._dl, self._authored) if len(a)]
        return max(newest) if newest else 0.0

    def _merged_edges(self) -> tuple[np.ndarray, ...]:
        keys = np.frombuffer(self._keys, dtype=np.int64)
        w = np.frombuffer(self._w, dtype=np.float64)
        last = np.frombuffer(self._last, dtype=np.float64)
        h = np.frombuffer(self._h, dtype=np.uint32)
        if not len(self._dk):
            return keys.copy(), w.copy(), last.copy(), h.copy()
        keys = np.concatenate([keys, np.frombuffer(self._dk, dtype=np.int64)])
        w = np.concatenate([w, np.frombuffer(self._dw, dtype=np.float64)])
        last = np.concatenate([last, np.frombuffer(self._dl, dtype=np.float64)])
        h = np.concatenate([h, np.frombuffer(self._dh, dtype=np.uint32)])
        order = np.argsort(keys, kind="stable")  # a sorted run plus the delta: nearly linear
        return keys[order], w[order], last[order], h[order]

    def _compact_nodes(self, src: np.ndarray, dst: np.ndarray, cutoff: float) -> np.ndarray:
        """Renumber without forgotten accounts and idle ones (no live edge, no recent evidence)."""
        n = len(self._names)
        alive = np.frombuffer(self._alive, dtype=np.uint8).astype(bool)
        authored = np.frombuffer(self._authored, dtype=np.float64)
        degree = np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)
        keep = alive & ((degree > 0) | (authored >= cutoff))
        remap = np.cumsum(keep) - 1
        kept = np.flatnonzero(keep)
        names = self._names
        self._names = [names[i] for i in kept.tolist()]
        self._index = {cid: i for i, cid in enumerate(self._names)}  # type: ignore[misc]
        for attr, code in (
            ("_followers", "q"),
            ("_followers_t", "d"),
            ("_authored", "d"),
            ("_watch", "d"),
            ("_out", "d"),
        ):
            column = np.frombuffer(getattr(self, attr), dtype=np.dtype(code))
            setattr(self, attr, _to_array(code, column[kept]))
        self._alive = bytearray(b"\x01" * len(kept))
        self._above = bytearray(np.frombuffer(self._above, dtype=np.uint8)[kept].tobytes())
        old = np.frombuffer(self._pr, dtype=np.float64)
        padded = np.concatenate([old, np.zeros(max(0, n - len(old)))])[:n]
        self._pr = _to_array("d", padded[kept])
        self._removed = 0
        return remap.astype(np.int64)

    def _pagerank(
        self,
        n: int,
        src: np.ndarray,
        dst: np.ndarray,
        weights: np.ndarray,
        alpha: float,
        warm_start: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The PageRank vector (sums to 1) and every node's decayed out-weight."""
        if n == 0:
            self.last_iterations = 0
            return np.zeros(0), np.zeros(0)
        out = np.bincount(src, weights=weights, minlength=n)
        denom = np.maximum(out, 1.0)
        passed = out / denom  # 1 for an active source, less for a silent one, 0 if dangling
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
        matrix = sparse.csr_array((weights / denom[src], src, indptr), shape=(n, n))
        x = np.full(n, 1.0 / n)
        old = np.frombuffer(self._pr, dtype=np.float64) if warm_start else np.zeros(0)
        m = min(len(old), n)
        if m:
            x[:m] = np.where(old[:m] > 0.0, old[:m], 1.0 / n)
        x /= x.sum()
        leaking = np.flatnonzero(passed < 1.0)  # silent and dangling sources
        leak = 1.0 - passed[leaking]
        teleport = (1.0 - alpha) / n
        diff = np.empty(n)
        iterations = 0
        while iterations < _PAGERANK_MAX_ITER:
            iterations += 1
            y = matrix @ x
            y *= alpha
            # A gather and a multiply, not a BLAS dot: no thread pool spun up per iteration.
            y += alpha * float((leak * np.take(x, leaking)).sum()) / n + teleport
            np.subtract(y, x, out=diff)
            np.abs(diff, out=diff)
            x = y
            if diff.sum() < _PAGERANK_TOL:
                break
        self.last_iterations = iterations
        return x, out

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
        keys, w, last, _ = self._merged_edges()
        clock = self._clock(watermark)
        names = self._names
        out = []
        for k, weight, t in zip(keys.tolist(), w.tolist(), last.tolist(), strict=True):
            s, d = names[k & _LOW32], names[k >> 32]
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
        graph.add_nodes_from(cid for cid in self._names if cid is not None)
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
        # Compact columns only (arrays pickle as raw bytes); indexes are rebuilt on load.
        return {
            "v": _STATE_VERSION,
            "names": self._names,
            "columns": {name: getattr(self, name) for name in _COLUMNS},
            "scalars": tuple(getattr(self, name) for name in _SCALARS),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("v") != _STATE_VERSION:
            raise ValueError(
                "unsupported InfluenceGraph state (a snapshot of an older version): "
                "resume needs a recovery directory written by this version"
            )
        self._names = state["names"]
        self._index = {cid: i for i, cid in enumerate(self._names) if cid is not None}
        for name, value in state["columns"].items():
            setattr(self, name, value)
        for name, value in zip(_SCALARS, state["scalars"], strict=True):
            setattr(self, name, value)
        self._delta = {}
        for j, k in enumerate(self._dk):
            self._delta.setdefault(k >> 32, {})[k & _LOW32] = j


_COLUMNS = (
    "_alive",
    "_followers",
    "_followers_t",
    "_authored",
    "_watch",
    "_above",
    "_gain",
    "_out",
    "_keys",
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
    "_base",
    "_n_ranked",
    "_changes",
    "_due",
    "_time_due",
    "_next_time",
    "refresh_count",
    "last_iterations",
)


def _to_array(typecode: str, values: np.ndarray) -> array:
    """A numpy vector as a compact, bisectable, picklable `array.array`."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(typecode)).tobytes())
    return out
