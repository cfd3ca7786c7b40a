"""Mastodon streaming frames -> the flow's items: pure mapping, no I/O (`connectors.mastodon`
reads the stream, `connectors.sse` parses its frames).

- `update` (a Status as JSON): post, reply (`in_reply_to_account_id`), quote (`quote` with an
  accepted, embedded `quoted_status`), or repost (`reblog`: a repost of the original author);
  `content` HTML becomes plain text with entities decoded; `mentions` -> mentions;
- `status.update` -> the same status with `edited_at` set: the flow replaces and re-scores it;
- `delete` (a bare status id) -> `Withdrawal` of a post this source delivered earlier;
- `notification`: `mention`/`quote` -> the notification's status as an event (same id as the
  `update` of the same status, so the flow keeps one), `reblog`/`favourite` -> repost/like of
  the brand's status by the notifying account;
- anything else (`filters_changed`, `announcement*`, `conversation`, ...) is ignored; frames that
  cannot be read become dead letters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import ValidationError

from connectors.feed_reader import FeedItem
from connectors.sse import SseFrame
from operators.events import MAX_LINE_BYTES, DeadLetter, SocialEvent, describe_validation_error
from operators.records import Withdrawal

PLATFORM = "mastodon"
SOURCE = "mastodon"
PRIVATE_VISIBILITIES = frozenset({"direct", "private"})
"""Statuses meant for a few people (direct messages, followers-only): never alert evidence on a
shared channel unless `mastodon.include_private` says so."""


# -- HTML to text ------------------------------------------------------------------------------

_BLOCKS = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4"})


class _TextExtractor(HTMLParser):
    """Mastodon's sanitized status HTML -> plain text: paragraphs become blank-line separated,
    `<br>` a newline, entities decoded (convert_charrefs). The `quote-inline` fallback paragraph
    ("RE: link") that Mastodon adds for clients without quote support is dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_depth:
            self._skip_depth += tag not in ("br", "img", "hr")
            return
        classes = (dict(attrs).get("class") or "").split()
        if "quote-inline" in classes and tag not in ("br", "img", "hr"):
            self._skip_depth = 1
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br" and not self._skip_depth:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of a status's HTML `content` (entities decoded, paragraphs kept apart)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


# -- status mapping ----------------------------------------------------------------------------


def _account(obj: object) -> dict[str, Any] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
        return None
    out: dict[str, Any] = {"id": obj["id"]}
    handle = _full_handle(obj)
    if handle:
        out["handle"] = handle
    followers = obj.get("followers_count")
    if type(followers) is int and followers >= 0:
        out["followers"] = followers
    return out


def _full_handle(obj: dict[str, Any]) -> str | None:
    """`user@instance` for every account: Mastodon writes a local account's `acct` (one of
    the server the stream comes from) as plain `user`. Without its instance the brand's own
    account on its home server would not match a `user@instance` brand entry, and `user` alone
    names a different account on every server. The instance is the host of the account's
    profile `url` (a server whose handles use another domain than its web address is not told
    apart)."""
    acct = obj.get("acct")
    if not isinstance(acct, str) or not acct:
        return None
    if "@" in acct:
        return acct
    url = obj.get("url")
    host = urlsplit(url).hostname if isinstance(url, str) else None
    return f"{acct}@{host}" if host else acct


def _status_text(status: dict[str, Any]) -> str | None:
    content = status.get("content")
    if not isinstance(content, str):
        return None
    text = html_to_text(content)
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        # The content warning is part of what the author wrote (and often the angry part).
        text = f"{spoiler.strip()}\n\n{text}" if text else spoiler.strip()
    return text


