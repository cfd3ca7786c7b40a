"""A token bucket with no clock of its own: every `now` is passed in (monotonic seconds), so its
schedule is a table a test can check exactly. Used by the notifier and the Jetstream profile
lookups."""

from __future__ import annotations


class TokenBucket:
    """At most `rate` requests per second on average, bursts of at most `burst`.

    `reserve(now)` takes a token and returns how long to wait before using it (0: now);
    `take(now)` takes one only if it is available now. The bucket starts full.
    `pause_until(t)` empties it until `t` (a 429's Retry-After).
    """

    def __init__(self, rate: float, burst: float = 1.0, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available, without taking it."""
        self._refill(now)
        if self._tokens >= 1:
            return max(0.0, self._stamp - now)
        return max(0.0, self._stamp - now) + (1 - self._tokens) / self.rate

    def reserve(self, now: float) -> float:
        """Take a token; the seconds to wait before the request it pays for may be sent."""
        wait = self.wait_time(now)
        self._refill(now)
        self._tokens -= 1
        return wait

    def take(self, now: float) -> bool:
        """Take a token if one is available now; otherwise False, and nothing is taken."""
        if self.wait_time(now) > 0:
            return False
        self._tokens -= 1
        return True

    def pause_until(self, until: float) -> None:
        """No token before `until` (the receiver said so), then one, refilling from there."""
        if until > self._stamp:
            self._stamp = until
            self._tokens = 1.0
