"""Bluesky Jetstream as a live input: `--input jetstream:wss://HOST/subscribe`.

Jetstream serves the Bluesky firehose as JSON over a WebSocket, no key needed. This module reads
it (reader, partition, source); the frames are mapped to the flow's items (events, withdrawals,
purges, dead letters) by `connectors.jetstream_frames`.

Resume: the partition's snapshot is the `time_us` of the newest frame handed to the flow. On
resume and on every reconnect the source asks for `cursor = time_us - rewind` so nothing is lost;
the few seconds replayed are dropped by the flow's de-duplication (event ids are stable).

Followers are not in the stream. With `profiles_enabled`, authors are looked up in batches of up
to 25 with `app.bsky.actor.getProfiles` (cached with a TTL, rate-limited:
`connectors.jetstream_profiles`); an event waits at most `profiles_hold_ms` for its author's
profile and flows on without followers when the lookup is slow, rate-limited or failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)

from config.feeds import JetstreamSettings
from connectors.bounded_streams import MAX_BODY_BYTES, read_capped
from connectors.feed_reader import Entry, FatalFeedError, FeedItem, FeedReader, redact_url
from connectors.feed_runtime import FeedPartition, FeedSource
from connectors.jetstream_frames import JetstreamFrame, finalize, map_frame
from connectors.jetstream_profiles import Profile, ProfileCache, parse_profiles
from connectors.rate_limit import TokenBucket
from operators.events import RAW_EXCERPT_BYTES

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Held:
    time_us: int | None
    raw: bytes
    received_at: datetime
    events: list[dict[str, Any]]
    items: list[FeedItem]
    dids: set[str]
    deadline: float


# -- the reader and the source ----------------------------------------------------------------


def subscribe_url(url: str, settings: JetstreamSettings, cursor: int | None) -> str:
    """The subscribe URL: `/subscribe` path, wanted collections/DIDs from settings unless the URL
    names them, and `cursor` (replacing any in the URL) when given."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/subscribe"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    names = {k for k, _ in query}
    if "wantedCollections" not in names:
        query += [("wantedCollections", c) for c in settings.wanted_collections]
    if "wantedDids" not in names:
        query += [("wantedDids", d) for d in settings.wanted_dids]
    if cursor is not None:
        query = [(k, v) for k, v in query if k != "cursor"]
        query.append(("cursor", str(cursor)))
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, safe=":/"), ""))


CLOSE_MESSAGE_TOO_BIG = 1009
"""WebSocket close code sent when a message exceeds `max_message_bytes`."""

OVERSIZE_ALLOWANCE = 16
"""After such a close, the next connection accepts messages this many times larger, once."""


