"""Hypothesis strategies for the generated lines of `test_fuzz_ingest.py`: each case knows what it
is (a valid event in every serializer and framing, a re-delivery, an invalid event breaking one
rule, corrupted JSON, JSON that is no event, garbage bytes, a blank line), plus the fixed lines too
big to generate often.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from fuzz_oracle import (
    ANY_REASON,
    BOM,
    BRAND,
    FUTURE,
    INVALID,
    NOT_OBJECT,
    TARGET_KINDS,
    TEXT_KINDS,
    TOO_LARGE,
    VALID_POST,
    Case,
    Expect,
    Rendered,
    as_bytes,
    expect_not_json,
    expect_valid,
    fits_range,
    with_uid,
)
from fuzz_values import (
    ONE_IN,
    any_event,
    future_time,
    hostile_text,
    json_value,
    text_event,
    wrong_for_object,
    wrong_for_str,
)
from hypothesis import strategies as st

from operators.events import MAX_LINE_BYTES, MAX_TEXT_CHARS


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
