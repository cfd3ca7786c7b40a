"""The oracle of the ingestion fuzz test (`test_fuzz_ingest.py`), built from the contract (README
"Input contract"), not from the parser: what each generated line must become (`Expect`), the
reason groups of dead letters, timestamps range-checked with plain datetime arithmetic, and the
pure property that `parse_event` agrees with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from operators.events import EVENT_FIELDS, RAW_EXCERPT_BYTES, DeadLetter, SocialEvent, parse_event

NOW = datetime.now(UTC).replace(microsecond=0)
"""Valid events are dated before this; future ones a day after (the flow reads the clock)."""
BRAND = "acme"
"""Every valid text mentions the business, so that listening keeps it."""
BOM = b"\xef\xbb\xbf"

# Reason groups of dead letters, by the reason's prefix.
NOT_JSON = "not JSON"
NOT_OBJECT = "not a JSON object"
INVALID = "invalid event"
FUTURE = "in the future"
TOO_LARGE = "line too large"
ANY_REASON = frozenset({NOT_JSON, NOT_OBJECT, INVALID, FUTURE, TOO_LARGE})


def reason_group(reason: str) -> str:
    """The group a dead letter's reason belongs to."""
    for group in (NOT_JSON, NOT_OBJECT, INVALID, TOO_LARGE):
        if reason.startswith(group):
            return group
    return FUTURE if FUTURE in reason else reason


@dataclass(frozen=True)
class Expect:
    """What one line must become: "valid" (with its customer when it is a post), "blank", or
    "invalid" with the reason groups it may be dead-lettered for."""

    outcome: str
    reasons: frozenset[str] = frozenset()
    customer: str | None = None
    label: str = ""


VALID_POST = "valid"


@dataclass(frozen=True)
class Case:
    """A generated line, rendered once a unique id suffix is known (ids are unique per line so
    that de-duplication never hides a valid post; duplicates are generated on purpose)."""

    render: Callable[[int], list[tuple[bytes | str, Expect]]]


Rendered = list[tuple[bytes | str, Expect]]


# The contract's fields and kinds of events.
KNOWN_FIELDS = frozenset(EVENT_FIELDS)
TEXT_KINDS = ("post", "reply", "quote")
TARGET_KINDS = ("reply", "quote", "repost", "like", "follow")


def fits_range(stamp: str) -> bool:
    """Whether an RFC 3339 text's UTC instant lies within year 1..9999 (contract oracle)."""
    local = datetime.fromisoformat(stamp.replace("z", "Z").replace("t", "T").replace(" ", "T"))
    try:
        local.astimezone(UTC)
    except OverflowError:
        return False
    return True


def as_bytes(raw: bytes | str) -> bytes:
    """A line as the parser sees it: a str with lone surrogates keeps them (as invalid UTF-8)."""
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw


def customer_of(event: dict[str, Any]) -> str | None:
    if event["kind"] not in TEXT_KINDS:
        return None
    return f"{event.get('platform', 'generic')}:{event['author']['id']}"


def with_uid(event: dict[str, Any], uid: int) -> dict[str, Any]:
    return {**event, "id": f"{event['id']}#{uid}"}


def expect_valid(event: dict[str, Any], customer: bool = True) -> Expect:
    stamps = [event["created_at"]] + ([event["edited_at"]] if event.get("edited_at") else [])
    if not all(fits_range(s) for s in stamps):
        return Expect("invalid", frozenset({INVALID}), label="timestamp beyond year 1..9999")
    return Expect(VALID_POST, customer=customer_of(event) if customer else None)


def expect_not_json(label: str) -> Expect:
    return Expect("invalid", frozenset({NOT_JSON}), label=label)


def check_parsed(raw: bytes | str, expect: Expect) -> None:
    """The pure property: `parse_event` never raises and agrees with the oracle."""
    out = parse_event(raw, NOW, "fuzz")
    if expect.outcome == "blank":
        assert out is None, (raw, out)
    elif expect.outcome == VALID_POST:
        assert isinstance(out, SocialEvent), (raw, out.reason if out else out)
        assert out.created_at.tzinfo is UTC
    else:
        assert isinstance(out, DeadLetter), (expect.label, raw, out)
        assert reason_group(out.reason) in expect.reasons, (expect.label, raw, out.reason)
        assert out.raw == as_bytes(raw)[:RAW_EXCERPT_BYTES]
        assert len(out.reason) <= 1024
