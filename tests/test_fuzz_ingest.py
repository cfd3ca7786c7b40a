"""Property-based fuzzing of ingestion: over 10,000 generated hostile lines through
`parse_event` and through a whole run of the flow (its `parse` step, the real dead-letter sink,
real Redis).

Each generated case knows what it is: a valid event (and which customer it makes), a blank line,
or an invalid line with the reasons it may be dead-lettered for. The oracle is built from the
contract (README "Input contract"), not from the parser: timestamps are range-checked with plain
datetime arithmetic, JSON corruption is injected at known places.

The result must be: no exception anywhere, every invalid line in `{prefix}dlq` with a reason of
its kind, no valid line there, and every valid post's author with a customer view.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax.testing import TestingSource, run_main
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from flows.pipeline import build_flow
from operators.events import (
    EVENT_FIELDS,
    MAX_LINE_BYTES,
    MAX_TEXT_CHARS,
    RAW_EXCERPT_BYTES,
    DeadLetter,
    SocialEvent,
    parse_event,
)

NOW = datetime.now(UTC).replace(microsecond=0)
"""Valid events are dated before this; future ones a day after (the flow reads the clock)."""
BRAND = "acme"
"""Every valid text mentions the business, so that listening keeps it."""
MIN_LINES = 10_000
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
"""Examples per round (FUZZ_EXAMPLES=1000 for a longer hunt)."""
BATCH = 60
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


# -- building blocks ---------------------------------------------------------------------------

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
KNOWN_FIELDS = frozenset(EVENT_FIELDS)
TEXT_KINDS = ("post", "reply", "quote")
TARGET_KINDS = ("reply", "quote", "repost", "like", "follow")
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


def compact(value: Any) -> bytes:
    """JSON as json.dumps writes it: numbers beyond 64 bits as they are (orjson refuses)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


SERIALIZERS: list[Callable[[Any], bytes]] = [
    orjson.dumps,
    lambda v: json.dumps(v, ensure_ascii=True).encode(),
    lambda v: json.dumps(v, ensure_ascii=False, indent=1).replace("\n", " ").encode(),
]
FRAMINGS = [(b"", b""), (b"", b"\n"), (b"", b"\r\n"), (b"  ", b" \t\n"), (BOM, b"\n")]
"""(prefix, suffix) of a line: newline styles, surrounding whitespace, a UTF-8 byte order mark
(RFC 8259 lets parsers ignore one; Windows editors write it)."""
Rendered = list[tuple[bytes | str, Expect]]


@st.composite
def valid_lines(draw: st.DrawFn) -> Case:
    """A valid event, written by every serializer in every framing (half of them handed over
    as str): the same event must be read the same way however it is framed."""
    event = draw(any_event)

    def render(uid: int) -> Rendered:
        out: Rendered = []
        for i, dump in enumerate(SERIALIZERS):
            for j, (head, tail) in enumerate(FRAMINGS):
                ev = with_uid(event, uid + len(out))
                raw = head + dump(ev) + tail
                out.append((raw.decode() if (i + j) % 2 else raw, expect_valid(ev)))
        return out

    return Case(render)


@st.composite
def duplicate_lines(draw: st.DrawFn) -> Case:
    """The same event twice (a re-delivery), and the same id by someone else (valid, but a
    duplicate: processed once, so the impostor gets no view from it)."""
    event = draw(text_event)

    def render(uid: int) -> Rendered:
        ev = with_uid(event, uid)
        first = (orjson.dumps(ev), expect_valid(ev))
        impostor = {**ev, "author": {"id": f"impostor#{uid}"}}
        return [first, first, (orjson.dumps(impostor), expect_valid(impostor, customer=False))]

    return Case(render)


