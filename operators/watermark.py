"""The event-time watermark: how far event time has got, estimated from the events themselves.

Every expiry, cooldown, lateness bound and refresh in the flow runs on this watermark, never on
the wall clock, so a file replayed at any speed decides exactly as a live run did.

The watermark is the median of the last `SAMPLES` event times, and it never goes back. A median
cannot be dragged by one outlier, nor by one skewed clock that produced fewer than half of the
recent events (a device or feed an hour ahead, a partition replaying old data): its events are
simply late or early relative to the others. It needs `MIN_SAMPLES` events before it moves, so a
future-dated first event cannot set it either. Its lag behind the newest event is about half the
time `SAMPLES` events take (milliseconds on a busy feed).

The state is one small object that the stage owning it keeps and snapshots; it is advanced in
stream order, so the same input gives the same watermark at every event.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

SAMPLES = 32
"""Event times the median is taken over."""

MIN_SAMPLES = 3
"""Events needed before the watermark moves (one outlier cannot be a median of three)."""

_STATE_VERSION = 1


class Watermark:
    """Median of the recent event times, monotone."""

    __slots__ = ("_recent", "_sorted", "value")

    def __init__(self) -> None:
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self.value = float("-inf")

    def observe(self, ts: float) -> float:
        """Take one event time into account; returns the watermark after it."""
        recent, ordered = self._recent, self._sorted
        recent.append(ts)
        insort(ordered, ts)
        if len(recent) > SAMPLES:
            del ordered[bisect_left(ordered, recent.popleft())]
        if len(ordered) >= MIN_SAMPLES:
            median = ordered[(len(ordered) - 1) // 2]  # the lower median
            if median > self.value:
                self.value = median
        return self.value

    def __getstate__(self) -> tuple:
        return (_STATE_VERSION, list(self._recent), self.value)

    def __setstate__(self, state: tuple) -> None:
        version, recent, value = state
        if version != _STATE_VERSION:
            raise ValueError(f"unsupported Watermark state version {version!r}")
        self._recent = deque(recent)
        self._sorted = sorted(recent)
        self.value = value
