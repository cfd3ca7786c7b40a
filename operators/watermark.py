"""The event-time watermark: how far event time has got, estimated from the events themselves.

Every expiry, cooldown, lateness bound and refresh in the flow runs on this watermark, never on
the wall clock, so a file replayed at any speed decides exactly as a live run did.

Each upstream worker (a *lane*: the records of one worker arrive in that worker's order) has
its own low quantile (`LOW_QUANTILE`, 5%) and high quantile of its last `SAMPLES` event times.
The watermark is the lowest of the lanes' low quantiles, never going back, and never more than
`max_lag` (the caller's bound; the flow uses the reach horizon, 7 days) behind the highest of
their high quantiles (during the first `WARMUP` events, only that bound moves it). Why:

* one skewed clock (a device or a feed an hour ahead, a far-future first event) is a few of the
  samples at the top of its lane: it cannot drag the watermark forward;
* input partitions read at different speeds interleave in bursts. Within one worker (files read
  in 500-line turns) a lane's sample spans several turns of every partition; across workers (a
  cluster's processes, whose epochs reach the graph stage as bursts of any length) the lowest
  lane wins, so the worker that is behind is not made late by the one ahead;
* the bound behind the high quantile (itself immune to a few outliers) keeps a slow live stream
  from lagging without bound (a stream of one event a minute lags ~3 days: 5% of 4,096).

A worker that is idle or finished must not hold the watermark back for ever: a lane that
contributed none of the last `IDLE_RECORDS` events (counted over all lanes, checked every
`STEP`), or none of the last `IDLE_BURSTS` times the longest recent burst of one lane if that
is longer, is dropped; if its worker sends again it starts a new lane. (A cluster's epochs
arrive as bursts, longer with longer epochs: a worker waiting its turn behind them is not
idle.) This is decided by the
records alone (no clock), so a replay of the same records decides the same way. The caller
names the workers (the flow: Bytewax worker indexes, so a resume with the same workers carries
on in the same lanes, and the lanes of workers gone are dropped by this rule).

The real bounds, then:

* partitions of one worker that drift apart by more than `max_lag` of event time (one file
  read far ahead of another) make the slower one's posts late, and a worker whose clock runs
  more than `max_lag` ahead drags the watermark through the bound;
* a worker that sends nothing while the others send that many events (a stall, or a first
  burst of the others that long, before any burst was seen) is dropped, and what it sends next
  may be late; until then, a finished worker holds the watermark where its last events were;
* a worker whose first records come after `WARMUP` events of the others may find the
  watermark already past them: nothing says a worker exists before it sends.

It is recomputed every `STEP` events in stream order (per lane that received events since, in
O(SAMPLES); ~0.1 µs an event), so the same records from the same workers give the same
watermark at every event, whatever the batching.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable

import numpy as np

SAMPLES = 4096
"""Event times per lane the quantiles are taken over."""

STEP = 64
"""Events between recomputations."""

LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95

MIN_SAMPLES = 3
"""Events needed before the watermark moves."""

WARMUP = 2048
"""Until this many events were seen, only the bound behind the high quantile moves the
watermark: partitions that have not delivered yet (a first burst of another file) are not made
late by the low quantile of the first one."""

IDLE_RECORDS = 8 * SAMPLES
"""A lane that contributed none of the last this many events (all lanes counted) is dropped:
an idle or finished worker stops holding the watermark back. At least: see `IDLE_BURSTS`."""

IDLE_BURSTS = 4
"""... or none of the last this many times the longest recent burst (a run of events of one
lane), if that is more. A cluster's epochs reach the graph stage as bursts whose length grows
with the epoch and the processes' speed (measured: 13,000 events at most on two processes at
the default 2 s epochs on the Higgs stream): a worker waiting behind the others' bursts is not
idle."""

BURST_MEMORY = 16
"""The longest recent burst forgets 1/this of itself at each change of lane (a catch-up burst
after a resume does not hold finished workers for good)."""

ONE_WORKER = ""
"""The lane of callers that do not tell workers apart."""

_STATE_VERSION = 3


class Lane:
    """One upstream worker's recent event times and their quantiles."""

    __slots__ = ("high", "low", "ring", "seen", "seen_at_recompute", "sent_at")

    def __init__(self) -> None:
        self.ring = array("d")
        self.seen = 0
        """Events of this lane."""
        self.seen_at_recompute = 0
        self.sent_at = 0
        """The watermark's event count when this lane was last found to have sent."""
        self.low = float("-inf")
        self.high = float("-inf")

    def _recompute(self) -> None:
        times = np.frombuffer(self.ring, dtype=np.float64)
        n = len(times)
        lo = int(LOW_QUANTILE * (n - 1))
        hi = int(HIGH_QUANTILE * (n - 1))
        part = np.partition(times, (lo, hi))
        self.low = float(part[lo])
        self.high = float(part[hi])
        del times, part
        self.seen_at_recompute = self.seen

    def _state(self) -> tuple:
        return (self.ring, self.seen, self.seen_at_recompute, self.sent_at, self.low, self.high)

    @classmethod
    def _of(cls, state: tuple) -> Lane:
        lane = cls()
        lane.ring, lane.seen, lane.seen_at_recompute, lane.sent_at, lane.low, lane.high = state
        return lane