REQUIRED = ("id", "kind", "created_at", "author")
WRONG_TYPED_FIELDS = st.sampled_from(
    ["id", "kind", "created_at", "author", "text", "target", "mentions", "platform", "lang"]
)
wrong_mentions = st.one_of(st.integers(), hostile_text, st.just({"id": "x"}), st.just([1]))
BAD_FOLLOWERS = st.sampled_from(
    [-1, -(2**63), 2**64, 10**30, 1.5, 1e300, 0.0, "12", True, [1], {"n": 1}]
)
BAD_PLATFORMS = st.sampled_from(
    ["", "a:b", "two words", "tab\t", "nl\n", "\nnl", "\u2003", "\x85", "\u3000", "x" * 65]
)
unknown_kinds = hostile_text.filter(lambda k: k not in TEXT_KINDS + TARGET_KINDS)
BAD_IDS = st.sampled_from(["", "x" * 513])
BAD_TIMES = st.sampled_from(
    [
        "2026-03-02T10:00:00",  # naive
        "2026-03-02",
        "2026-03-02T10:00Z",
        "2026-03-02T10:00:00+0000",
        "2026-03-02T10:00:00+00",
        "2026-03-02T10:00:00 +00:00",
        "2026-03-02T10:00:00.Z",
        "2026-13-02T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T10:00:61Z",
        "2026-03-02T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
        "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
        "+12026-03-02T10:00:00Z",
        "\u0662\u0660\u0662\u0666-03-02T10:00:00Z",  # Arabic-Indic digits
        "2026-03-02T10:00:00Z\n",
        " 2026-03-02T10:00:00Z",
        "yesterday",
        "",
        "1767225600",
        1767225600,
        1.7e9,
        None,
        [],
        {},
    ]
)
MUTATIONS = st.sampled_from(
    ["wrong_type", "missing", "followers", "kind", "platform", "id", "time", "future", "text"]
)


@st.composite
def invalid_event_lines(draw: st.DrawFn) -> Case:
    """A well-formed JSON object that breaks one rule of the contract, in every framing."""
    event = draw(any_event)
    mutation = draw(MUTATIONS)
    reasons = {INVALID}
    bad = dict(event)
    if mutation == "wrong_type":
        name = draw(WRONG_TYPED_FIELDS)
        if name in ("author", "target"):
            bad[name] = draw(wrong_for_object)
        elif name == "mentions":
            bad[name] = draw(wrong_mentions)
        else:
            bad[name] = draw(wrong_for_str)
        mutation += f" {name}"
    elif mutation == "missing":
        required = list(REQUIRED)
        required += ["text"] if event["kind"] in TEXT_KINDS else []
        required += ["target"] if event["kind"] in TARGET_KINDS else []
        name = draw(st.sampled_from(required))
        del bad[name]
        mutation += f" {name}"
    elif mutation == "followers":
        bad["author"] = {**event["author"], "followers": draw(BAD_FOLLOWERS)}
    elif mutation == "kind":
        bad["kind"] = draw(unknown_kinds)
    elif mutation == "platform":
        bad["platform"] = draw(BAD_PLATFORMS)
    elif mutation == "id":
        bad["id"] = draw(BAD_IDS)
    elif mutation == "time":
        bad["created_at"] = draw(BAD_TIMES)
    elif mutation == "future":
        bad["created_at"] = draw(future_time)
        reasons = {FUTURE} if fits_range(bad["created_at"]) else {INVALID}
    elif not draw(ONE_IN[200]):  # a text over the limit, rarely (it is big)
        bad = {**event, "kind": "post", "text": "z" * (MAX_TEXT_CHARS + 1)}
    else:
        bad["text"] = draw(wrong_for_str)
    if expect_valid(event).outcome == "invalid":
        reasons.add(INVALID)  # the base event was already out of range
    expect = Expect("invalid", frozenset(reasons), label=mutation)

    def render(uid: int) -> Rendered:
        keep_id = mutation == "id" or not isinstance(bad.get("id"), str)
        ev = bad if keep_id else with_uid(bad, uid)
        return [(head + compact(ev) + tail, expect) for head, tail in FRAMINGS]

    return Case(render)


