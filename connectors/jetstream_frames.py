"""Jetstream frames -> the flow's items: pure mapping, no I/O (`connectors.jetstream` reads them).

Each frame is `{did, time_us, kind, commit|identity|account}`:

- `app.bsky.feed.post` create -> post, reply (`record.reply.parent`) or quote (`record.embed` of
  type `app.bsky.embed.record` / `recordWithMedia`), mentions from the facets;
  `app.bsky.feed.repost` / `app.bsky.feed.like` -> repost / like of the subject post's author;
  `app.bsky.graph.follow` -> follow. The event id is the record's `at://did/collection/rkey`.
- a post `delete` -> `Withdrawal`; an `account` event with `active: false` -> `AccountPurge`;
- a frame that cannot be read -> `DeadLetter`; anything else is ignored (but moves the cursor).

Mapped events stay dicts until `finalize`, so the reader can add profile data (followers,
handle) before the one validation into a `SocialEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from connectors.feed_reader import FeedItem
from connectors.jetstream_profiles import ProfileCache
from operators.events import MAX_LINE_BYTES, DeadLetter, SocialEvent, describe_validation_error
from operators.records import AccountPurge, Withdrawal

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
