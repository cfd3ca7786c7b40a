"""Retry and rate policy of the notifier: pure functions and small objects, no clock of their own.

Every time is passed in (`now` in seconds on any monotonic scale), so the schedules are tables a
test can check exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "reject"]

RETRYABLE_STATUSES = frozenset({408, 429})


def classify(status: int | None) -> Verdict:
    """`None` is a network error. 2xx delivered; network errors, 408, 429 and 5xx retried;
    anything else (other 4xx, redirects, 1xx) rejected: a retry would get the same answer."""
    if status is None or status in RETRYABLE_STATUSES or 500 <= status <= 599:
        return "retry"
    if 200 <= status <= 299:
        return "delivered"
    return "reject"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with jitter inside a budget of attempts and seconds."""

    max_attempts: int
    max_retry_seconds: float
    initial_seconds: float
    max_seconds: float

    def backoff(self, attempt: int, jitter: float) -> float:
        """Delay after failed attempt number `attempt` (1-based), `jitter` in [0, 1): "equal
        jitter", half fixed and half random, so retries of many events spread out but never
        collapse to zero."""
        base = min(self.max_seconds, self.initial_seconds * 2 ** (attempt - 1))
        return base / 2 + base / 2 * jitter

    def next_delay(
        self, attempt: int, elapsed: float, retry_after: float | None, jitter: float
    ) -> float | None:
        """Seconds until the next attempt after failed attempt `attempt`, `elapsed` seconds
        after the first; None when the budget is spent (the event goes to the dead letters).
        A `Retry-After` is honoured when it is longer than the backoff."""
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, jitter)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if elapsed + delay > self.max_retry_seconds:
            return None
        return delay
