"""Bluesky Jetstream as a live input: `--input jetstream:wss://HOST/subscribe`.

Jetstream serves the Bluesky firehose as JSON over a WebSocket, no key needed. Each frame is
`{did, time_us, kind, commit|identity|account}`. This module maps frames to the flow's items:

- `app.bsky.feed.post` create -> post, reply (`record.reply.parent`) or quote (`record.embed` of
  type `app.bsky.embed.record` / `recordWithMedia`), mentions from the facets;
  `app.bsky.feed.repost` / `app.bsky.feed.like` -> repost / like of the subject post's author;
  `app.bsky.graph.follow` -> follow. The event id is the record's `at://did/collection/rkey`.
- a post `delete` -> `Withdrawal`; an `account` event with `active: false` -> `AccountPurge`;
- a frame that cannot be read -> `DeadLetter`; anything else is ignored (but moves the cursor).

Resume: the partition's snapshot is the `time_us` of the newest frame handed to the flow. On
resume and on every reconnect the source asks for `cursor = time_us - rewind` so nothing is lost;
the few seconds replayed are dropped by the flow's de-duplication (event ids are stable).

Followers are not in the stream. With `profiles_enabled`, authors are looked up in batches of up
to 25 with `app.bsky.actor.getProfiles` (cached with a TTL, rate-limited); an event waits at most
`profiles_hold_ms` for its author's profile and flows on without followers when the lookup is
slow, rate-limited or failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)

from config.feeds import JetstreamSettings
from connectors.feed_runtime import (
    MAX_BODY_BYTES,
    Entry,
    FatalFeedError,
    FeedItem,
    FeedPartition,
    FeedReader,
    FeedSource,
    read_capped,
    redact_url,
)
from operators.events import (
    MAX_LINE_BYTES,
    RAW_EXCERPT_BYTES,
    DeadLetter,
    SocialEvent,
    describe_validation_error,
)
from operators.records import AccountPurge, Withdrawal

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
SOURCE = "jetstream"
POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
LIKE = "app.bsky.feed.like"
FOLLOW = "app.bsky.graph.follow"
MAPPED_COLLECTIONS = frozenset({POST, REPOST, LIKE, FOLLOW})
MENTION_FEATURE = "app.bsky.richtext.facet#mention"
EMBED_RECORD = "app.bsky.embed.record"
EMBED_RECORD_WITH_MEDIA = "app.bsky.embed.recordWithMedia"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- pure mapping ------------------------------------------------------------------------------


def time_us_to_datetime(time_us: int) -> datetime:
    """Jetstream's `time_us` (Unix microseconds) as an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(microseconds=time_us)


def parse_at_uri(uri: object) -> tuple[str, str, str] | None:
    """`at://AUTHORITY/COLLECTION/RKEY` -> (authority, collection, rkey); None if not one."""
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[5:].split("/")
    if not parts[0]:
        return None
    return parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""


def record_time(value: object, time_us_dt: datetime, max_future_skew_seconds: float) -> datetime:
    """The record's `createdAt`, or Jetstream's time when it is missing, invalid or implausible.

    Clients write `createdAt` themselves; a clock far in the future would push event time (and
    the windows keyed on it) ahead, so beyond `max_future_skew_seconds` the server time wins.
    """
    if not isinstance(value, str):
        return time_us_dt
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return time_us_dt
    if parsed.tzinfo is None:
        return time_us_dt
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. year 9999 with a negative offset
        return time_us_dt
    if (parsed - time_us_dt).total_seconds() > max_future_skew_seconds:
        return time_us_dt
    return parsed


def _quoted_uri(embed: object) -> str | None:
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    record = embed.get("record")
    if kind == EMBED_RECORD and isinstance(record, dict):
        uri = record.get("uri")
    elif kind == EMBED_RECORD_WITH_MEDIA and isinstance(record, dict):
        inner = record.get("record")
        uri = inner.get("uri") if isinstance(inner, dict) else None
    else:
        return None
    return uri if isinstance(uri, str) else None


def facet_mentions(facets: object, text: str) -> list[dict[str, str | None]]:
    """Mentioned accounts from `facets[].features[]` of type `...facet#mention` (deduplicated).

    The handle is the facet's text span (`@alice.bsky.social`), sliced by UTF-8 byte offsets as
    the lexicon defines them.
    """
    if not isinstance(facets, list):
        return []
    encoded: bytes | None = None
    out: list[dict[str, str | None]] = []
    seen: set[str] = set()
    for facet in facets:
        if not isinstance(facet, dict) or not isinstance(facet.get("features"), list):
            continue
        for feature in facet["features"]:
            if not isinstance(feature, dict) or feature.get("$type") != MENTION_FEATURE:
                continue
            did = feature.get("did")
            if not isinstance(did, str) or not did or did in seen:
                continue
            seen.add(did)
            handle = None
            index = facet.get("index")
            if isinstance(index, dict):
                start, end = index.get("byteStart"), index.get("byteEnd")
                if isinstance(start, int) and isinstance(end, int) and 0 <= start < end:
                    if encoded is None:
                        encoded = text.encode()
                    span = encoded[start:end].decode(errors="ignore").strip().lstrip("@")
                    handle = span or None
            out.append({"id": did, "handle": handle})
    return out


