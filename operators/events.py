"""SocialEvent v1: the input contract, validated once at ingestion.

`parse_event` turns one raw line (bytes or str) into either a `SocialEvent` or a `DeadLetter`
carrying the reason. It never raises for bad input: a bad line must never stop the flow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    ConfigDict,
    Field,
    GetPydanticSchema,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import core_schema

from operators.records import from_micros, to_micros

MAX_LINE_BYTES = 1024 * 1024
"""Lines longer than this are dead-lettered before any parsing (1 MiB)."""

RAW_EXCERPT_BYTES = 2048
"""How much of a bad line is kept in its dead letter (and in memory until it is written)."""

MAX_REASON_CHARS = 512
"""A dead letter's reason is cut to this: reasons quote parser messages, which quote input."""

UTF8_BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte order mark at the start of a line is ignored (RFC 8259 lets parsers ignore one;
editors on Windows write it at the start of a file)."""

MAX_TEXT_CHARS = 10_000
"""Longer texts are dead-lettered: VADER's cost grows faster than linearly with length (10k
characters take ~0.4 s, 100k ~45 s), and one such post must not stall the flow. Platforms cap
posts far below this (Bluesky 300 graphemes, Mastodon 500 by default, X 25k for a few)."""

MAX_FUTURE_SECONDS = 3600.0
"""Events dated further ahead of the time they are received are dead-lettered: one event from a
wrong clock would otherwise drag every event-time clock (windows, graph decay, de-duplication)
into the future."""

_MAX_FUTURE = timedelta(seconds=MAX_FUTURE_SECONDS)

_RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _rfc3339_schema(_source: Any, _handler: Any) -> core_schema.CoreSchema:
    # Checked in pydantic-core, no Python call per event (this runs on every line). Lax pydantic
    # would read a number (or a numeric string) as a Unix time, and accepts offsets like +0000;
    # the contract says RFC 3339 text, so the text must match first. Events built in Python (the
    # live feeds) may pass aware datetimes.
    text = core_schema.chain_schema(
        [
            core_schema.str_schema(pattern=_RFC3339, strict=True),
            core_schema.datetime_schema(tz_constraint="aware"),
        ]
    )
    aware = core_schema.datetime_schema(tz_constraint="aware", strict=True)
    return core_schema.json_or_python_schema(
        json_schema=_rfc3339_error(text),
        python_schema=_rfc3339_error(core_schema.union_schema([aware, text])),
    )


def _rfc3339_error(schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    # One error, in the contract's words, instead of one per branch quoting the pattern.
    return core_schema.custom_error_schema(
        schema,
        custom_error_type="rfc3339",
        custom_error_message="must be an RFC 3339 timestamp with an offset",
    )


Rfc3339 = Annotated[datetime, GetPydanticSchema(_rfc3339_schema)]
"""An aware timestamp given as RFC 3339 text (or, from Python, an aware datetime)."""

EventKind = Literal["post", "reply", "quote", "repost", "like", "follow"]
TEXT_KINDS: frozenset[str] = frozenset({"post", "reply", "quote"})
"""Kinds that carry text to score."""
TARGET_KINDS: frozenset[str] = frozenset({"reply", "quote", "repost", "like", "follow"})
"""Kinds that point at another account (an interaction)."""

_T = TypeVar("_T")

NonEmptyStr = Annotated[StrictStr, Field(min_length=1, max_length=512)]
Platform = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[^:\s]+$")]
"""A platform name: no colon, so `{platform}:{id}` customer ids and dedupe keys never collide."""


_MODEL = ConfigDict(extra="ignore")
"""Unknown extra fields are ignored (the contract lets producers add fields)."""


# The models are pydantic dataclasses with slots, not `BaseModel`s: validated the same way in
# pydantic-core, but cheaper to build and to read (a `BaseModel` keeps a `__dict__`, a
# fields-set and extra/private slots per instance, for each event and each of its accounts).
# Every line goes through this: `parse_event` went from 9.9 to 8.0 µs a Higgs line.


@pydantic_dataclass(frozen=True, slots=True, config=_MODEL)
class Account:
    """An account on a platform: the author of an event or its target."""

    id: NonEmptyStr
    handle: StrictStr | None = None
    followers: Annotated[StrictInt, Field(ge=0)] | None = None

    def __reduce__(self) -> tuple:
        return (_account, (self.id, self.handle, self.followers))


@pydantic_dataclass(frozen=True, slots=True, config=_MODEL)
class Mention:
    """An account mentioned in a text."""

    id: NonEmptyStr
    handle: StrictStr | None = None

    def __reduce__(self) -> tuple:
        return (_mention, (self.id, self.handle))


@pydantic_dataclass(frozen=True, slots=True, config=_MODEL)
class SocialEvent:
    """One social event (SocialEvent v1). Unknown extra fields are ignored."""

    id: NonEmptyStr
    kind: EventKind
    created_at: Rfc3339
    author: Account
    platform: Platform = "generic"
    text: Annotated[StrictStr, Field(max_length=MAX_TEXT_CHARS)] | None = None
    target: Account | None = None
    mentions: list[Mention] = dataclasses.field(default_factory=list)
    in_reply_to: StrictStr | None = None
    lang: StrictStr | None = None
    url: StrictStr | None = None
    edited_at: Rfc3339 | None = None
    """Set when the post was edited (e.g. Mastodon `status.update`): the edit replaces the post."""
    read_ns: int = dataclasses.field(default=0, init=False, repr=False, compare=False)
    """When the flow shell read this event (wall clock, ns; `stamp_read`); 0 when not stamped.
    Not an input field (`init=False`: no input can set it), and no decision reads it
    (event-to-alert latency only), so it is not part of an event's equality."""

    @model_validator(mode="after")
    def _kind_and_utc(self) -> SocialEvent:
        # One Python call per event for every check pydantic-core cannot make itself. Parsed
        # times carry pydantic-core's own UTC tzinfo, so `created_at` is converted on every
        # line (`astimezone` is the cheapest way there: 0.27 µs, `replace` 0.53 µs).
        kind = self.kind
        if self.text is None and kind in TEXT_KINDS:
            raise ValueError(f"text is required for kind {kind!r}")
        if self.target is None and kind in TARGET_KINDS:
            raise ValueError(f"target is required for kind {kind!r}")
        if self.created_at.tzinfo is not UTC:
            object.__setattr__(self, "created_at", _in_utc("created_at", self.created_at))
        if self.edited_at is not None and self.edited_at.tzinfo is not UTC:
            object.__setattr__(self, "edited_at", _in_utc("edited_at", self.edited_at))
        return self

    @classmethod
    def model_validate(cls, obj: Any) -> SocialEvent:
        """The event these values describe (a dict, as a feed maps it); raises
        `pydantic.ValidationError`. Named as pydantic names it for its models."""
        return _validate_event(obj)

    def as_json(self) -> dict[str, Any]:
        """The event's input fields as JSON values (what a line of it would hold)."""
        return _EVENT_ADAPTER.dump_python(self, mode="json", exclude={"read_ns"})

    def __reduce__(self) -> tuple:
        # Events cross between Bytewax workers (and into snapshots) pickled. These values were
        # validated at the edge, so they are rebuilt without validating again; datetimes cross
        # as integer microseconds (an aware datetime's tzinfo costs ~7 µs to pickle).
        values = [getattr(self, name) for name in EVENT_FIELDS]
        values[_CREATED_AT] = to_micros(self.created_at)
        values[_EDITED_AT] = to_micros(self.edited_at)
        return (_event, (*values, self.read_ns))

    def stamp_read(self, read_ns: int) -> SocialEvent:
        """Note when the flow shell read this event (wall clock, ns); returns the event."""
        object.__setattr__(self, "read_ns", read_ns)
        return self

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


