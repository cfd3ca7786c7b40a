"""The network side of the live feed sources: a reader running its own asyncio loop in a
background thread, handing what it reads to the dataflow through a bounded queue, and
reconnecting with capped exponential backoff and jitter. `connectors.feed_runtime` drains the
queue into Bytewax.

Why a thread: Bytewax calls `next_batch` cooperatively and a blocking read there would stall every
other step of the worker. The reader runs its own asyncio loop (WebSocket / streaming HTTP) and
hands finished items over through a `queue.Queue`; `next_batch` only takes what is already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from config.feeds import _FeedSection
from operators.events import DeadLetter, SocialEvent
from operators.records import AccountPurge, Withdrawal
from sense_respond.metrics import FEED_RECONNECTS, FEED_STALLS

log = logging.getLogger(__name__)

FeedItem = SocialEvent | DeadLetter | Withdrawal | AccountPurge
"""What a live source hands to the flow."""

P = TypeVar("P")
"""The position (resume state) of a feed: Jetstream's time_us, Mastodon's last status id."""

_SECRET_PARAMS = frozenset({"access_token", "token", "api_key", "key", "password"})


def redact_url(url: str) -> str:
    """The URL with credentials (userinfo, token-like query parameters) masked: safe to log."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe=":/*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def backoff_delay(attempt: int, initial: float, maximum: float, rand: float) -> float:
    """Delay before reconnect attempt `attempt` (0-based): capped exponential with jitter.

    "Equal jitter": half of the capped exponential step is fixed, half is random (`rand` in
    [0, 1)), so many clients dropped together do not reconnect in lockstep, yet no client retries
    in a tight loop.
    """
    step = min(maximum, initial * (2.0 ** min(attempt, 62)))
    return step / 2.0 + rand * step / 2.0


class FatalFeedError(RuntimeError):
    """The feed cannot work as configured (bad URL, rejected credentials): do not retry."""


class FeedStalled(ConnectionError):
    """Nothing but heartbeats (or pings, or a trickle of bytes) for `stall_seconds`."""


@dataclass(slots=True)
class FeedMetrics:
    """Counters of one live source. Written by the reader thread only; read by anyone."""

    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    frames: int = 0
    heartbeats: int = 0
    events: int = 0
    withdrawals: int = 0
    purges: int = 0
    dead_letters: int = 0
    ignored: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    unknown_deletes: int = 0
    profile_requests: int = 0
    profile_failures: int = 0
    profile_rate_limited: int = 0
    profile_cache_hits: int = 0
    profile_timeouts: int = 0
    stalls: int = 0
    oversize_lines: int = 0

    def count(self, items: Iterable[FeedItem]) -> None:
        """Count the items of one frame by type."""
        for item in items:
            if isinstance(item, SocialEvent):
                self.events += 1
            elif isinstance(item, DeadLetter):
                self.dead_letters += 1
            elif isinstance(item, Withdrawal):
                self.withdrawals += 1
            else:
                self.purges += 1

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for logs and metrics exporters)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Entry(Generic[P]):
    """What one network frame became: zero or more items, and the frame's position."""

    items: tuple[FeedItem, ...]
    position: P | None


class FeedReader(ABC, Generic[P]):
    """A network reader running an asyncio loop in a daemon thread, feeding a bounded queue.

    Subclasses implement `session()`: connect once, read until the connection ends, and `put`
    an `Entry` per frame. `run()` repeats sessions with capped exponential backoff and jitter
    until `stop()`.
    """

    def __init__(self, name: str, settings: _FeedSection) -> None:
        self.name = name
        self.input_label = name
        """The `input` label of this feed's Prometheus metrics (the source sets its input name)."""
        self.settings = settings
        self.metrics = FeedMetrics()
        self.fatal: BaseException | None = None
        self.last_activity = time.monotonic()
        self.position_seen: P | None = None
        """Position of the newest frame read so far; everything read before it is enqueued."""
        self._queue: queue.Queue[Entry[P]] = queue.Queue(maxsize=settings.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._frames_in_session = 0
        self._disconnected_at: float | None = None
        self._last_data = time.monotonic()

    # -- lifecycle (called from the dataflow thread) ------------------------------------------

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._thread_main, name=f"sense-respond-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reader and wait (bounded) for its thread to end."""
        self._stop.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the reader thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """Whether a session is open now: connected once, not dropped since (for `/readyz`)."""
        return (
            self.alive
            and self.fatal is None
            and self.metrics.connects > 0
            and self._disconnected_at is None
        )

    def drain(self, max_entries: int) -> list[Entry[P]]:
        """Take up to `max_entries` entries already queued, without waiting."""
        out: list[Entry[P]] = []
        get = self._queue.get_nowait
        for _ in range(max_entries):
            try:
                out.append(get())
            except queue.Empty:
                break
        return out

    def queue_empty(self) -> bool:
        """Whether nothing is waiting in the queue."""
        return self._queue.empty()

    # -- inside the reader thread ---------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:  # the dataflow must learn why its source died
            log.exception("%s: reader thread failed", self.name)
            self.fatal = exc

    async def _amain(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        # `stop()` may have run before the task existed; it set the flag first, so check it now.
        if self._stop.is_set():
            return
        try:
            await self.run()
        except asyncio.CancelledError:
            pass
        except FatalFeedError as exc:
            log.error("%s: %s", self.name, exc)
            self.fatal = exc

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was requested."""
        return self._stop.is_set()

    async def run(self) -> None:
        """Run sessions until stopped, reconnecting with capped exponential backoff + jitter."""
        attempt = 0
        while not self._stop.is_set():
            self._frames_in_session = 0
            try:
                await self._watched_session()
                reason = "connection closed"
            except (FatalFeedError, asyncio.CancelledError):
                raise
            except Exception as exc:  # any network failure means: reconnect
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            self.metrics.disconnects += 1
            self._disconnected_at = time.time()
            # A session that delivered frames was healthy: start the backoff over.
            attempt = 0 if self._frames_in_session else attempt + 1
            s = self.settings
            delay = backoff_delay(
                attempt, s.reconnect_initial_seconds, s.reconnect_max_seconds, self._rng.random()
            )
            log.warning("%s: disconnected (%s); reconnecting in %.2fs", self.name, reason, delay)
            await asyncio.sleep(delay)

    async def _watched_session(self) -> None:
        """`session()`, ended with `FeedStalled` when no frame came for `stall_seconds`.

        Heartbeats, pings and bytes that never complete a frame do not count: the read timeout
        cannot see a server that keeps the connection busy without delivering anything.
        """
        stall = self.settings.stall_seconds
        self._last_data = time.monotonic()
        session = asyncio.ensure_future(self.session())
        try:
            while True:
                done, _ = await asyncio.wait({session}, timeout=min(1.0, stall / 4))
                if done:
                    session.result()
                    return
                quiet = time.monotonic() - self._last_data
                if quiet > stall:
                    self.metrics.stalls += 1
                    FEED_STALLS.labels(input=self.input_label).inc()
                    raise FeedStalled(
                        f"no frame for {quiet:.1f}s (only heartbeats, pings or a trickle)"
                    )
        finally:
            if not session.done():
                session.cancel()
                with contextlib.suppress(BaseException):
                    await session

    @abstractmethod
    async def session(self) -> None:
        """Connect once and read frames until the connection ends (return or raise)."""

    def on_connected(self) -> float | None:
        """Record a (re)connection; returns the gap in seconds after a disconnect, else None."""
        self.metrics.connects += 1
        gap = None
        if self._disconnected_at is not None:
            self.metrics.reconnects += 1
            FEED_RECONNECTS.labels(input=self.input_label).inc()
            gap = max(0.0, time.time() - self._disconnected_at)
            self._disconnected_at = None
        return gap

    def frame_received(self) -> None:
        """Note that a frame (or heartbeat) arrived: the connection is alive."""
        self._frames_in_session += 1
        self.last_activity = self._last_data = time.monotonic()

    async def put(self, entry: Entry[P]) -> None:
        """Hand an entry to the dataflow, waiting (without blocking the loop) while it is full."""
        self.metrics.count(entry.items)
        while True:
            try:
                self._queue.put_nowait(entry)
                return
            except queue.Full:
                # Backpressure: stop reading until the dataflow catches up; the socket buffers.
                # Waiting on the flow is not a stalled feed.
                self._last_data = time.monotonic()
                await asyncio.sleep(0.005)