class Watermark:
    """The lowest lane's low quantile of its recent event times, monotone, bounded lag."""

    __slots__ = ("_burst", "_burst_start", "_burst_worker", "_lanes", "_next", "_seen", "value")

    def __init__(self) -> None:
        self._lanes: dict[Hashable, Lane] = {}
        self._seen = 0
        self._next = MIN_SAMPLES
        self.value = float("-inf")
        self._burst_worker: Hashable = None  # whose run of events is going on
        self._burst_start = 0  # the event count when it began
        self._burst = 0  # the longest recent run that ended (fading: `BURST_MEMORY`)

    def lane(self, worker: Hashable) -> Lane:
        """The lane of `worker` (one lookup per list of records, not per record)."""
        if worker != self._burst_worker:
            ended = self._seen - self._burst_start
            self._burst = max(ended, self._burst - self._burst // BURST_MEMORY)
            self._burst_worker = worker
            self._burst_start = self._seen
        lane = self._lanes.get(worker)
        if lane is None:
            lane = self._lanes[worker] = Lane()
            lane.sent_at = self._seen
        return lane

    @property
    def workers(self) -> list[Hashable]:
        """The workers that hold the watermark (those not dropped as idle)."""
        return list(self._lanes)

    def observe(self, ts: float, max_lag: float = float("inf"), lane: Lane | None = None) -> float:
        """Take one event time of `lane` (default: `ONE_WORKER`'s) into account; returns the
        watermark after it."""
        if lane is None:
            lane = self.lane(ONE_WORKER)
        ring = lane.ring
        if len(ring) < SAMPLES:
            ring.append(ts)
        else:
            ring[lane.seen % SAMPLES] = ts
        lane.seen += 1
        self._seen += 1
        if self._seen >= self._next:
            self._next = self._seen + (STEP if self._seen >= STEP else 1)
            self._recompute(max_lag)
        return self.value

    def _recompute(self, max_lag: float) -> None:
        seen = self._seen
        lowest = float("inf")
        highest = float("-inf")
        idle = []
        # Only ended runs count: a worker that finished while another was sending stays idle
        # however long that one goes on.
        patience = max(IDLE_RECORDS, IDLE_BURSTS * self._burst)
        for worker, lane in self._lanes.items():
            if lane.seen != lane.seen_at_recompute:
                lane._recompute()
                lane.sent_at = seen
            elif seen - lane.sent_at >= patience:  # never the lane of this event
                idle.append(worker)
                continue
            if not lane.seen:  # only control records so far: no event time to hold
                continue
            lowest = min(lowest, lane.low)
            highest = max(highest, lane.high)
        for worker in idle:
            del self._lanes[worker]
        candidate = highest - max_lag
        if seen >= WARMUP:
            candidate = max(candidate, lowest)
        if candidate > self.value:
            self.value = candidate

    def __getstate__(self) -> tuple:
        lanes = {worker: lane._state() for worker, lane in self._lanes.items()}
        bursts = (self._burst_worker, self._burst_start, self._burst)
        return (_STATE_VERSION, lanes, self._seen, self._next, self.value, bursts)

    def __setstate__(self, state: tuple) -> None:
        version = state[0] if isinstance(state, tuple) and state else None
        if version != _STATE_VERSION:
            raise ValueError(
                f"unsupported Watermark state (version {version!r}, a"
                " snapshot of an older version): resume needs a recovery directory written by"
                " this version"
            )
        _, lanes, self._seen, self._next, self.value, bursts = state
        self._burst_worker, self._burst_start, self._burst = bursts
        self._lanes = {worker: Lane._of(lane) for worker, lane in lanes.items()}
