"""Shared machinery of the live feed sources: a network reader in a background thread, a bounded
queue between it and the dataflow, reconnects with capped exponential backoff and jitter, and a
Bytewax partition that drains the queue without ever blocking the worker.

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
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from config.feeds import _FeedSection
from connectors import shutdown
from operators.events import RAW_EXCERPT_BYTES, DeadLetter, SocialEvent
from operators.records import AccountPurge, Withdrawal
from sense_respond.metrics import FEED_RECONNECTS, FEED_STALLS, SOURCE_LAG

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


# -- bounded reading of hostile streams --------------------------------------------------------

DECODE_PIECE_BYTES = 64 * 1024
"""Largest piece a compressed stream is decoded into at once: a decompression bomb (a few KiB
of gzip that inflate to gigabytes) is decoded piece by piece and never held whole."""

MAX_BODY_BYTES = 1024 * 1024
"""Bodies read whole (error answers, getProfiles) are read only up to this many decoded bytes."""


class UnsupportedEncoding(ConnectionError):
    """A Content-Encoding this process does not decode (it asks for gzip/deflate only)."""


class BoundedDecoder:
    """Decodes a `Content-Encoding` (identity, gzip, deflate) in pieces of at most `piece`
    bytes: zlib's `max_length` bounds each step, whatever the compression ratio."""

    def __init__(self, encoding: str | None, piece: int = DECODE_PIECE_BYTES) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}")
        self._piece = piece
        self._coding = codings[0] if codings else None
        self._zlib: zlib._Decompress | None = None
        if self._coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._coding == "deflate":
            self._zlib = zlib.decompressobj()  # zlib-wrapped; raw deflate is tried on error
        self._deflate_checked = self._coding != "deflate"

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of `data` (each at most `piece` bytes)."""
        if self._zlib is None:
            for at in range(0, len(data), self._piece):
                yield data[at : at + self._piece]
            return
        if not self._deflate_checked:
            self._deflate_checked = True
            try:
                first = self._zlib.decompress(data, self._piece)
            except zlib.error:
                # Servers often send raw deflate for "deflate" (what browsers accept too).
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                first = self._zlib.decompress(data, self._piece)
            if first:
                yield first
            data = self._zlib.unconsumed_tail
        while data:
            try:
                out = self._zlib.decompress(data, self._piece)
            except zlib.error as exc:
                raise ConnectionError(f"corrupt {self._coding} stream: {exc}") from None
            data = self._zlib.unconsumed_tail
            if out:
                yield out
            if self._zlib.eof:
                return  # trailing bytes after the compressed stream are ignored
            if not out and not data:
                return


async def decoded_chunks(
    resp: httpx.Response, piece: int = DECODE_PIECE_BYTES
) -> AsyncIterator[bytes]:
    """The response body, decoded by `BoundedDecoder` from the raw stream (httpx's own decoders
    inflate each network chunk whole, which a bomb turns into hundreds of MiB at once)."""
    decoder = BoundedDecoder(resp.headers.get("content-encoding"), piece)
    # Network reads as they come (bounded by httpx's read size): `aiter_raw(n)` would wait for
    # n bytes, which a live stream may take minutes to send.
    async for raw in resp.aiter_raw():
        for out in decoder.feed(raw):
            yield out


async def read_capped(resp: httpx.Response, limit: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """At most `limit` decoded bytes of the body, and whether there was more (not read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in decoded_chunks(resp):
        room = limit - size
        if len(chunk) > room:
            parts.append(chunk[:room])
            return b"".join(parts), True
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), False


@dataclass(frozen=True, slots=True)
class OversizeLine:
    """A line longer than the limit: only its head is kept (it is dead-lettered)."""

    excerpt: bytes
    size: int


class LineSplitter:
    """Splits a byte stream into lines at LF (a CR before it is dropped), never buffering more
    than `max_line_bytes`: a longer line is reported once as an `OversizeLine` (its head kept)
    and the rest of it is skipped up to the next newline.

    Only LF ends a line (SSE and JSON Lines): `str.splitlines` would also break at U+0085,
    U+2028 and friends, which JSON strings carry unescaped.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._skipping: int | None = None  # bytes skipped of the current over-long line
        self._excerpt = b""

    @property
    def buffered(self) -> int:
        """Bytes held for the line in progress."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[bytes | OversizeLine]:
        """Lines (without the line end) and `OversizeLine`s completed by `data`."""
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            stop = len(data) if end < 0 else end
            if self._skipping is not None:
                self._skipping += stop - start
            else:
                self._buffer += data[start:stop]
                if len(self._buffer) > self._max:
                    self._excerpt = bytes(self._buffer[:RAW_EXCERPT_BYTES])
                    self._skipping = len(self._buffer)
                    self._buffer = bytearray()
            if end < 0:
                return
            start = end + 1
            if self._skipping is not None:
                yield OversizeLine(self._excerpt, self._skipping)
                self._skipping, self._excerpt = None, b""
                continue
            line = bytes(self._buffer)
            self._buffer.clear()
            yield line[:-1] if line.endswith(b"\r") else line


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


