"""One thread per destination: its own queue, order per incident, rate limit and retries.

A destination that is down or slow only holds up its own thread; the others go on. Within a
destination, jobs are tried in stream order, and a job waits while an earlier job of the same
incident is not done here (still queued, in backoff, or held by another notifier process, as the
service tells through `blockers`). Jobs of other incidents are not held up by a retrying one.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from config.notify import DestinationSettings, NotifySettings
from connectors.notify import metrics
from connectors.notify.events import LifecycleEvent
from connectors.notify.policy import RetryPolicy, classify, parse_retry_after
from connectors.notify.sender import Attempt, Sender
from connectors.notify.store import NotifyStore
from connectors.rate_limit import TokenBucket

log = logging.getLogger(__name__)

CRASH_ENV = "SENSE_RESPOND_NOTIFY_CRASH"
"""Test hook: `POINT[:N]` kills this process with SIGKILL the N-th time (default 1st) it reaches
POINT (before_send | after_send | after_marker). Lets the kill -9 tests hit exact moments."""

REDIS_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)


class _CrashPoints:
    def __init__(self, spec: str | None) -> None:
        self._lock = threading.Lock()
        self.point, self.left = None, 0
        if spec:
            point, _, nth = spec.partition(":")
            self.point, self.left = point, int(nth or 1)

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        with self._lock:
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)


CRASH = _CrashPoints(os.environ.get(CRASH_ENV))


@dataclass(slots=True)
class Job:
    """One event for one destination."""

    entry_id: str
    order: tuple[int, int]
    event: LifecycleEvent
    read_at: float
    attempts: int = 0
    first_attempt_at: float | None = None
    not_before: float = 0.0


Done = Callable[[str, str], None]
"""Called as done(entry_id, destination) once a job is delivered or dead-lettered."""


class DestinationWorker:
    """Delivers the jobs of one destination, one request at a time."""

    def __init__(
        self,
        destination: DestinationSettings,
        notify: NotifySettings,
        store: NotifyStore,
        done: Done,
        clock: Callable[[], float] = time.monotonic,
        sender: Sender | None = None,
    ) -> None:
        self.destination = destination
        self.name = destination.name
        self._store = store
        self._done = done
        self._clock = clock
        self._sender = sender or Sender(destination, notify)
        self._policy = RetryPolicy(
            max_attempts=notify.max_attempts,
            max_retry_seconds=notify.max_retry_seconds,
            initial_seconds=notify.retry_initial_seconds,
            max_seconds=notify.retry_max_seconds,
        )
        rate = destination.max_per_second
        self._bucket = TokenBucket(rate, now=clock()) if rate else None
        self._paused_until = 0.0  # a 429's Retry-After holds every request to the destination
        self._jobs: dict[str, Job] = {}
        self._order: list[tuple[tuple[int, int], str]] = []
        self._blockers: dict[str, tuple[int, int]] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)

    # -- called by the service ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def offer(self, jobs: Iterable[Job]) -> None:
        with self._cond:
            for job in jobs:
                if job.entry_id in self._jobs:
                    continue
                self._jobs[job.entry_id] = job
                bisect.insort(self._order, (job.order, job.entry_id))
            self._cond.notify()

    def set_blockers(self, blockers: dict[str, tuple[int, int]]) -> None:
        """Per incident, the earliest entry another process holds that is not done here."""
        with self._cond:
            self._blockers = blockers
            self._cond.notify()

    def forget(self, entry_ids: Iterable[str]) -> None:
        """Drop jobs whose entries another consumer took over (it delivers them now)."""
        with self._cond:
            for entry_id in entry_ids:
                job = self._jobs.pop(entry_id, None)
                if job is not None:
                    self._order.remove((job.order, entry_id))

    def entry_ids(self) -> list[str]:
        with self._cond:
            return list(self._jobs)

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)

    def stop(self) -> None:
        """Start no new request; the one in flight finishes (bounded by the HTTP timeout)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        if self._thread.ident is None:  # never started (stopped during start-up)
            self._sender.close()
            return True
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._sender.close()
        return not alive

    # -- the thread --------------------------------------------------------------------------

    def _next(self, now: float) -> tuple[Job | None, float]:
        """The first job in stream order that may go now, else how long until one may."""
        wait = 1.0
        held: set[str] = set()
        for order, entry_id in self._order:
            job = self._jobs[entry_id]
            incident = job.event.incident_id
            if incident in held:
                continue  # an earlier event of this incident is not done here yet
            held.add(incident)
            blocker = self._blockers.get(incident)
            if blocker is not None and blocker < order:
                continue
            if job.not_before > now:
                wait = min(wait, job.not_before - now)
                continue
            return job, 0.0
        return None, wait

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                job, wait = self._next(self._clock())
                if job is not None:
                    now = self._clock()
                    wait = max(0.0, self._paused_until - now)
                    if self._bucket is not None:
                        wait = max(wait, self._bucket.wait_time(now))
                    if wait > 0:
                        job = None
                if job is None:
                    self._cond.wait(timeout=wait)
                    continue
                if self._bucket is not None:
                    self._bucket.reserve(self._clock())
            self._attempt(job)

    def _attempt(self, job: Job) -> None:
        now = self._clock()
        if job.first_attempt_at is None:
            if self._already_done(job):
                self._finish(job)
                return
            job.first_attempt_at = now
        job.attempts += 1
        CRASH.reach("before_send")
        try:
            result = self._sender.send(job.event)
        except Exception as exc:  # a payload that cannot be built must not kill the thread
            log.exception(
                "%s: cannot build the request for event %s", self.name, job.event.event_id
            )
            self._dead_letter(job, "error", f"cannot build request: {type(exc).__name__}")
            return
        CRASH.reach("after_send")
        verdict = classify(result.status)
        if verdict == "delivered":
            if self._persist(lambda: self._store.mark_delivered(self.name, job.event.event_id)):
                CRASH.reach("after_marker")
                metrics.SENT.labels(self.name).inc()
                metrics.DELIVERY_SECONDS.labels(self.name).observe(self._clock() - job.read_at)
                log.info(
                    "%s: delivered %s of incident %s (attempt %d)",
                    self.name,
                    job.event.status,
                    job.event.incident_id,
                    job.attempts,
                )
                self._finish(job)
            return
        if verdict == "reject":
            self._dead_letter(job, str(result.status), f"rejected: {result.reason}")
            return
        self._retry(job, result)

    def _already_done(self, job: Job) -> bool:
        """Whether this event id is done here already: the same CloudEvent in two entries (a
        replay) or delivered by another process meanwhile. A Redis error counts as not done
        (at-least-once)."""
        try:
            return bool(self._store.done([(self.name, job.event.event_id)]))
        except RedisError:
            return False

    def _retry(self, job: Job, result: Attempt) -> None:
        now = self._clock()
        retry_after = parse_retry_after(result.retry_after, _utcnow())
        elapsed = now - (job.first_attempt_at or now)
        delay = self._policy.next_delay(job.attempts, elapsed, retry_after, self._rng.random())
        if delay is None:
            status = "network" if result.status is None else str(result.status)
            self._dead_letter(
                job,
                status,
                f"gave up after {job.attempts} attempts in {elapsed:.0f}s: {result.reason}",
            )
            return
        metrics.RETRIES.labels(self.name).inc()
        log.warning(
            "%s (%s): attempt %d of event %s failed (%s); retry in %.1fs",
            self.name,
            self._sender.where,
            job.attempts,
            job.event.event_id,
            result.reason,
            delay,
        )
        with self._cond:
            job.not_before = now + delay
            if result.status == 429 and retry_after is not None:
                # The receiver's limit holds for every message to it, not just this one.
                self._paused_until = max(self._paused_until, now + retry_after)
                if self._bucket is not None:
                    self._bucket.pause_until(now + retry_after)

    def _dead_letter(self, job: Job, status: str, reason: str) -> None:
        ev = job.event
        ok = self._persist(
            lambda: self._store.dead_letter(self.name, ev.event_id, ev.raw, status, reason)
        )
        if ok:
            metrics.DEAD_LETTERS.labels(self.name).inc()
            log.error("%s: event %s dead-lettered (%s): %s", self.name, ev.event_id, status, reason)
            self._finish(job)

    def _finish(self, job: Job) -> None:
        with self._cond:
            if self._jobs.pop(job.entry_id, None) is not None:
                self._order.remove((job.order, job.entry_id))
        self._done(job.entry_id, self.name)

    def _persist(self, write: Callable[[], None]) -> bool:
        """Run a Redis write until it succeeds; False if the process stops first (the entry
        stays pending, so the restart repeats at most this one request)."""
        for attempt in range(1_000_000):
            try:
                write()
                return True
            except RedisError as exc:
                pause = REDIS_RETRY_SECONDS[min(attempt, len(REDIS_RETRY_SECONDS) - 1)]
                log.warning("%s: Redis write failed (%s); retrying", self.name, exc)
                with self._cond:
                    if self._stopping:
                        return False
                    self._cond.wait(timeout=pause)
        return False


def _utcnow() -> datetime:
    """The wall clock, only to read Retry-After dates."""
    return datetime.now(UTC)