MARK = "\u2603MARK\u2603"
CORRUPTIONS: list[bytes] = [
    b"\xff",  # invalid UTF-8
    b"\xc3\x28",  # a broken two-byte sequence
    b"\xc0\xaf",  # overlong
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xe2\x82",  # truncated sequence
    b"\\ud800",  # a lone high surrogate escape
    b"\\udfff x",  # a lone low surrogate escape
    b"\\ud800\\u0041",  # a high surrogate followed by no low one
    b"\\u12",  # a short escape
    b"\\x41",  # an escape JSON does not have
    b"\x00",  # raw control characters inside a string
    b"\x01",
    b"\x1b",
    b"\x1f",
    b"\t",
    b"\n",
    b'", "followers": NaN, "x": "',
    b'", "followers": Infinity, "x": "',
    b'", "followers": -Infinity, "x": "',
    b'", "followers": 1e400, "x": "',  # beyond a double
    b'", "followers": 0x10, "x": "',
    b'", "followers": 01, "x": "',
    b'", "followers": +1, "x": "',
    b'", "x": ' + b"[" * 1100 + b"]" * 1100 + b', "y": "',  # nesting deeper than 1024
    b'", "x": ' + b'{"a":' * 1100 + b"1" + b"}" * 1100 + b', "y": "',
    b'", "x":\xef\xbb\xbf 1, "y": "',  # a BOM between tokens
    b'", "x": \'single\', "y": "',
    b'", "x": 1,, "y": "',
    b'", "x": 1, "y": "',  # (valid JSON: control case below strips it again)
    b'"}',  # the string closed early, then trailing garbage
]
CORRUPTIONS.remove(b'", "x": 1, "y": "')
TRAILING = [b"}", b"x", b",", b"\x00", BOM, b"{}", b"\x85", b" \x1b[0m"]


@st.composite
def corrupt_lines(draw: st.DrawFn) -> Case:
    """A valid event's JSON with each corruption injected into its text, cut short at three
    points, and with trailing garbage: never JSON."""
    event = draw(text_event)
    cuts = draw(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=3, max_size=3))

    def render(uid: int) -> Rendered:
        raw = orjson.dumps(with_uid({**event, "text": f"{event['text']}{MARK}"}, uid))
        out: Rendered = []
        for injected in CORRUPTIONS:
            label = f"injected {injected[:20]!r}"
            out.append((raw.replace(MARK.encode(), injected, 1), expect_not_json(label)))
        for cut in cuts:
            out.append((raw[: max(1, int(len(raw) * cut))], expect_not_json("truncated")))
        for trailing in TRAILING:
            out.append((raw + trailing, expect_not_json(f"trailing {trailing!r}")))
        return out

    return Case(render)


def expect_not_json(label: str) -> Expect:
    return Expect("invalid", frozenset({NOT_JSON}), label=label)


@st.composite
def not_an_event(draw: st.DrawFn) -> Case:
    """Random JSON that is no event: scalars, arrays, objects of random keys."""
    value = draw(json_value)
    if isinstance(value, dict) and set(REQUIRED) <= set(value):
        value = [value]
    reasons = frozenset({INVALID if isinstance(value, dict) else NOT_OBJECT})
    expect = Expect("invalid", reasons, label="random JSON")

    def render(uid: int) -> Rendered:
        return [(head + orjson.dumps(value) + tail, expect) for head, tail in FRAMINGS]

    return Case(render)


surrogate_text = st.text(st.characters(categories=("Cs", "Cc", "Lu")), min_size=1, max_size=20)


@st.composite
def garbage(draw: st.DrawFn) -> Case:
    """Arbitrary bytes, or a Python str with lone surrogates (what a decoder with
    errors="surrogateescape" hands on): a dead letter for any reason, or blank."""
    raw: bytes | str = draw(
        st.binary(min_size=1, max_size=40) if draw(ONE_IN[2]) else surrogate_text
    )
    body = as_bytes(raw).removeprefix(BOM)
    expect = Expect("blank") if not body.strip() else Expect("invalid", ANY_REASON, label="garbage")
    return Case(lambda uid: [(raw, expect)])


BLANKS: Rendered = [
    (raw, Expect("blank"))
    for raw in (b"", b"\n", b"\r\n", b"  \t \r\n", " ", "\t\n", BOM, BOM + b"\r\n")
]
blank_lines = st.just(Case(lambda uid: BLANKS))

