"""The event-time watermark: how far event time has got, estimated from the events themselves.

Every expiry, cooldown, lateness bound and refresh in the flow runs on this watermark, never on
the wall clock, so a file replayed at any speed decides exactly as a live run did.

The watermark is a low quantile (`LOW_QUANTILE`, 5%) of the last `SAMPLES` event times, never
going back, and never more than `max_lag` (the caller's bound) behind a high
quantile of them (during the first `WARMUP` events, only that bound moves it; the flow uses
the reach horizon, 7 days). Why a low
quantile of many events:

* one skewed clock (a device or a feed an hour ahead, a far-future first event) is a few of the
  samples at the top: it cannot drag the watermark forward;
* input partitions read at different speeds (files read in 500-line batches, a cluster's
  workers) interleave in bursts; the sample spans several bursts of every partition, so the
  watermark follows the slowest one and a partition that is behind is not made late;
* the bound behind the high quantile (itself immune to a few outliers) keeps a slow live stream
  from lagging without bound (a stream of one event a minute lags ~3 days: 5% of 4,096).

The real bound, then: partitions that drift apart by more than `max_lag` of event time (one
file read far ahead of another) make the slower one's posts late.

It is recomputed every `STEP` events in stream order (O(SAMPLES) per STEP events, ~0.1 µs an
event), so the same input gives the same watermark at every event, whatever the batching.
"""

from __future__ import annotations

from array import array

import numpy as np

SAMPLES = 4096
"""Event times the quantiles are taken over."""

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

_STATE_VERSION = 2


class Watermark:
    """Low quantile of the recent event times, monotone, bounded lag."""

    __slots__ = ("_next", "_ring", "_seen", "value")

    def __init__(self) -> None:
        self._ring = array("d")
        self._seen = 0
        self._next = MIN_SAMPLES
        self.value = float("-inf")

    def observe(self, ts: float, max_lag: float = float("inf")) -> float:
        """Take one event time into account; returns the watermark after it."""
        ring = self._ring
        if len(ring) < SAMPLES:
            ring.append(ts)
        else:
            ring[self._seen % SAMPLES] = ts
        self._seen += 1
        if self._seen >= self._next:
            self._next = self._seen + (STEP if self._seen >= STEP else 1)
            self._recompute(max_lag)
        return self.value

    def _recompute(self, max_lag: float) -> None:
        times = np.frombuffer(self._ring, dtype=np.float64)
        n = len(times)
        lo = int(LOW_QUANTILE * (n - 1))
        hi = int(HIGH_QUANTILE * (n - 1))
        part = np.partition(times, (lo, hi))
        candidate = float(part[hi]) - max_lag
        if self._seen >= WARMUP:
            candidate = max(candidate, float(part[lo]))
        del times, part
        if candidate > self.value:
            self.value = candidate

    def __getstate__(self) -> tuple:
        return (_STATE_VERSION, self._ring, self._seen, self._next, self.value)

    def __setstate__(self, state: tuple) -> None:
        version, self._ring, self._seen, self._next, self.value = state
        if version != _STATE_VERSION:
            raise ValueError(f"unsupported Watermark state version {version!r}")