@dataclass(slots=True)
class JetstreamFrame:
    """One Jetstream frame, mapped. `events` are SocialEvent v1 dicts, not yet validated (the
    source may still add followers); `items` are finished items (withdrawals, purges, dead
    letters)."""

    time_us: int | None
    events: list[dict[str, Any]] = field(default_factory=list)
    items: list[FeedItem] = field(default_factory=list)
    ignored: str | None = None


def _dead(
    raw: bytes, reason: str, received_at: datetime, time_us: int | None = None
) -> JetstreamFrame:
    return JetstreamFrame(
        time_us, items=[DeadLetter(f"jetstream: {reason}", raw, received_at, SOURCE)]
    )


def map_frame(
    raw: bytes, received_at: datetime, max_future_skew_seconds: float = 300.0
) -> JetstreamFrame:
    """Map one raw Jetstream frame. Never raises: unreadable frames become dead letters."""
    try:
        return _map_frame(raw, received_at, max_future_skew_seconds)
    except Exception as exc:  # a frame that trips anything is a dead letter, never a stall
        return _dead(raw, f"unmappable frame: {type(exc).__name__}: {exc}", received_at)


def _map_frame(raw: bytes, received_at: datetime, max_future_skew_seconds: float) -> JetstreamFrame:
    if len(raw) > MAX_LINE_BYTES:
        return _dead(raw, f"frame too large: {len(raw)} bytes", received_at)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _dead(raw, f"not JSON: {exc}", received_at)
    if not isinstance(obj, dict):
        return _dead(raw, f"not a JSON object: got {type(obj).__name__}", received_at)
    did, time_us, kind = obj.get("did"), obj.get("time_us"), obj.get("kind")
    if type(time_us) is not int or time_us < 0:
        return _dead(raw, "missing or invalid time_us", received_at)
    if not isinstance(did, str) or not did.startswith("did:"):
        return _dead(raw, "missing or invalid did", received_at, time_us)
    ts = time_us_to_datetime(time_us)
    if kind == "commit":
        return _map_commit(raw, obj, did, time_us, ts, received_at, max_future_skew_seconds)
    if kind == "account":
        account = obj.get("account")
        if not isinstance(account, dict):
            return _dead(raw, "account event without account", received_at, time_us)
        if account.get("active") is False:
            at = record_time(account.get("time"), ts, max_future_skew_seconds)
            return JetstreamFrame(time_us, items=[AccountPurge(f"{PLATFORM}:{did}", at)])
        return JetstreamFrame(time_us, ignored="account active")
    return JetstreamFrame(time_us, ignored=f"kind {kind!r}")


def _map_commit(
    raw: bytes,
    obj: dict[str, Any],
    did: str,
    time_us: int,
    ts: datetime,
    received_at: datetime,
    skew: float,
) -> JetstreamFrame:
    commit = obj.get("commit")
    if not isinstance(commit, dict):
        return _dead(raw, "commit event without commit", received_at, time_us)
    op, collection, rkey = commit.get("operation"), commit.get("collection"), commit.get("rkey")
    if not (isinstance(op, str) and isinstance(collection, str) and isinstance(rkey, str)):
        return _dead(raw, "commit without operation/collection/rkey", received_at, time_us)
    if collection not in MAPPED_COLLECTIONS:
        return JetstreamFrame(time_us, ignored=f"collection {collection}")
    if not rkey:
        return _dead(raw, "commit with empty rkey", received_at, time_us)
    uri = f"at://{did}/{collection}/{rkey}"
    if op == "delete":
        if collection == POST:
            return JetstreamFrame(time_us, items=[Withdrawal(uri, f"{PLATFORM}:{did}", ts)])
        # Un-likes, un-reposts and un-follows: interactions simply decay in the graph.
        return JetstreamFrame(time_us, ignored=f"delete of {collection}")
    if op not in ("create", "update"):
        return JetstreamFrame(time_us, ignored=f"operation {op!r}")
    record = commit.get("record")
    if not isinstance(record, dict):
        return _dead(raw, f"{op} without record", received_at, time_us)
    event: dict[str, Any] = {
        "id": uri,
        "platform": PLATFORM,
        "created_at": record_time(record.get("createdAt"), ts, skew),
        "author": {"id": did},
    }
    if collection == POST:
        text = record.get("text")
        if not isinstance(text, str):
            return _dead(raw, "post without text", received_at, time_us)
        event["text"] = text
        event["kind"] = "post"
        event["url"] = f"https://bsky.app/profile/{did}/post/{rkey}"
        reply = record.get("reply")
        parent = reply.get("parent") if isinstance(reply, dict) else None
        parent_uri = parent.get("uri") if isinstance(parent, dict) else None
        parent_at = parse_at_uri(parent_uri)
        quoted_at = parse_at_uri(_quoted_uri(record.get("embed")))
        if parent_at is not None:
            event["kind"] = "reply"
            event["target"] = {"id": parent_at[0]}
            event["in_reply_to"] = parent_uri
        elif quoted_at is not None:
            event["kind"] = "quote"
            event["target"] = {"id": quoted_at[0]}
        mentions = facet_mentions(record.get("facets"), text)
        if mentions:
            event["mentions"] = mentions
        langs = record.get("langs")
        if isinstance(langs, list) and langs and isinstance(langs[0], str):
            event["lang"] = langs[0]
        if op == "update":
            # Posts are normally immutable; an update replaces the post like an edit.
            event["edited_at"] = ts
    elif collection == FOLLOW:
        subject = record.get("subject")
        if not isinstance(subject, str) or not subject.startswith("did:"):
            return _dead(raw, "follow without subject DID", received_at, time_us)
        event["kind"] = "follow"
        event["target"] = {"id": subject}
    else:
        subject = record.get("subject")
        subject_at = parse_at_uri(subject.get("uri") if isinstance(subject, dict) else None)
        if subject_at is None:
            return _dead(raw, f"{collection} without subject at:// uri", received_at, time_us)
        event["kind"] = "repost" if collection == REPOST else "like"
        event["target"] = {"id": subject_at[0]}
        if op == "update":
            return JetstreamFrame(time_us, ignored=f"update of {collection}")
    return JetstreamFrame(time_us, events=[event])


