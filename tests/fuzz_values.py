"""Hypothesis strategies for the values inside generated events (`test_fuzz_ingest.py`): hostile
text, accounts, JSON values, RFC 3339 timestamps with random syntax, and whole events the contract
accepts (`valid_event`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fuzz_oracle import BRAND, KNOWN_FIELDS, NOW, TARGET_KINDS, TEXT_KINDS
from hypothesis import strategies as st

SPECIALS = [
    "\x85",  # NEL: str.splitlines() splits on it, JSON does not
    "\u2028",
    "\u2029",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x0b",
    "\x0c",
    "\r",
    "\n",
    "\x00",
    "\x1b[31m",
    "\x1b]0;title\x07",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\U0001f600",
    "e\u0301",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U0010ffff",
]
# st.text() is one choice to hypothesis (fast); the specials are spliced in on top.
plain_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
hostile_text = plain_text | st.builds(
    lambda a, special, b: a + special + b, plain_text, st.sampled_from(SPECIALS), plain_text
)
safe_platform = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-.éßж漢"),
    min_size=1,
    max_size=12,
)
followers = st.none() | st.integers(0, 2**64 - 1) | st.sampled_from([0, 2**63 - 1, 2**64 - 1])
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
wrong_for_str = st.one_of(
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
) | st.dictionaries(st.just("x"), st.integers(), min_size=1)
wrong_for_object = st.one_of(
    st.integers(), st.booleans(), hostile_text, st.lists(st.integers(), max_size=2)
)
EPOCH_MIN = datetime(1, 1, 1, tzinfo=UTC)
EPOCH_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


TIME_OFFSETS = st.sampled_from([0, 0, 60, -300, 330, -(23 * 60 + 59), 23 * 60 + 59])
FRACTION_DIGITS = st.sampled_from([0, 0, 3, 6])
UTC_ZONES = st.sampled_from(["Z", "z", "+00:00", "-00:00"])
DATE_TIME_SEPARATORS = st.sampled_from(["T", "T", "t", " "])


@st.composite
def rfc3339(draw: st.DrawFn, instants: st.SearchStrategy[datetime]) -> str:
    """An RFC 3339 timestamp of one of `instants` (naive, read as UTC), with a random offset
    and random optional syntax. Its local time may lie outside year 1..9999 in UTC (then the
    contract says it is invalid: `fits_range` tells)."""
    instant = draw(instants)
    minutes = draw(TIME_OFFSETS)
    try:
        local = instant + timedelta(minutes=minutes)
    except OverflowError:
        minutes, local = 0, instant
    digits = draw(FRACTION_DIGITS)
    frac = f".{local.microsecond:06d}"[: digits + 1] if digits else ""
    if minutes == 0:
        zone = draw(UTC_ZONES)
    else:
        sign = "+" if minutes > 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}{draw(DATE_TIME_SEPARATORS)}"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}{frac}{zone}"
    )


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


past_time = st.one_of(
    rfc3339(st.datetimes(_naive(NOW - timedelta(days=30)), _naive(NOW - timedelta(minutes=1)))),
    rfc3339(st.datetimes(_naive(EPOCH_MIN), _naive(NOW - timedelta(minutes=1)))),
    rfc3339(st.datetimes(_naive(EPOCH_MIN), datetime(10, 1, 1))),  # far past
)
future_time = rfc3339(st.datetimes(_naive(NOW + timedelta(days=1)), _naive(EPOCH_MAX)))
non_empty_text = hostile_text.filter(bool)
optional_text = st.none() | hostile_text
account = st.fixed_dictionaries(
    {"id": non_empty_text},
    optional={"handle": optional_text, "followers": followers},
)
mentions = st.lists(
    st.fixed_dictionaries({"id": non_empty_text}, optional={"handle": optional_text}),
    max_size=3,
)
extra_fields = st.dictionaries(hostile_text, json_value, max_size=3)
ONE_IN = {n: st.integers(0, n - 1) for n in (2, 3, 4, 5, 6, 16, 200)}
EVENT_KINDS = st.sampled_from(["post", "post", "reply", "quote", "repost", "like", "follow"])
TEXT_KIND = st.sampled_from(TEXT_KINDS)
NESTING = st.integers(1, 250)  # deep (orjson writes up to 255 levels)


@st.composite
def valid_event(draw: st.DrawFn, kinds: st.SearchStrategy[str] = EVENT_KINDS) -> dict[str, Any]:
    """A SocialEvent v1 object that the contract accepts, unless one of its timestamps lies
    outside year 1..9999 in UTC (`expect_valid` tells). Its `id` gets a unique suffix."""
    kind = draw(kinds)
    event: dict[str, Any] = {
        "id": draw(hostile_text),
        "kind": kind,
        "created_at": draw(past_time),
        "author": draw(account),
    }
    if draw(ONE_IN[2]):
        event["platform"] = draw(safe_platform)
    if kind in TEXT_KINDS:
        event["text"] = f"{draw(hostile_text)} {BRAND} {draw(hostile_text)}"
    if kind in TARGET_KINDS or not draw(ONE_IN[5]):
        event["target"] = draw(account)
    if not draw(ONE_IN[3]):
        event["mentions"] = draw(mentions)
    for name in ("in_reply_to", "lang", "url"):
        if not draw(ONE_IN[5]):
            event[name] = draw(optional_text)
    if not draw(ONE_IN[6]):
        event["edited_at"] = draw(past_time)
    if not draw(ONE_IN[4]):
        extra = draw(extra_fields)
        event.update({k: v for k, v in extra.items() if k not in KNOWN_FIELDS})
    if not draw(ONE_IN[16]):
        depth = draw(NESTING)
        event["nested"] = json.loads("[" * depth + "]" * depth)
    return event


any_event = valid_event()
text_event = valid_event(TEXT_KIND)
