"""Bounded de-duplication of event ids by event time.

Duplicates are processed once. An id is remembered until the event-time *watermark* (not the
newest event: see `operators.watermark`) has passed its own event time by `horizon_seconds`
(`flow.dedupe_seconds`). A future-dated event therefore evicts nothing: it only stays remembered
longer. Re-deliveries later than that are caught where they would count: a post replaces itself
in its window, and graph edges accept an interaction only once (`operators.influence`).

State only: the horizon is policy, passed in by the caller.
"""

from __future__ import annotations

from collections import deque

_STATE_VERSION = 1


class RecentIds:
    """Ids seen whose event time is within a horizon of the watermark."""

    __slots__ = ("_expiry", "_seen")

    def __init__(self) -> None:
        self._seen: set[str] = set()
        # (event time, id) in arrival order; evicted lazily from the left once past the horizon.
        self._expiry: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def first_time(self, key: str, event_ts: float, watermark: float, horizon: float) -> bool:
        """True the first time `key` is seen (within the horizon); False for a duplicate."""
        if key in self._seen:
            return False
        cutoff = watermark - horizon
        expiry, seen = self._expiry, self._seen
        # Arrival order is nearly event-time order; an out-of-order entry at the head only delays
        # eviction of the ones behind it by its own lateness, which keeps this O(1) amortised.
        while expiry and expiry[0][0] < cutoff:
            seen.discard(expiry.popleft()[1])
        seen.add(key)
        expiry.append((event_ts, key))
        return True

    def __getstate__(self) -> tuple:
        return (_STATE_VERSION, list(self._expiry))

    def __setstate__(self, state: tuple) -> None:
        version, expiry = state
        if version != _STATE_VERSION:
            raise ValueError(f"unsupported RecentIds state version {version!r}")
        self._expiry = deque(expiry)
        self._seen = {key for _, key in expiry}
