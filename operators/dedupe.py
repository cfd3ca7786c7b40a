"""Bounded de-duplication of event ids by event time.

Duplicates are processed once. An id is remembered for `horizon_seconds` of event time past the
newest event seen (`flow.dedupe_seconds`): long enough for re-deliveries (feed reconnects,
at-least-once replays), short enough that memory stays small on a firehose.
"""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Remembers ids seen within a horizon of event time; memory is bounded by that horizon."""

    __slots__ = ("_expiry", "_horizon", "_seen", "_watermark")

    def __init__(self, horizon_seconds: float) -> None:
        self._horizon = float(horizon_seconds)
        self._seen: dict[str, float] = {}
        # (event time, id) in arrival order; evicted lazily from the left once past the horizon.
        self._expiry: deque[tuple[float, str]] = deque()
        self._watermark = float("-inf")

    @property
    def horizon_seconds(self) -> float:
        """How long (event time) an id is remembered past the newest event."""
        return self._horizon

    @horizon_seconds.setter
    def horizon_seconds(self, seconds: float) -> None:
        self._horizon = float(seconds)

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: str, event_ts: float) -> bool:
        """True the first time `key` is seen (within the horizon); False for a duplicate."""
        if key in self._seen:
            return False
        if event_ts > self._watermark:
            self._watermark = event_ts
            self._evict()
        self._seen[key] = event_ts
        self._expiry.append((event_ts, key))
        return True

    def _evict(self) -> None:
        cutoff = self._watermark - self._horizon
        expiry, seen = self._expiry, self._seen
        # Arrival order is nearly event-time order; an out-of-order entry at the head only delays
        # eviction of the ones behind it by its own lateness, which keeps this O(1) amortised.
        while expiry and expiry[0][0] < cutoff:
            _, key = expiry.popleft()
            seen.pop(key, None)