def _mentions(status: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for mention in status.get("mentions") or []:
        if isinstance(mention, dict) and isinstance(mention.get("id"), str) and mention["id"]:
            out.append({"id": mention["id"], "handle": _full_handle(mention)})
    return out


def _quoted_account(status: dict[str, Any]) -> dict[str, Any] | None:
    quote = status.get("quote")
    if not isinstance(quote, dict) or quote.get("state") not in (None, "accepted"):
        return None
    quoted = quote.get("quoted_status")
    return _account(quoted.get("account")) if isinstance(quoted, dict) else None


def status_event(
    status: dict[str, Any], edited_at: datetime | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """A Mastodon Status as a SocialEvent v1 dict (not validated), or (None, reason).

    `edited_at` marks a `status.update`: the status's own `edited_at` wins when present.
    """
    status_id = status.get("id")
    if not isinstance(status_id, str) or not status_id:
        return None, "status without id"
    author = _account(status.get("account"))
    if author is None:
        return None, "status without account id"
    event: dict[str, Any] = {
        "id": status_id,
        "platform": PLATFORM,
        "created_at": status.get("created_at"),
        "author": author,
    }
    url = status.get("url") or status.get("uri")
    if isinstance(url, str):
        event["url"] = url
    lang = status.get("language")
    if isinstance(lang, str):
        event["lang"] = lang
    reblog = status.get("reblog")
    if isinstance(reblog, dict):
        original = _account(reblog.get("account"))
        if original is None:
            return None, "reblog without account"
        event["kind"] = "repost"
        event["target"] = original
        return event, None
    text = _status_text(status)
    if text is None:
        return None, "status without content"
    event["text"] = text
    event["kind"] = "post"
    mentions = _mentions(status)
    if mentions:
        event["mentions"] = mentions
    reply_to = status.get("in_reply_to_account_id")
    quoted = _quoted_account(status)
    if isinstance(reply_to, str) and reply_to:
        handle = next((m["handle"] for m in mentions if m["id"] == reply_to), None)
        event["kind"] = "reply"
        event["target"] = {"id": reply_to, "handle": handle}
        if isinstance(status.get("in_reply_to_id"), str):
            event["in_reply_to"] = status["in_reply_to_id"]
    elif quoted is not None:
        event["kind"] = "quote"
        event["target"] = quoted
    if edited_at is not None:
        own = status.get("edited_at")
        event["edited_at"] = own if isinstance(own, str) and own else edited_at
    return event, None


@dataclass(slots=True)
class MappedFrame:
    """What one SSE frame became."""

    items: list[FeedItem] = field(default_factory=list)
    status_id: str | None = None
    ignored: str | None = None


class MastodonMapper:
    """Maps SSE frames to flow items. Remembers (bounded) which account wrote each delivered
    post, because a `delete` carries only the status id."""

    def __init__(
        self,
        notification_types: list[str],
        status_memory: int = 100_000,
        include_private: bool = False,
    ) -> None:
        self._types = frozenset(notification_types)
        self._include_private = include_private
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_size = status_memory
        self.unknown_deletes = 0

    def _private(self, status: dict[str, Any]) -> bool:
        """Whether a status is direct or followers-only and such statuses are not taken.

        A reblog carries its own visibility and its original's; either being private counts.
        """
        if self._include_private:
            return False
        reblog = status.get("reblog")
        original = reblog.get("visibility") if isinstance(reblog, dict) else None
        return status.get("visibility") in PRIVATE_VISIBILITIES or original in PRIVATE_VISIBILITIES

    def _remember(self, event: SocialEvent) -> None:
        if event.kind in ("post", "reply", "quote"):
            self._memory[event.id] = event.author.id
            self._memory.move_to_end(event.id)
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def _validated(self, event: dict[str, Any], raw: bytes, received_at: datetime) -> FeedItem:
        try:
            out = SocialEvent.model_validate(event)
        except ValidationError as exc:
            return DeadLetter(
                f"mastodon: {describe_validation_error(exc)}", raw, received_at, SOURCE
            )
        except Exception as exc:  # never let one status stall the stream
            return DeadLetter(f"mastodon: {type(exc).__name__}: {exc}", raw, received_at, SOURCE)
        self._remember(out)
        return out

    def map(self, frame: SseFrame, received_at: datetime) -> MappedFrame:
        """Map one SSE frame. Never raises: unreadable frames become dead letters."""
        try:
            return self._map(frame, received_at)
        except Exception as exc:  # a frame that trips anything is a dead letter, never a stall
            reason = f"mastodon: unmappable {frame.event} frame: {type(exc).__name__}: {exc}"
            return MappedFrame([DeadLetter(reason, frame.data.encode(), received_at, SOURCE)])

    def _map(self, frame: SseFrame, received_at: datetime) -> MappedFrame:
        raw = frame.data.encode()
        name = frame.event

        def dead(reason: str) -> MappedFrame:
            return MappedFrame([DeadLetter(f"mastodon: {reason}", raw, received_at, SOURCE)])

        if frame.oversize:
            return dead(f"{name} frame larger than {MAX_LINE_BYTES} bytes")
        if name == "delete":
            status_id = frame.data.strip()
            if not status_id:
                return dead("delete without status id")
            author = self._memory.pop(status_id, None)
            if author is None:
                # Never delivered by this source (or forgotten): nothing to withdraw.
                self.unknown_deletes += 1
                return MappedFrame(ignored="delete of an unknown status")
            return MappedFrame(
                [Withdrawal(status_id, f"{PLATFORM}:{author}", received_at)], status_id
            )
        if name not in ("update", "status.update", "notification"):
            return MappedFrame(ignored=f"event {name!r}")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return dead(f"{name} data is not JSON: {exc}")
        if not isinstance(obj, dict):
            return dead(f"{name} data is not a JSON object: got {type(obj).__name__}")
        if name == "notification":
            return self._notification(obj, raw, received_at)
        if self._private(obj):
            return MappedFrame(ignored=f"{obj.get('visibility')} status")
        event, reason = status_event(obj, received_at if name == "status.update" else None)
        if event is None:
            return dead(f"{name}: {reason}")
        item = self._validated(event, raw, received_at)
        return MappedFrame([item], event["id"])

    def _notification(self, obj: dict[str, Any], raw: bytes, received_at: datetime) -> MappedFrame:
        kind = obj.get("type")
        if kind not in self._types:
            return MappedFrame(ignored=f"notification {kind!r}")
        status = obj.get("status")
        if not isinstance(status, dict):
            return MappedFrame(
                [
                    DeadLetter(
                        f"mastodon: {kind} notification without status", raw, received_at, SOURCE
                    )
                ]
            )
        if self._private(status):
            return MappedFrame(
                ignored=f"{kind} notification of a {status.get('visibility')} status"
            )
        if kind in ("mention", "quote"):
            event, reason = status_event(status)
        else:
            # Someone reblogged / favourited the brand's status: an interaction toward its author.
            actor = _account(obj.get("account"))
            owner = _account(status.get("account"))
            notification_id = obj.get("id")
            if actor is None or owner is None or not isinstance(notification_id, str):
                event, reason = None, "notification without account, status account or id"
            else:
                event, reason = (
                    {
                        "id": f"notification:{notification_id}",
                        "platform": PLATFORM,
                        "kind": "repost" if kind == "reblog" else "like",
                        "created_at": obj.get("created_at"),
                        "author": actor,
                        "target": owner,
                        "in_reply_to": status.get("id"),
                    },
                    None,
                )
        if event is None:
            return MappedFrame(
                [DeadLetter(f"mastodon: {kind} notification: {reason}", raw, received_at, SOURCE)]
            )
        return MappedFrame([self._validated(event, raw, received_at)], event["id"])