hostile_case = st.one_of(
    valid_lines(),
    valid_lines(),
    duplicate_lines(),
    invalid_event_lines(),
    invalid_event_lines(),
    corrupt_lines(),
    not_an_event(),
    not_an_event(),
    garbage(),
    garbage(),
    blank_lines,
)


# -- checks ------------------------------------------------------------------------------------


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


def fixed_lines() -> list[tuple[bytes | str, Expect]]:
    """Lines too big to generate often: over the 1 MiB limit (dead letters, excerpts only), and
    nesting just within what the JSON parser accepts (valid)."""
    big = orjson.dumps({"id": "big", "kind": "post", "text": "x" * MAX_LINE_BYTES})
    deep = orjson.dumps(
        {
            "id": "deep",
            "kind": "post",
            "created_at": "2026-01-01T00:00:00Z",
            "author": {"id": "deep-author"},
            "text": f"deep {BRAND}",
            "nested": "NEST",
        }
    ).replace(b'"NEST"', b"[" * 1000 + b"]" * 1000)
    return [
        (big, Expect("invalid", frozenset({TOO_LARGE}))),
        (b"[" * (MAX_LINE_BYTES + 1), Expect("invalid", frozenset({TOO_LARGE}))),
        (deep, Expect(VALID_POST, customer="generic:deep-author")),
    ]


def test_fuzzed_lines_never_crash_ingestion_and_all_land_where_they_belong(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    lines: list[tuple[bytes | str, Expect]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # No shrinking: a failing batch is reported as is (each assertion names its line), and
        # shrinking batches of hostile lines takes minutes.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(hostile_case, min_size=10, max_size=BATCH))
    def parse_property(cases: list[Case]) -> None:
        for case in cases:
            for raw, expect in case.render(len(lines)):
                check_parsed(raw, expect)
                lines.append((raw, expect))

    # Hypothesis sizes its examples as it goes: run more rounds (new examples each) until the
    # batch holds enough lines.
    for _ in range(5):
        parse_property()
        if len(lines) >= MIN_LINES:
            break
    for raw, expect in fixed_lines():
        check_parsed(raw, expect)
        lines.append((raw, expect))
    assert len(lines) >= MIN_LINES

    s = Settings(listen={"keywords": [BRAND]}).with_redis_url(redis_url)
    s = s.model_copy(update={"redis": s.redis.model_copy(update={"prefix": redis_prefix})})
    run_main(build_flow(s, TestingSource([raw for raw, _ in lines], batch_size=256)))

    # Every invalid line is in the dead-letter stream with a reason of its kind; no other line is.
    expected: dict[bytes, set[str]] = defaultdict(set)
    invalid_lines = 0
    for raw, expect in lines:
        if expect.outcome == "invalid":
            expected[as_bytes(raw)[:RAW_EXCERPT_BYTES]] |= expect.reasons
            invalid_lines += 1
    found: dict[bytes, list[str]] = defaultdict(list)
    for _, fields in redis_client.xrange(f"{redis_prefix}dlq"):
        found[fields[b"raw"]].append(fields[b"reason"].decode())
    assert set(found) == set(expected), "dead letters differ from the invalid lines"
    for excerpt, reasons in found.items():
        assert {reason_group(r) for r in reasons} <= expected[excerpt], (excerpt, reasons)
    dead_letters = sum(len(r) for r in found.values())
    # Identical bad lines may be folded into one dead letter (idempotent dead letters).
    assert len(expected) <= dead_letters <= invalid_lines

    # Every valid post was processed: its author has a customer view.
    customers = sorted({e.customer for _, e in lines if e.customer is not None})
    pipe = redis_client.pipeline(transaction=False)
    for customer in customers:
        pipe.exists(f"{redis_prefix}customer:{customer}")
    missing = [c for c, ok in zip(customers, pipe.execute(), strict=True) if not ok]
    assert not missing, f"{len(missing)} of {len(customers)} customers have no view: {missing[:5]}"
    print(
        f"fuzz: {len(lines)} lines, {invalid_lines} invalid ({len(expected)} distinct, "
        f"{dead_letters} dead letters), {sum(e.outcome == VALID_POST for _, e in lines)} valid, "
        f"{len(customers)} customers with views"
    )
