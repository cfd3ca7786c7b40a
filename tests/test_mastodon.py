"""Mastodon streaming source: HTML to text, SSE parsing, status mapping (own and real captured
frames), and the source against a real local SSE server: drops, gaps, tokens, redirects."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from feed_plumbing import FAST_FEED, drain, wait_until
from sse_server import SseServer, cassette_sse_bodies, sse_blocks

from config.feeds import MastodonSettings
from config.settings import load_settings
from connectors.feed_runtime import FeedPartition
from connectors.mastodon import MastodonSource
from connectors.mastodon_statuses import MastodonMapper, html_to_text, status_event
from connectors.sse import SseFrame, SseParser
from operators.brands import BrandAccounts
from operators.events import DeadLetter, SocialEvent
from operators.listen import Listener
from operators.records import Withdrawal

FIXTURE = (Path(__file__).parent / "fixtures" / "feeds" / "mastodon_stream.sse").read_text(
    encoding="utf-8"
)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "streaming_fixtures"
NOW = datetime(2026, 5, 28, 13, 0, tzinfo=UTC)
TYPES = ["mention", "quote", "reblog", "favourite"]
ALICE, BOB, CAROL, ACME = (f"11000000000000000{n}" for n in (1, 2, 3, 9))
TOKEN = "tok-SECRET-1234567890"


def fast(**kw: Any) -> MastodonSettings:
    """Settings for tests: quick reconnects and polling."""
    return MastodonSettings(**{**FAST_FEED, **kw})


def frames_of(text: str) -> list[SseFrame]:
    parser = SseParser()
    return [f for line in text.split("\n") if (f := parser.feed(line)) is not None]


def map_all(text: str, include_private: bool = False) -> list[tuple[SseFrame, Any]]:
    """(frame, MappedFrame) for every frame, through one mapper (deletes need its memory)."""
    mapper = MastodonMapper(TYPES, include_private=include_private)
    return [(f, mapper.map(f, NOW)) for f in frames_of(text)]


OWN = map_all(FIXTURE)


@pytest.fixture(autouse=True)
def no_reader_threads_left() -> Iterator[None]:
    yield
    assert wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("sense-respond-")], 3
    )


# -- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello &amp; welcome</p>", "Hello & welcome"),
        ("<p>I&#39;m &quot;done&quot; &#8212; bye</p>", 'I\'m "done" — bye'),
        ("<p>one<br>two<br />three</p>", "one\ntwo\nthree"),
        ("<p>first</p><p>second</p>", "first\n\nsecond"),
        (
            '<span class="h-card"><a href="https://x/@a" class="u-url mention">@<span>a</span>'
            "</a></span> hi",
            "@a hi",
        ),
        (
            '<a href="https://example.com/long/path"><span class="invisible">https://</span>'
            '<span class="ellipsis">example.com/lo</span><span class="invisible">ng/path</span>'
            "</a>",
            "https://example.com/long/path",
        ),
        (
            '<p>agree</p><p class="quote-inline">RE: <a href="https://x/1">x/1</a></p>',
            "agree",
        ),
        ("plain   text\twith  spaces", "plain text with spaces"),
        ("", ""),
        ("<p>unclosed <b>bold", "unclosed bold"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("lines", "expected", "heartbeats"),
    [
        (["event: update", "data: {}", ""], [("update", "{}")], 0),
        ([":thump", "", ":)", "event: delete", "data: 42", ""], [("delete", "42")], 2),
        (["event: update", "data: a", "data: b", ""], [("update", "a\nb")], 0),
        (["event:update", "data:x", ""], [("update", "x")], 0),
        (["data: only data", ""], [("message", "only data")], 0),
        (["id: 7", "retry: 100", "unknown: z", "event: e", "data: d", ""], [("e", "d")], 0),
        (["", "", "event: x"], [], 0),  # blank lines alone dispatch nothing; x not finished
    ],
)
def test_sse_parser(lines: list[str], expected: list[tuple[str, str]], heartbeats: int) -> None:
    parser = SseParser()
    got = [(f.event, f.data) for line in lines if (f := parser.feed(line)) is not None]
    assert got == expected and parser.heartbeats == heartbeats


def test_sse_parser_bounds_oversized_frames() -> None:
    parser = SseParser(max_bytes=10)
    assert parser.feed("event: update") is None
    parser.feed("data: 0123456789abcdef")
    frame = parser.feed("")
    assert frame is not None and frame.oversize and frame.data == ""
    [item] = MastodonMapper(TYPES).map(frame, NOW).items
    assert isinstance(item, DeadLetter) and "larger than" in item.reason


@pytest.mark.parametrize(
    ("index", "event", "kind", "event_id", "author", "target"),
    [
        (0, "update", "post", "112000000000000001", ALICE, None),
        (1, "update", "reply", "112000000000000002", BOB, ALICE),
        (2, "update", "repost", "112000000000000003", CAROL, ALICE),  # reblog
        (3, "update", "quote", "112000000000000004", CAROL, BOB),
        (4, "update", "post", "112000000000000005", CAROL, None),  # shallow quote: no author
        (5, "update", "post", "112000000000000006", BOB, None),
        (6, "status.update", "post", "112000000000000001", ALICE, None),
        (7, "status.update", "post", "112000000000000006", BOB, None),
        (10, "notification", "post", "112000000000000011", ALICE, None),  # mention
        (11, "notification", "like", "notification:9002", BOB, ACME),  # favourite
        (12, "notification", "repost", "notification:9003", CAROL, ACME),  # reblog
        (19, "update", "post", "112000000000000020", CAROL, None),  # multi-line data
    ],
)
def test_own_fixture_events(
    index: int, event: str, kind: str, event_id: str, author: str, target: str | None
) -> None:
    frame, mapped = OWN[index]
    [item] = mapped.items
    assert frame.event == event and isinstance(item, SocialEvent)
    assert (item.platform, item.kind, item.id, item.author.id) == (
        "mastodon",
        kind,
        event_id,
        author,
    )
    assert (item.target.id if item.target else None) == target
    assert item.customer_id == f"mastodon:{author}"


def test_status_fields() -> None:
    post = OWN[0][1].items[0]
    assert post.text == (
        'Three days without internet & the support line says "wait" — I\'m done with @acme.\n'
        "Really angry now.\n\n#outage https://status.acme.example/incidents/42"
    )
    # local accounts: Mastodon writes `alice`, the event says which server
    assert post.author.handle == "alice@social.example" and post.author.followers == 120
    assert [(m.id, m.handle) for m in post.mentions] == [(ACME, "acme@social.example")]
    assert post.created_at == datetime(2026, 5, 28, 10, tzinfo=UTC)
    assert post.lang == "en" and post.url == "https://social.example/@alice/112000000000000001"
    assert post.edited_at is None
    reply = OWN[1][1].items[0]
    assert reply.in_reply_to == "112000000000000001"
    assert (reply.target.handle, reply.author.handle, reply.author.followers) == (
        "alice@social.example",
        "bob@other.example",
        48000,
    )
    repost = OWN[2][1].items[0]
    assert repost.text is None and repost.target.followers == 120
    quote = OWN[3][1].items[0]
    assert quote.text == "Totally agree with this"  # the RE: fallback paragraph is dropped
    assert OWN[5][1].items[0].text == "rant, acme\n\nthe router died again"  # content warning


def test_edits_carry_edited_at() -> None:
    edit = OWN[6][1].items[0]
    assert edit.edited_at == datetime(2026, 5, 28, 10, 30, tzinfo=UTC)
    assert edit.text == "Three days without internet. Support finally called back, thanks."
    assert edit.dedupe_key != OWN[0][1].items[0].dedupe_key
    # a status.update without edited_at (seen in the docs) is stamped with the receive time
    assert OWN[7][1].items[0].edited_at == NOW


def test_deletes_and_ignored_frames() -> None:
    frame, mapped = OWN[8]
    assert frame.event == "delete"
    assert mapped.items == [Withdrawal("112000000000000006", f"mastodon:{BOB}", NOW)]
    assert OWN[9][1].items == [] and OWN[9][1].ignored == "delete of an unknown status"
    assert OWN[13][1].ignored == "notification 'follow'"
    assert OWN[14][1].ignored == "event 'filters_changed'"


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        (15, "update data is not JSON"),
        (16, "update data is not a JSON object"),
        (17, "status without account id"),
        (18, "created_at"),
    ],
)
def test_malformed_frames_are_dead_letters(index: int, reason: str) -> None:
    frame, mapped = OWN[index]
    [dead] = mapped.items
    assert isinstance(dead, DeadLetter) and reason in dead.reason
    assert (dead.raw, dead.received_at, dead.source) == (frame.data.encode(), NOW, "mastodon")


def test_delete_of_reblog_or_twice_withdraws_nothing() -> None:
    mapper = MastodonMapper(TYPES)
    for frame in frames_of(FIXTURE)[:3]:
        mapper.map(frame, NOW)
    assert mapper.map(SseFrame("delete", "112000000000000003"), NOW).items == []  # a reblog
    assert len(mapper.map(SseFrame("delete", "112000000000000001"), NOW).items) == 1
    assert mapper.map(SseFrame("delete", "112000000000000001"), NOW).items == []
    assert mapper.unknown_deletes == 2


def test_status_memory_is_bounded() -> None:
    mapper = MastodonMapper(TYPES, status_memory=2)
    for frame in [*frames_of(FIXTURE)[:2], frames_of(FIXTURE)[4]]:
        mapper.map(frame, NOW)
    assert mapper.map(SseFrame("delete", "112000000000000001"), NOW).items == []  # forgotten
    assert len(mapper.map(SseFrame("delete", "112000000000000005"), NOW).items) == 1


def test_rejected_quote_is_a_post() -> None:
    status = {
        "id": "1",
        "created_at": "2026-05-28T10:00:00Z",
        "content": "<p>x</p>",
        "account": {"id": "7", "acct": "a"},
        "quote": {"state": "rejected", "quoted_status": {"account": {"id": "8"}}},
    }
    event, reason = status_event(status)
    assert reason is None and event is not None and event["kind"] == "post"


def test_token_is_secret() -> None:
    settings = load_settings(overrides={"mastodon": {"access_token": TOKEN}}, environ={})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.redacted())
    assert settings.mastodon.access_token is not None
    assert settings.mastodon.access_token.get_secret_value() == TOKEN


# -- real captured frames ------------------------------------------------------------------------


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixtures absent: {path}")
    return path


@pytest.mark.shared
def test_docs_examples_map() -> None:
    text = shared_path("mastodon_docs_sse", "streaming_examples.sse").read_text(encoding="utf-8")
    results = map_all(text)
    assert len(results) == 17
    assert not [m for _, m in results for i in m.items if isinstance(i, DeadLetter)]
    by_event: dict[str, list[Any]] = {}
    for frame, mapped in results:
        by_event.setdefault(frame.event, []).extend(mapped.items)
    updates = by_event["update"]
    assert [(e.kind, e.author.handle) for e in updates][:2] == [
        ("reply", "freon@letsalllovela.in"),
        ("post", "aiueohisama@mstdn.jp"),
    ]
    assert updates[0].target is not None and updates[0].target.id == "107946650784398271"
    assert updates[0].text == "@disarray glad i was able to help"
    assert all(e.edited_at is not None for e in by_event["status.update"])
    # the mention notification maps to its status
    [mention] = by_event["notification"]
    assert mention.id == "108914343542683797" and mention.text == "@trwnh test"
    # a delete following its update withdraws the post; an unknown one does not
    assert [w.event_id for w in by_event["delete"]] == ["108914398911648589", "108914430312582020"]
    for name in ("filters_changed", "announcement", "conversation"):
        assert by_event[name] == []


@pytest.mark.shared
@pytest.mark.parametrize("include_private", [False, True])
def test_mastodon_py_cassettes_map(include_private: bool) -> None:
    directory = shared_path("mastodon_py_cassettes")
    kinds: Counter[str] = Counter()
    for path in sorted(directory.glob("*.yaml")):
        for _uri, body in cassette_sse_bodies(path):
            for frame, mapped in map_all(body, include_private):
                for item in mapped.items:
                    assert not isinstance(item, DeadLetter), item
                    kinds[f"{frame.event}:{type(item).__name__}"] += 1
    # 1 + 0 + 8 + 1 recorded frames (PROVENANCE.txt): 3 conversations are ignored, and one
    # direct-message update and one mention notification of it are skipped unless asked for.
    assert kinds == {
        "update:SocialEvent": 3 if include_private else 2,
        "notification:SocialEvent": 2 if include_private else 1,
        "status.update:SocialEvent": 1,
        "delete:Withdrawal": 1,
    }


# -- the source against a local SSE server --------------------------------------------------------


def part_for(url: str, settings: MastodonSettings, resume: str | None = None) -> FeedPartition[str]:
    return MastodonSource(url, settings, batch_size=8).build_part("in", "mastodon", resume)


def key(item: Any) -> tuple[str, str | None, str | None]:
    return (
        type(item).__name__,
        getattr(item, "id", getattr(item, "event_id", None)),
        getattr(item, "kind", None),
    )


EXPECTED = [key(i) for _, m in OWN for i in m.items]


def test_own_fixture_through_run_main(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SseServer(FIXTURE, token=TOKEN) as server:
        source = MastodonSource(
            server.url(), fast(access_token=TOKEN, max_events=len(EXPECTED)), batch_size=4
        )
        out: list[Any] = []
        flow = Dataflow("mastodon_own")
        op.output("out", op.input("in", flow, source), TestingSink(out))
        run_main(flow)
        requests = server.requests
    assert [key(i) for i in out] == EXPECTED
    assert requests[0]["authorization"] == f"Bearer {TOKEN}"
    metrics = source.partitions[0].metrics
    assert metrics.heartbeats >= 3 and metrics.dead_letters == 4 and metrics.gaps == 0
    assert TOKEN not in caplog.text


def test_drop_reconnects_and_reports_the_gap(caplog: pytest.LogCaptureFixture) -> None:
    with SseServer(FIXTURE, drops={0: 4, 1: 6}) as server:
        part = part_for(server.url(), fast())
        try:
            items = drain(part, lambda got: len(got) >= len(EXPECTED))
        finally:
            part.close()
        connections = len(server.requests)
    # a live stream continues where it is: nothing was posted during the gaps, nothing is lost
    assert [key(i) for i in items] == EXPECTED
    assert connections == 3
    assert (part.metrics.reconnects, part.metrics.gaps) == (2, 2)
    assert part.metrics.gap_seconds >= 0
    assert sum("stream gap" in r.getMessage() for r in caplog.records) == 2
    assert part.snapshot() == "112000000000000020"


def test_frames_posted_during_a_gap_are_lost_and_counted() -> None:
    with SseServer(FIXTURE, drops={0: 2}, lost_on_drop=3) as server:
        part = part_for(server.url(), fast())
        try:
            items = drain(part, lambda got: len(got) >= len(EXPECTED) - 3)
            time.sleep(0.05)
            items += drain(part, lambda got: False, timeout=0.1)
        finally:
            part.close()
    got = [key(i) for i in items]
    assert got == EXPECTED[:2] + EXPECTED[5:]
    assert part.metrics.gaps == 1


def test_invalid_token_fails_the_source_without_logging_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with SseServer(FIXTURE, token="the-right-one") as server:
        part = part_for(server.url(), fast(access_token=TOKEN))
        try:
            assert wait_until(lambda: part.reader.fatal is not None)
            with pytest.raises(RuntimeError, match="mastodon source failed") as info:
                part.next_batch()
        finally:
            part.close()
    assert "401" in str(info.value.__cause__) and "access_token" in str(info.value.__cause__)
    assert TOKEN not in caplog.text and TOKEN not in repr(part.reader.settings)


def test_token_in_the_url_is_sent_as_a_header(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with SseServer(FIXTURE, token=TOKEN) as server:
        url = server.url(f"/api/v1/streaming/hashtag?tag=acme&access_token={TOKEN}")
        part = part_for(url, fast())
        try:
            items = drain(part, lambda got: len(got) >= len(EXPECTED))
        finally:
            part.close()
        requests = server.requests
    assert [key(i) for i in items] == EXPECTED
    assert requests[0] == {
        "path": "/api/v1/streaming/hashtag?tag=acme",
        "authorization": f"Bearer {TOKEN}",
    }
    assert TOKEN not in caplog.text


def test_redirect_to_the_streaming_host_keeps_the_token() -> None:
    with SseServer(FIXTURE, token=TOKEN, close_at_end=True) as server:
        server.redirect_from = "/api/v1/streaming/public"
        server.redirect_to = server.url("/streaming/public")
        part = part_for(server.url("/api/v1/streaming/public"), fast(access_token=TOKEN))
        try:
            items = drain(part, lambda got: len(got) >= len(EXPECTED))
        finally:
            part.close()
        requests = server.requests
    assert [key(i) for i in items] == EXPECTED
    assert [r["path"] for r in requests[:2]] == ["/api/v1/streaming/public", "/streaming/public"]
    assert requests[1]["authorization"] == f"Bearer {TOKEN}"


def test_silent_connection_is_reopened_after_read_timeout() -> None:
    blocks = sse_blocks(FIXTURE)
    with SseServer("".join(blocks[:3]), heartbeat_interval=2.0) as server:
        part = part_for(server.url(), fast(read_timeout_seconds=0.2))
        try:
            assert wait_until(lambda: (part.next_batch(), part.metrics.reconnects)[1] >= 1, 3)
        finally:
            part.close()


def test_idle_timeout_ends_the_source() -> None:
    with SseServer(FIXTURE, close_at_end=True) as server:
        part = part_for(server.url(), fast(idle_timeout_seconds=0.3))
        items = drain(part, lambda got: False, timeout=4)
    assert [key(i) for i in items][: len(EXPECTED)] == EXPECTED
    with pytest.raises(StopIteration):
        part.next_batch()


# -- direct and followers-only statuses ----------------------------------------------------------

PRIVATE_FIXTURE = (Path(__file__).parent / "fixtures" / "feeds" / "mastodon_private.sse").read_text(
    encoding="utf-8"
)


@pytest.mark.parametrize(
    ("include_private", "expected"),
    [
        # update (direct), conversation, mention of it, update (private), mention of it, unlisted,
        # public: only the unlisted and public statuses become events.
        (False, [f"11300000000000000{n}" for n in (3, 4)]),
        (
            True,
            [f"11300000000000000{n}" for n in (1, 1, 2, 2, 3, 4)],
        ),
    ],
)
def test_direct_and_private_statuses_are_skipped_unless_asked_for(
    include_private: bool, expected: list[str]
) -> None:
    mapped = map_all(PRIVATE_FIXTURE, include_private)
    events = [i for _, m in mapped for i in m.items]
    assert all(isinstance(e, SocialEvent) for e in events)
    assert [e.id for e in events] == expected
    skipped = [m.ignored for _, m in mapped if m.ignored]
    if not include_private:
        assert skipped == [
            "direct status",
            "event 'conversation'",
            "mention notification of a direct status",
            "private status",
            "mention notification of a private status",
        ]


def test_a_reblog_of_a_private_status_is_skipped() -> None:
    frames = frames_of(PRIVATE_FIXTURE)
    private = orjson.loads(frames[3].data)
    reblog = {**private, "id": "113000000000000099", "visibility": "public", "reblog": private}
    frame = SseFrame("update", orjson.dumps(reblog).decode())
    assert MastodonMapper(TYPES).map(frame, NOW).ignored == "public status"
    assert MastodonMapper(TYPES, include_private=True).map(frame, NOW).items


def test_private_statuses_never_reach_the_flow_from_a_live_stream() -> None:
    with SseServer(PRIVATE_FIXTURE) as server:
        part = part_for(server.url(), fast(max_events=2))
        try:
            items = drain(part, lambda got: len(got) >= 2, timeout=20)
        finally:
            part.close()
    assert [i.id for i in items] == ["113000000000000003", "113000000000000004"]


def test_source_lag_is_the_age_of_the_newest_delivered_event() -> None:
    from sense_respond.metrics import REGISTRY

    with SseServer(PRIVATE_FIXTURE) as server:
        source = MastodonSource(server.url(), fast(max_events=2), batch_size=8)
        part = source.build_part("in", "mastodon", None)
        try:
            items = drain(part, lambda got: len(got) >= 2, timeout=20)
        finally:
            part.close()
    newest = max(i.created_at for i in items)
    lag = REGISTRY.get_sample_value("sense_respond_source_lag", {"input": source.input_label})
    assert source.input_label == f"mastodon:{server.url()}"
    assert lag is not None
    assert lag == pytest.approx((datetime.now(UTC) - newest).total_seconds(), abs=120)


@pytest.mark.parametrize(
    ("account", "handle"),
    [
        (
            {"id": "1", "acct": "acme", "url": "https://mastodon.social/@acme"},
            "acme@mastodon.social",
        ),
        (
            {"id": "1", "acct": "acme@other.example", "url": "https://other.example/@acme"},
            "acme@other.example",
        ),
        ({"id": "1", "acct": "acme"}, "acme"),  # no profile url: nothing says which server
        ({"id": "1", "acct": "acme", "url": "not a url"}, "acme"),
        ({"id": "1"}, None),
    ],
)
def test_a_local_account_gets_its_servers_name(account: dict, handle: str | None) -> None:
    status = {
        "id": "9",
        "created_at": "2026-03-02T10:00:00.000Z",
        "content": "<p>hello</p>",
        "account": account,
        "mentions": [account],
    }
    event, _ = status_event(status)
    assert event is not None
    assert event["author"].get("handle") == handle
    assert event["mentions"][0]["handle"] == handle


def test_the_brands_own_account_on_its_home_server_is_the_brand() -> None:
    """mastodon.social's stream writes its own accounts without the server: the brand entry
    `acme@mastodon.social` must still match its posts and the replies to it."""
    acme = {"id": "109", "acct": "acme", "url": "https://mastodon.social/@acme"}
    own = {"id": "1", "created_at": "2026-03-02T10:00:00.000Z", "content": "<p>Sorry!</p>",
           "account": {**acme, "followers_count": 90_000}}  # fmt: skip
    reply = {
        "id": "2",
        "created_at": "2026-03-02T10:01:00.000Z",
        "content": '<p><a href="https://mastodon.social/@acme">@<span>acme</span></a> awful</p>',
        "account": {"id": "55", "acct": "bob", "url": "https://mastodon.social/@bob"},
        "mentions": [acme],
        "in_reply_to_account_id": "109",
    }
    brands = BrandAccounts.parse(["acme@mastodon.social"])
    post = SocialEvent.model_validate(status_event(own)[0])
    answer = SocialEvent.model_validate(status_event(reply)[0])
    assert brands.matches(post.customer_id, post.author.handle)
    assert Listener(None, brands).relevance(answer).relevant
