"""SocialEvent v1 parsing: every valid shape and every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from operators.events import MAX_LINE_BYTES, RAW_EXCERPT_BYTES, DeadLetter, SocialEvent, parse_event

NOW = datetime(2026, 11, 26, 11, 59, tzinfo=UTC)


def line(**fields: object) -> bytes:
    base: dict[str, object] = {
        "id": "e1",
        "platform": "twitter",
        "kind": "post",
        "created_at": "2026-03-02T10:00:00Z",
        "author": {"id": "u1", "handle": "ann", "followers": 10},
        "text": "I love it",
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_valid_post_fields() -> None:
    ev = parse_event(line(), NOW)
    assert isinstance(ev, SocialEvent)
    assert ev.customer_id == "twitter:u1"
    assert ev.created_at == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert ev.created_at.tzinfo is UTC


def test_offset_is_normalised_to_utc() -> None:
    ev = parse_event(line(created_at="2026-03-02T12:00:00+02:00"), NOW)
    assert isinstance(ev, SocialEvent)
    assert ev.created_at == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert ev.created_at.utcoffset() == timedelta(0)
    assert ev.created_at.tzinfo != timezone(timedelta(hours=2))


def test_defaults_and_unknown_fields() -> None:
    raw = orjson.dumps(
        {
            "id": "e1",
            "kind": "like",
            "created_at": "2026-03-02T10:00:00Z",
            "author": {"id": "u1"},
            "target": {"id": "u2"},
            "something_new": {"x": 1},
        }
    )
    ev = parse_event(raw, NOW)
    assert isinstance(ev, SocialEvent)
    assert ev.platform == "generic"
    assert ev.text is None
    assert ev.mentions == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"id": "e1",', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"42", "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 1100 + b"]" * 1100, "not JSON"),  # deeper than orjson accepts
        (line(kind="shout"), "kind"),
        (line(kind=...), "kind"),
        (line(id=...), "id"),
        (line(id=""), "id"),
        (line(id=17), "id"),
        (line(created_at=...), "created_at"),
        (line(created_at="2026-03-02T10:00:00"), "created_at"),  # no offset
        (line(created_at="yesterday"), "created_at"),
        (line(created_at=1767225600), "created_at"),  # a Unix time is not RFC 3339
        (line(created_at="1767225600"), "created_at"),  # nor is one in a string
        (line(created_at="2026-03-02T10:15:00+0000"), "created_at"),  # offset without colon
        (line(created_at="9999-12-31T23:59:59-01:00"), "created_at"),  # beyond year 9999 in UTC
        (line(created_at="0001-01-01T00:00:00+01:00"), "created_at"),  # before year 1 in UTC
        (line(created_at="2026-11-26T13:00:00Z"), "in the future"),  # 1 h 1 min after NOW
        (line(platform="twitter:x"), "platform"),  # would collide with customer ids
        (line(platform=""), "platform"),
        (line(text="bad " * 2501), "text"),  # over MAX_TEXT_CHARS: VADER would stall
        (line(author=...), "author"),
        (line(author={"handle": "x"}), "author.id"),
        (line(author={"id": "u1", "followers": -1}), "followers"),
        (line(author={"id": "u1", "followers": "many"}), "followers"),
        (line(author={"id": "u1", "followers": 1.5}), "followers"),
        (line(text=...), "text is required"),
        (line(text=None), "text is required"),
        (line(text=5), "text"),
        (line(kind="reply", target=...), "target is required"),
        (line(kind="repost", text=..., target=...), "target is required"),
        (line(kind="follow", text=..., target={"handle": "x"}), "target.id"),
        (line(mentions=[{"handle": "x"}]), "mentions"),
        (line(mentions="bob"), "mentions"),
    ],
)
def test_bad_input_is_dead_lettered(raw: bytes, reason: str) -> None:
    out = parse_event(raw, NOW, source="jsonl:test")
    assert isinstance(out, DeadLetter), out
    assert reason in out.reason
    assert out.received_at == NOW
    fields = out.fields()
    assert set(fields) == {"reason", "raw", "at", "source"}
    assert fields["raw"] == raw[:RAW_EXCERPT_BYTES]


def test_oversized_line_is_dead_lettered_and_truncated() -> None:
    raw = line(text="x" * (MAX_LINE_BYTES + 10))
    out = parse_event(raw, NOW)
    assert isinstance(out, DeadLetter)
    assert "too large" in out.reason
    assert len(out.fields()["raw"]) <= RAW_EXCERPT_BYTES


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \r\n", "  "])
def test_blank_lines_are_skipped(raw: bytes | str) -> None:
    assert parse_event(raw, NOW) is None


@pytest.mark.parametrize("kind", ["reply", "quote", "repost", "like", "follow"])
def test_interactions_with_target_are_valid(kind: str) -> None:
    extra = {"text": "hi"} if kind in {"reply", "quote"} else {"text": ...}
    ev = parse_event(line(kind=kind, target={"id": "u2", "followers": 3}, **extra), NOW)
    assert isinstance(ev, SocialEvent)
    assert ev.target is not None and ev.target.id == "u2"


def test_dedupe_key_distinguishes_edits() -> None:
    plain = parse_event(line(), NOW)
    edited = parse_event(line(edited_at="2026-03-02T10:05:00Z"), NOW)
    assert isinstance(plain, SocialEvent) and isinstance(edited, SocialEvent)
    assert plain.dedupe_key == "twitter:e1"
    assert edited.dedupe_key != plain.dedupe_key


def test_events_pickle_compactly_and_exactly() -> None:
    import pickle

    from operators.records import Influence, ScoredPost, Sentiment

    raw = line(
        kind="reply",
        created_at="2026-03-02T12:00:00.123457+02:00",
        edited_at="2026-03-02T10:05:00.000001Z",
        target={"id": "u2", "followers": 7},
        mentions=[{"id": "u3", "handle": "cy"}],
    )
    ev = parse_event(raw, NOW)
    assert isinstance(ev, SocialEvent)
    clone = pickle.loads(pickle.dumps(ev))
    assert clone == ev
    assert clone.as_json() == ev.as_json() and clone.read_ns == ev.read_ns
    assert clone.created_at == datetime(2026, 3, 2, 10, 0, 0, 123457, tzinfo=UTC)
    assert clone.created_at.tzinfo == UTC
    assert clone.customer_id == ev.customer_id and clone.dedupe_key == ev.dedupe_key
    post = ScoredPost(
        "e1", "twitter:u1", "twitter", "ann", ev.created_at, "t",
        Sentiment(-0.5, 0.0, 0.5, 0.5), Influence(0.9, 0.95, 10, 0.01, 3, 100), True,
    )  # fmt: skip
    assert pickle.loads(pickle.dumps(post)) == post


def test_a_line_of_exactly_the_limit_is_not_too_large() -> None:
    from operators.events import MAX_LINE_BYTES

    raw = line(text="x")
    body = raw[:-1] + b" " * (MAX_LINE_BYTES - len(raw)) + raw[-1:]  # pad before the "}"
    assert len(body) == MAX_LINE_BYTES
    out = parse_event(body + b"\n", NOW)
    assert isinstance(out, SocialEvent)


@pytest.mark.parametrize("created_at", ["2026-11-26T12:58:00Z", "2026-11-26T12:59:00+00:00"])
def test_small_clock_skew_is_accepted(created_at: str) -> None:
    assert isinstance(parse_event(line(created_at=created_at), NOW), SocialEvent)


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        (b"\xef\xbb\xbf" + line(), SocialEvent),  # a UTF-8 BOM (Windows editors) is ignored
        ("\ufeff" + line().decode(), SocialEvent),
        (b"\xef\xbb\xbf", None),  # a BOM alone is a blank line
        (b"\xef\xbb\xbf\xef\xbb\xbf" + line(), DeadLetter),  # one BOM only
        (line()[:1] + b"\xef\xbb\xbf" + line()[1:], DeadLetter),  # not between tokens
        ('{"id": "\udc80"}', DeadLetter),  # a str with a lone surrogate (surrogateescape)
        ("\ud800" + line().decode(), DeadLetter),
        (line(text="NEL \x85 LS \u2028 PS \u2029 FS \x1c"), SocialEvent),  # not line breaks in JSON
    ],
)
def test_byte_order_marks_and_lone_surrogates(raw: bytes | str, outcome: type | None) -> None:
    out = parse_event(raw, NOW)
    assert (out is None) if outcome is None else isinstance(out, outcome), out


def test_dead_letters_keep_capped_excerpts_from_construction() -> None:
    from operators.events import MAX_REASON_CHARS

    letter = DeadLetter("r" * 10_000, b"x" * (4 << 20), NOW)
    assert len(letter.raw) == RAW_EXCERPT_BYTES
    assert len(letter.reason) == MAX_REASON_CHARS and letter.reason.endswith("...")
    assert DeadLetter("short", b"raw", NOW).raw == b"raw"