class JetstreamReader(FeedReader[int]):
    """Reads Jetstream in the background; see the module docstring."""

    def __init__(self, url: str, settings: JetstreamSettings, resume_cursor: int | None) -> None:
        super().__init__("jetstream", settings)
        self.url = url
        # Set when a message exceeded max_message_bytes: the next connection accepts it once (it
        # is then dead-lettered), or resuming at the cursor would fetch it, and fail, forever.
        self._let_oversize_through = False
        self.js: JetstreamSettings = settings
        self.position_seen = resume_cursor
        # Newest time_us read off the socket. Frames held for a profile lookup are read but not
        # yet "seen"; they survive a reconnect in memory, so the reconnect cursor may start from
        # here rather than from the last released frame (which may be None early on).
        self._newest_read = resume_cursor
        self._profiles = ProfileCache(settings.profiles_cache_size)
        self._bucket = TokenBucket(
            rate=settings.profiles_requests_per_second,
            burst=max(1.0, settings.profiles_requests_per_second),
            now=time.monotonic(),
        )
        self._lookup_kinds = frozenset(settings.profiles_kinds)
        self._held: deque[_Held] = deque()
        self._wanted: dict[str, float] = {}
        self._inflight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None

    def connect_cursor(self) -> int | None:
        """Where the next connection starts: a few seconds before the newest frame read."""
        newest = max(
            (t for t in (self.position_seen, self._newest_read) if t is not None), default=None
        )
        if newest is None:
            return None
        return max(0, newest - int(self.js.rewind_seconds * 1_000_000))

    async def run(self) -> None:
        """Run sessions; with profile lookups on, also the task that releases held events."""
        if not self.js.profiles_enabled:
            await super().run()
            return
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(
            base_url=self.js.profiles_url,
            timeout=self.js.profiles_timeout_seconds,
            headers={
                "User-Agent": self.js.user_agent,
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",  # what read_capped decodes, piece by piece
            },
        )
        releaser = asyncio.create_task(self._release_loop())
        try:
            await super().run()
        finally:
            releaser.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(releaser, *self._tasks, return_exceptions=True)
            await self._client.aclose()

    async def session(self) -> None:
        """One WebSocket connection, read until it ends."""
        url = subscribe_url(self.url, self.js, self.connect_cursor())
        log.info("jetstream: connecting to %s", redact_url(url))
        max_size = self.js.max_message_bytes
        if self._let_oversize_through:
            max_size *= OVERSIZE_ALLOWANCE
            self._let_oversize_through = False
        try:
            ws_cm = connect(
                url,
                open_timeout=self.js.connect_timeout_seconds,
                max_size=max_size,
                close_timeout=1.0,
                user_agent_header=self.js.user_agent,
            )
        except InvalidURI as exc:
            raise FatalFeedError(f"jetstream: invalid URL {redact_url(self.url)}: {exc}") from exc
        try:
            async with ws_cm as ws:
                gap = self.on_connected()
                if gap is not None:
                    log.info(
                        "jetstream: reconnected after %.2fs, resuming at cursor %s",
                        gap,
                        self.connect_cursor(),
                    )
                while True:
                    try:
                        # Bytes as they came: no str copy of the frame (up to max_size) only to
                        # be encoded again.
                        raw = await ws.recv(decode=False)
                    except ConnectionClosedOK:
                        return
                    self.frame_received()
                    await self._handle(raw)
        except ConnectionClosedError as exc:
            if exc.sent is not None and exc.sent.code == CLOSE_MESSAGE_TOO_BIG:
                log.warning(
                    "jetstream: a message exceeded %d bytes; reconnecting once with a %dx limit "
                    "to read it past (it becomes a dead letter)",
                    self.js.max_message_bytes,
                    OVERSIZE_ALLOWANCE,
                )
                self._let_oversize_through = True
            raise
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status not in (408, 429):
                raise FatalFeedError(f"jetstream: handshake rejected with HTTP {status}") from exc
            raise
        except InvalidURI as exc:
            raise FatalFeedError(f"jetstream: invalid URL {redact_url(self.url)}: {exc}") from exc

    def _seen(self, time_us: int | None) -> None:
        if time_us is not None and (self.position_seen is None or time_us > self.position_seen):
            self.position_seen = time_us

    async def _handle(self, raw: bytes) -> None:
        received_at = datetime.now(UTC)
        self.metrics.frames += 1
        frame = map_frame(raw, received_at, self.js.max_future_skew_seconds)
        if frame.time_us is not None and (
            self._newest_read is None or frame.time_us > self._newest_read
        ):
            self._newest_read = frame.time_us
        if frame.ignored is not None:
            self.metrics.ignored += 1
        if self._wake is None:
            items = [finalize(e, raw, received_at) for e in frame.events] + frame.items
            if items:
                await self.put(Entry(tuple(items), frame.time_us))
            self._seen(frame.time_us)
            return
        await self._hold(frame, raw, received_at)

    # -- profile enrichment (only when profiles_enabled) ------------------------------------

    async def _hold(self, frame: JetstreamFrame, raw: bytes, received_at: datetime) -> None:
        # A held frame keeps only what its dead letters may quote: up to queue_size frames wait.
        raw = raw[:RAW_EXCERPT_BYTES]
        now = time.monotonic()
        needed: set[str] = set()
        for event in frame.events:
            did = event["author"]["id"]
            if event["kind"] not in self._lookup_kinds:
                continue
            if self._profiles.known(did, now):
                self.metrics.profile_cache_hits += 1
                continue
            needed.add(did)
        if not frame.events and not frame.items and not self._held:
            self._seen(frame.time_us)
            return
        if not needed and not self._held:
            await self._emit(
                _Held(frame.time_us, raw, received_at, frame.events, frame.items, needed, now)
            )
            return
        # Bounded: while the flow is behind, stop reading rather than hold without limit.
        while len(self._held) >= self.js.queue_size:
            await asyncio.sleep(0.005)
        for did in needed:
            if did not in self._inflight:
                self._wanted.setdefault(did, now)
        hold = self.js.profiles_hold_ms / 1000.0
        self._held.append(
            _Held(frame.time_us, raw, received_at, frame.events, frame.items, needed, now + hold)
        )
        if len(self._wanted) >= self.js.profiles_batch_size:
            self._launch(now)
        assert self._wake is not None
        self._wake.set()

    async def _emit(self, held: _Held) -> None:
        now = time.monotonic()
        items = [finalize(e, held.raw, held.received_at, self._profiles, now) for e in held.events]
        items += held.items
        if items:
            await self.put(Entry(tuple(items), held.time_us))
        self._seen(held.time_us)

    def _launch(self, now: float) -> None:
        """Start lookups for the wanted actors, batch by batch, as the rate limit allows."""
        size = self.js.profiles_batch_size
        while self._wanted:
            batch = list(self._wanted)[:size]
            for did in batch:
                del self._wanted[did]
            if not self._bucket.take(now):
                # Over the rate limit: these events flow on without followers (not cached, so a
                # later event of the same author tries again).
                self.metrics.profile_rate_limited += 1
                continue
            self._inflight.update(batch)
            task = asyncio.create_task(self._lookup(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lookup(self, dids: list[str]) -> None:
        assert self._client is not None
        self.metrics.profile_requests += 1
        try:
            async with self._client.stream(
                "GET", "/xrpc/app.bsky.actor.getProfiles", params=[("actors", d) for d in dids]
            ) as resp:
                resp.raise_for_status()
                # 25 profiles are a few KiB: a body past the cap is a hostile server's.
                body, more = await read_capped(resp, MAX_BODY_BYTES)
            if more:
                raise ValueError(f"getProfiles body over {MAX_BODY_BYTES} bytes")
            found = parse_profiles(body)
            now = time.monotonic()
            for did in dids:
                profile = found.get(did)
                if profile is None:  # deleted, taken down or unknown: do not ask again soon
                    self._profiles.put(
                        did, Profile(None, None), now, self.js.profiles_failure_ttl_seconds
                    )
                else:
                    self._profiles.put(did, profile, now, self.js.profiles_cache_ttl_seconds)
        except Exception as exc:  # any failure: events flow on without followers
            self.metrics.profile_failures += 1
            if (
                self.metrics.profile_failures in (1, 10, 100)
                or self.metrics.profile_failures % 1000 == 0
            ):
                log.warning(
                    "jetstream: profile lookup failed (%s: %s); %d failures so far",
                    type(exc).__name__,
                    exc,
                    self.metrics.profile_failures,
                )
            now = time.monotonic()
            for did in dids:
                self._profiles.put(
                    did, Profile(None, None), now, self.js.profiles_failure_ttl_seconds
                )
        finally:
            self._inflight.difference_update(dids)
            if self._wake is not None:
                self._wake.set()

    async def _release_loop(self) -> None:
        """Release held frames in arrival order once their authors are resolved or time is up."""
        assert self._wake is not None
        wait_s = self.js.profiles_batch_wait_ms / 1000.0
        while True:
            now = time.monotonic()
            if self._wanted and now - next(iter(self._wanted.values())) >= wait_s:
                self._launch(now)
            while self._held:
                head = self._held[0]
                pending = any(d in self._wanted or d in self._inflight for d in head.dids)
                if pending and now < head.deadline:
                    break
                if pending:
                    self.metrics.profile_timeouts += 1
                self._held.popleft()
                await self._emit(head)
            timeouts = [0.05]
            if self._held:
                timeouts.append(self._held[0].deadline - now)
            if self._wanted:
                timeouts.append(next(iter(self._wanted.values())) + wait_s - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.001, min(timeouts)))


class JetstreamPartition(FeedPartition[int]):
    """The single Jetstream partition; its snapshot is the newest `time_us` delivered."""

    def _advance(self, position: int | None) -> None:
        # time_us is not strictly ordered between repositories: keep the maximum.
        if position is not None and (self._position is None or position > self._position):
            self._position = position


class JetstreamSource(FeedSource[int]):
    """Bluesky Jetstream as a Bytewax source (one partition, resumable by `time_us` cursor).

    `url`: ws(s)://HOST[/subscribe][?wantedCollections=...].
    """

    part_name = "jetstream"
    settings: JetstreamSettings

    def make_partition(self, resume_state: int | None) -> JetstreamPartition:
        """Connect, resuming a few seconds before `resume_state` (a time_us) when given."""
        reader = JetstreamReader(self.url, self.settings, resume_state)
        return JetstreamPartition(reader, self.batch_size, resume_state)