@dataclass(frozen=True, slots=True)
class Profile:
    """What an AppView knows about an account that the stream does not carry."""

    handle: str | None
    followers: int | None


def finalize(
    event: dict[str, Any],
    raw: bytes,
    received_at: datetime,
    profiles: ProfileCache | None = None,
    now: float = 0.0,
) -> SocialEvent | DeadLetter:
    """Validate a mapped event (after adding cached profile data): the edge's single check."""
    if profiles is not None:
        for role in ("author", "target"):
            account = event.get(role)
            if account is None:
                continue
            profile = profiles.get(account["id"], now)
            if profile is not None:
                if profile.followers is not None:
                    account["followers"] = profile.followers
                if profile.handle is not None:
                    account["handle"] = profile.handle
    try:
        return SocialEvent.model_validate(event)
    except ValidationError as exc:
        return DeadLetter(f"jetstream: {describe_validation_error(exc)}", raw, received_at, SOURCE)
    except Exception as exc:  # never let one event stall the feed
        return DeadLetter(f"jetstream: {type(exc).__name__}: {exc}", raw, received_at, SOURCE)


# -- profile lookup ---------------------------------------------------------------------------

_MISSING = object()


class ProfileCache:
    """DID -> Profile, least-recently-used with a per-entry expiry. `now` is monotonic seconds."""

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._data: OrderedDict[str, tuple[float, Profile]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def lookup(self, did: str, now: float) -> Profile | object:
        """The cached profile, or `_MISSING` when unknown or expired."""
        hit = self._data.get(did)
        if hit is None:
            return _MISSING
        if hit[0] <= now:
            del self._data[did]
            return _MISSING
        self._data.move_to_end(did)
        return hit[1]

    def known(self, did: str, now: float) -> bool:
        """Whether the DID has a fresh entry (a profile or a remembered failure)."""
        return self.lookup(did, now) is not _MISSING

    def get(self, did: str, now: float) -> Profile | None:
        """The cached profile, or None."""
        hit = self.lookup(did, now)
        return hit if isinstance(hit, Profile) else None

    def put(self, did: str, profile: Profile, now: float, ttl: float) -> None:
        """Remember a profile (a failure is `Profile(None, None)` with a short ttl)."""
        self._data[did] = (now + ttl, profile)
        self._data.move_to_end(did)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


class TokenBucket:
    """A token bucket: `rate` tokens per second, at most `capacity` saved up."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._at = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def parse_profiles(body: bytes) -> dict[str, Profile]:
    """The `profiles` of an `app.bsky.actor.getProfiles` response, by DID."""
    data = orjson.loads(body)
    out: dict[str, Profile] = {}
    for item in data.get("profiles", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not isinstance(item.get("did"), str):
            continue
        followers = item.get("followersCount")
        handle = item.get("handle")
        out[item["did"]] = Profile(
            handle if isinstance(handle, str) and handle != "handle.invalid" else None,
            followers if type(followers) is int and followers >= 0 else None,
        )
    return out


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
            settings.profiles_requests_per_second,
            max(1.0, settings.profiles_requests_per_second),
            time.monotonic(),
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