def _in_utc(name: str, value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name}: out of the representable date range") from None


_validate_event = SocialEvent.__pydantic_validator__.validate_python
"""What `SocialEvent.model_validate` calls, without a Python wrapper (on every line)."""

_EVENT_ADAPTER: TypeAdapter[SocialEvent] = TypeAdapter(SocialEvent)

EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SocialEvent) if f.init)
"""The input fields of SocialEvent v1, in declaration order."""
_CREATED_AT = EVENT_FIELDS.index("created_at")
_EDITED_AT = EVENT_FIELDS.index("edited_at")


def _trusted(cls: type[_T], values: dict[str, Any]) -> _T:
    """Rebuild an already validated instance from its field values, without validation (it
    runs for every event crossing workers)."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def _account(id: str, handle: str | None, followers: int | None) -> Account:
    return _trusted(Account, {"id": id, "handle": handle, "followers": followers})


def _mention(id: str, handle: str | None) -> Mention:
    return _trusted(Mention, {"id": id, "handle": handle})


def _event(*values: Any) -> SocialEvent:
    *field_values, read_ns = values
    fields = dict(zip(EVENT_FIELDS, field_values, strict=True))
    fields["created_at"] = from_micros(fields["created_at"])
    fields["edited_at"] = from_micros(fields["edited_at"])
    fields["read_ns"] = read_ns
    return _trusted(SocialEvent, fields)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A line that is not a valid event, with the reason and an excerpt of the raw input.

    Only the excerpt is kept (`RAW_EXCERPT_BYTES`), from construction on: dead letters wait in
    bounded queues, and a queue of whole 4 MiB frames is not bounded memory.
    """

    reason: str
    raw: bytes
    received_at: datetime
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.raw) > RAW_EXCERPT_BYTES:
            object.__setattr__(self, "raw", bytes(self.raw[:RAW_EXCERPT_BYTES]))
        if len(self.reason) > MAX_REASON_CHARS:
            object.__setattr__(self, "reason", self.reason[: MAX_REASON_CHARS - 3] + "...")

    def fields(self) -> dict[str, bytes]:
        """The Redis stream fields of this dead letter: `reason`, `raw` (truncated), `at`."""
        return {
            "reason": self.reason.encode(),
            "raw": self.raw[:RAW_EXCERPT_BYTES],
            "at": self.received_at.isoformat().encode(),
            "source": self.source.encode(),
        }