class FeedPartition(StatefulSourcePartition[FeedItem, P | None]):
    """Drains a `FeedReader`'s queue; the position of the last delivered frame is the snapshot."""

    def __init__(
        self, reader: FeedReader[P], batch_size: int, resume_position: P | None = None
    ) -> None:
        self.reader = reader
        self._batch_size = max(1, batch_size)
        self._position: P | None = resume_position
        self._delivered = 0
        self._done = False
        self._idle_poll = timedelta(milliseconds=reader.settings.poll_interval_ms)
        self._next_awake: datetime | None = None
        self._cursor_time: datetime | None = None
        """Event time of the newest event handed to the flow: its age is the source lag."""
        reader.start()

    @property
    def position(self) -> P | None:
        """Position of the newest frame handed to the flow (the resume state)."""
        return self._position

    @property
    def metrics(self) -> FeedMetrics:
        """The reader's counters."""
        return self.reader.metrics

    def _advance(self, position: P | None) -> None:
        """Move the position forward (subclasses decide what "forward" means)."""
        if position is not None:
            self._position = position

    def _finish(self) -> None:
        self._done = True
        self.reader.stop()

    def next_batch(self) -> list[FeedItem]:
        """Items already read by the network thread; never waits on the network."""
        if self._done or shutdown.requested():
            # A stop (SIGTERM/SIGINT) ends the partition; its cursor snapshot resumes it.
            raise StopIteration
        if self.reader.fatal is not None:
            self._finish()
            raise RuntimeError(f"{self.reader.name} source failed") from self.reader.fatal
        settings = self.reader.settings
        # Read the newest position *before* draining: every frame up to it is already queued.
        seen = self.reader.position_seen
        entries = self.reader.drain(self._batch_size)
        out: list[FeedItem] = []
        limit = settings.max_events
        reached = False
        for entry in entries:
            room = None if limit is None else limit - self._delivered - len(out)
            if room is not None and len(entry.items) > room:
                out.extend(entry.items[:room])
                reached = True
                break
            out.extend(entry.items)
            self._advance(entry.position)
            if room is not None and len(entry.items) == room:
                reached = True
                break
        if not reached and self.reader.queue_empty():
            # Frames that mapped to nothing (ignored collections) still move the cursor.
            self._advance(seen)
        self._delivered += len(out)
        self._report_lag(out)
        if reached:
            log.info("%s: max_events=%s delivered, source ends", self.reader.name, limit)
            self._finish()
            return out
        if not out:
            idle = settings.idle_timeout_seconds
            if idle is not None and time.monotonic() - self.reader.last_activity > idle:
                log.info("%s: idle for %.1fs, source ends", self.reader.name, idle)
                self._finish()
                raise StopIteration
            self._next_awake = datetime.now(UTC) + self._idle_poll
        else:
            self._next_awake = None
        return out

    def _report_lag(self, items: list[FeedItem]) -> None:
        """`sense_respond_source_lag{input}`: how old the newest delivered event is (seconds).
        It keeps growing while a feed delivers nothing."""
        for item in items:
            if isinstance(item, SocialEvent) and (
                self._cursor_time is None or item.created_at > self._cursor_time
            ):
                self._cursor_time = item.created_at
        if self._cursor_time is not None:
            lag = (datetime.now(UTC) - self._cursor_time).total_seconds()
            SOURCE_LAG.labels(input=self.reader.input_label).set(max(0.0, lag))

    def next_awake(self) -> datetime | None:
        """Back off a few ms while the queue is empty instead of spinning."""
        return self._next_awake

    def snapshot(self) -> P | None:
        """The position of the newest frame delivered: resume reads after (or just before) it."""
        return self._position

    def close(self) -> None:
        """Stop the reader thread."""
        self._done = True
        self.reader.stop()


class FeedSource(FixedPartitionedSource[FeedItem, P | None], Generic[P]):
    """A live feed as a Bytewax source: one connection, one partition resumable at a position.

    Subclasses name the partition and build the platform's reader and partition.
    """

    part_name = "feed"

    def __init__(self, url: str, settings: _FeedSection, batch_size: int) -> None:
        """`url`: the feed endpoint; `settings`: its section of the settings."""
        self.url = url
        self.settings = settings
        self.batch_size = batch_size
        self.partitions: list[FeedPartition[P]] = []

    def list_parts(self) -> list[str]:
        """One connection, one partition."""
        return [self.part_name]

    @abstractmethod
    def make_partition(self, resume_state: P | None) -> FeedPartition[P]:
        """Connect a reader and wrap it in the platform's partition."""

    @property
    def input_label(self) -> str:
        """This feed as its metrics and dead letters name it (no credentials, no query)."""
        from connectors.inputs import input_name

        return input_name(f"{self.part_name}:{self.url}")

    def build_part(self, step_id: str, for_part: str, resume_state: P | None) -> FeedPartition[P]:
        """Connect, resuming from `resume_state` when given."""
        part = self.make_partition(resume_state)
        part.reader.input_label = self.input_label
        self.partitions.append(part)
        return part
