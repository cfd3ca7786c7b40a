"""SocialEvent v1: the input contract, validated once at ingestion.

`parse_event` turns one raw line (bytes or str) into either a `SocialEvent` or a `DeadLetter`
carrying the reason. It never raises for bad input: a bad line must never stop the flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from operators.records import from_micros, to_micros

MAX_LINE_BYTES = 1024 * 1024
"""Lines longer than this are dead-lettered before any parsing (1 MiB)."""

RAW_EXCERPT_BYTES = 2048
"""How much of a bad line is kept in its dead letter."""

EventKind = Literal["post", "reply", "quote", "repost", "like", "follow"]
TEXT_KINDS: frozenset[str] = frozenset({"post", "reply", "quote"})
"""Kinds that carry text to score."""
TARGET_KINDS: frozenset[str] = frozenset({"reply", "quote", "repost", "like", "follow"})
"""Kinds that point at another account (an interaction)."""

NonEmptyStr = Annotated[StrictStr, Field(min_length=1, max_length=512)]


class Account(BaseModel):
    """An account on a platform: the author of an event or its target."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: NonEmptyStr
    handle: StrictStr | None = None
    followers: Annotated[StrictInt, Field(ge=0)] | None = None

    def __reduce__(self) -> tuple:
        return (_account, (self.id, self.handle, self.followers))


class Mention(BaseModel):
    """An account mentioned in a text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: NonEmptyStr
    handle: StrictStr | None = None

    def __reduce__(self) -> tuple:
        return (_mention, (self.id, self.handle))


class SocialEvent(BaseModel):
    """One social event (SocialEvent v1). Unknown extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: NonEmptyStr
    platform: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "generic"
    kind: EventKind
    created_at: AwareDatetime
    author: Account
    text: StrictStr | None = None
    target: Account | None = None
    mentions: list[Mention] = Field(default_factory=list)
    in_reply_to: StrictStr | None = None
    lang: StrictStr | None = None
    url: StrictStr | None = None
    edited_at: AwareDatetime | None = None
    """Set when the post was edited (e.g. Mastodon `status.update`): the edit replaces the post."""

    @field_validator("created_at", "edited_at", mode="before")
    @classmethod
    def _rfc3339_text_only(cls, value: Any) -> Any:
        # Lax pydantic would read a bare number as a Unix time; the contract says RFC 3339.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("created_at must be an RFC 3339 string with an offset")
        return value

    @field_validator("created_at", "edited_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _kind_requirements(self) -> SocialEvent:
        if self.kind in TEXT_KINDS and self.text is None:
            raise ValueError(f"text is required for kind {self.kind!r}")
        if self.kind in TARGET_KINDS and self.target is None:
            raise ValueError(f"target is required for kind {self.kind!r}")
        return self

    def __reduce__(self) -> tuple:
        # Events cross between Bytewax workers (and into snapshots) pickled. Pydantic's default
        # pickling costs ~30 µs an event; these values were validated at the edge, so they are
        # rebuilt without validating again.
        values = [getattr(self, name) for name in _EVENT_FIELDS]
        values[_CREATED_AT] = to_micros(self.created_at)
        values[_EDITED_AT] = to_micros(self.edited_at)
        return (_event, tuple(values))

    @property
    def customer_id(self) -> str:
        """The author's customer id, `{platform}:{author.id}`."""
        return f"{self.platform}:{self.author.id}"

    @property
    def dedupe_key(self) -> str:
        """Events are unique per platform by id; an edit is a new revision of its post."""
        if self.edited_at is None:
            return f"{self.platform}:{self.id}"
        return f"{self.platform}:{self.id}@{self.edited_at.isoformat()}"

    def account_id(self, account_id: str) -> str:
        """The customer id of another account on this event's platform."""
        return f"{self.platform}:{account_id}"


_EVENT_FIELDS = tuple(SocialEvent.model_fields)
_CREATED_AT = _EVENT_FIELDS.index("created_at")
_EDITED_AT = _EVENT_FIELDS.index("edited_at")


_M = TypeVar("_M", bound=BaseModel)


def _trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """Rebuild an already validated model from all its field values, without validation.

    What `model_construct` does, less its per-field default handling (every field is given):
    it runs for every event crossing workers, where `model_construct` alone costs ~3 µs.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def _account(id: str, handle: str | None, followers: int | None) -> Account:
    return _trusted(Account, {"id": id, "handle": handle, "followers": followers})


def _mention(id: str, handle: str | None) -> Mention:
    return _trusted(Mention, {"id": id, "handle": handle})


def _event(*values: Any) -> SocialEvent:
    fields = dict(zip(_EVENT_FIELDS, values, strict=True))
    fields["created_at"] = from_micros(fields["created_at"])
    fields["edited_at"] = from_micros(fields["edited_at"])
    return _trusted(SocialEvent, fields)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A line that is not a valid event, with the reason and an excerpt of the raw input."""

    reason: str
    raw: bytes
    received_at: datetime
    source: str = ""

    def fields(self) -> dict[str, bytes]:
        """The Redis stream fields of this dead letter: `reason`, `raw` (truncated), `at`."""
        return {
            "reason": self.reason.encode(),
            "raw": self.raw[:RAW_EXCERPT_BYTES],
            "at": self.received_at.isoformat().encode(),
            "source": self.source.encode(),
        }


def describe_validation_error(exc: ValidationError) -> str:
    """A dead letter's reason for a failed validation: the first few errors, located."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid event: " + "; ".join(parts) + more


def parse_event(
    raw: bytes | str, received_at: datetime, source: str = ""
) -> SocialEvent | DeadLetter | None:
    """Parse one JSONL line into a `SocialEvent`, a `DeadLetter`, or None for a blank line."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_LINE_BYTES:
        reason = f"line too large: more than {MAX_LINE_BYTES} bytes"
        return DeadLetter(reason, data[:RAW_EXCERPT_BYTES], received_at, source)
    if not data.strip():
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(f"not JSON: {exc}", data, received_at, source)
    if not isinstance(obj, dict):
        return DeadLetter(f"not a JSON object: got {type(obj).__name__}", data, received_at, source)
    try:
        return SocialEvent.model_validate(obj)
    except ValidationError as exc:
        return DeadLetter(describe_validation_error(exc), data, received_at, source)