def describe_validation_error(
    exc: ValidationError,
    subject: str = "event",
    limit: int = 3,
    say: Mapping[str, str] | None = None,
) -> str:
    """A failed validation on one line (a dead letter's reason, a settings error): the first
    `limit` errors, located, no input quoted (it may be a secret), pydantic's links left out.
    `say` replaces the message of some error types (e.g. `extra_forbidden`)."""
    errors = exc.errors(include_url=False, include_input=False)
    say = say or {}
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or subject
        parts.append(f"{loc}: {say.get(err['type'], err['msg'])}")
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return f"invalid {subject}: " + "; ".join(parts) + more


def parse_event(
    raw: bytes | str, received_at: datetime, source: str = ""
) -> SocialEvent | DeadLetter | None:
    """Parse one JSONL line into a `SocialEvent`, a `DeadLetter`, or None for a blank line."""
    # A str may carry lone surrogates (decoded with errors="surrogateescape"): they are kept as
    # the invalid UTF-8 they stand for, which the JSON parser then rejects.
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > MAX_LINE_BYTES and len(data.rstrip(b"\r\n")) > MAX_LINE_BYTES:
        reason = f"line too large: more than {MAX_LINE_BYTES} bytes"
        return DeadLetter(reason, data[:RAW_EXCERPT_BYTES], received_at, source)
    body = data[3:] if data.startswith(UTF8_BOM) else data
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if not body.strip():  # a blank line (checked only here: the common case is an event)
            return None
        return DeadLetter(f"not JSON: {exc}", data, received_at, source)
    if not isinstance(obj, dict):
        return DeadLetter(f"not a JSON object: got {type(obj).__name__}", data, received_at, source)
    try:
        event = _validate_event(obj)
    except ValidationError as exc:
        return DeadLetter(describe_validation_error(exc), data, received_at, source)
    except Exception as exc:  # a bad line must never stop the flow, whatever it trips
        return DeadLetter(f"invalid event: {type(exc).__name__}: {exc}", data, received_at, source)
    return check_event_time(event, received_at, data, source)


def check_event_time(
    event: SocialEvent, received_at: datetime, raw: bytes = b"", source: str = ""
) -> SocialEvent | DeadLetter:
    """The event, or a dead letter when it is dated more than `MAX_FUTURE_SECONDS` ahead of
    the time it was received (a wrong clock must not drag event time into the future)."""
    if event.created_at <= received_at + _MAX_FUTURE:
        return event
    ahead = (event.created_at - received_at).total_seconds()
    reason = f"created_at {event.created_at.isoformat()} is {ahead:.0f} s in the future"
    raw = raw or orjson.dumps(event.as_json())
    return DeadLetter(reason, raw, received_at, source)
