"""The whole dataflow with TestingSource/run_main, delivering into the real Redis."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSource, run_main
from redis_helpers import stream_alerts

from config.settings import Settings
from flows.pipeline import build_flow

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def ev(i: str, kind: str, author: str, minutes: float, text: str | None = None, **kw: Any) -> bytes:
    obj: dict[str, Any] = {
        "id": i,
        "platform": "twitter",
        "kind": kind,
        "created_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "author": {"id": author, "handle": author, "followers": kw.pop("followers", 100)},
        **kw,
    }
    if text is not None:
        obj["text"] = text
    return orjson.dumps(obj)


ANGRY = [
    "This is the worst service ever. I am furious and disgusted.",
    "Still no refund. Terrible, awful, horrible experience!!",
    "You lost my bag again. Hate this airline, never again.",
]


def run(lines: list[bytes], url: str, prefix: str, **settings: Any) -> None:
    s = Settings(
        brand_accounts=["AcmeSupport"],
        # the complaints below are about the business: they name its service, refund, airline
        listen={"keywords": ["service", "refund", "airline"]},
        influence={"min_accounts_to_rank": 5, "refresh_every_events": 10},
        **settings,
    ).with_redis_url(url)
    s = s.model_copy(update={"redis": s.redis.model_copy(update={"prefix": prefix})})
    run_main(build_flow(s, TestingSource(lines, batch_size=7)))


def scenario() -> list[bytes]:
    lines = [ev(f"bg{i}", "post", f"bg{i}", i * 0.1, "what a nice day") for i in range(30)]
    # a big account, angry, with one event duplicated and one arriving 60 s late
    lines += [
        ev("a1", "post", "vip", 60, ANGRY[0], followers=50_000),
        ev("a1", "post", "vip", 60, ANGRY[0], followers=50_000),
        ev("a3", "post", "vip", 70, ANGRY[2], followers=50_000),
        ev("a2", "post", "vip", 69, ANGRY[1], followers=50_000),
    ]
    # an angry nobody, and a brand apologising angrily-sounding words a lot
    lines += [ev(f"n{i}", "post", "nobody", 60 + i, ANGRY[i], followers=3) for i in range(3)]
    lines += [
        ev(
            f"b{i}",
            "reply",
            "AcmeSupport",
            61 + i,
            "So sorry, this is terrible, awful!",
            followers=900_000,
            target={"id": "nobody"},
        )
        for i in range(3)
    ]
    lines += [b"", b"{broken json", b'{"id": "x", "kind": "post"}', b"[1,2,3]"]
    return lines


def test_flow_alerts_dead_letters_and_views(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    run(scenario(), redis_url, redis_prefix)
    got = stream_alerts(redis_client, redis_prefix)
    assert [a["subject"] for a in got] == ["twitter:vip"]
    data = got[0]["data"]
    # the duplicate of a1 counted once, so the rule became true on a3 (the second post)
    assert data["sentiment"]["posts"] == 2
    assert data["trigger_event_id"] == "a3"
    assert {e["id"] for e in data["evidence"]} == {"a1", "a3"}
    assert data["influence"]["followers"] == 50_000
    dlq = redis_client.xrange(f"{redis_prefix}dlq")
    assert len(dlq) == 3
    assert all({b"reason", b"raw", b"at"} <= set(f) for _, f in dlq)
    view = redis_client.hgetall(f"{redis_prefix}customer:twitter:vip")
    assert view[b"last_alert_id"].decode() == got[0]["id"]
    # the late a2 was still placed in the window (and fired nothing new: cooldown)
    assert orjson.loads(view[b"sentiment"])["posts"] == 3
    assert redis_client.exists(f"{redis_prefix}customer:twitter:nobody")


def test_replays_give_identical_alert_ids(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    run(scenario(), redis_url, redis_prefix + "one:")
    run(scenario(), redis_url, redis_prefix + "two:")
    one = [a["id"] for a in stream_alerts(redis_client, redis_prefix + "one:")]
    two = [a["id"] for a in stream_alerts(redis_client, redis_prefix + "two:")]
    assert one and one == two


def test_replay_into_the_same_prefix_delivers_once(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    run(scenario(), redis_url, redis_prefix)
    run(scenario(), redis_url, redis_prefix)  # as after a recovery that replays output
    assert len(stream_alerts(redis_client, redis_prefix)) == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_out_of_order_input_alerts_once_on_the_second_arrival(
    redis_url: str, redis_prefix: str, redis_client: Any, order: tuple[int, ...]
) -> None:
    # posts 0..2 are one minute apart; any arrival order (up to 2 min late) gives one alert,
    # fired by whichever post arrives second, and the customer view ends with all three posts
    posts = [ev(f"v{i}", "post", "vip", 10 + i, ANGRY[i], followers=20_000) for i in range(3)]
    run([posts[i] for i in order], redis_url, redis_prefix)
    got = stream_alerts(redis_client, redis_prefix)
    assert [a["data"]["trigger_event_id"] for a in got] == [f"v{order[1]}"]
    view = redis_client.hgetall(f"{redis_prefix}customer:twitter:vip")
    assert orjson.loads(view[b"sentiment"])["posts"] == 3


@pytest.mark.parametrize(("shared_after_minutes", "alerts_expected"), [(30, 1), (7 * 60, 0)])
def test_complaint_going_viral_alerts_without_another_post(
    redis_url: str,
    redis_prefix: str,
    redis_client: Any,
    shared_after_minutes: int,
    alerts_expected: int,
) -> None:
    # an ordinary customer complains twice (not influential yet: no alert) ...
    lines = [
        ev(f"bg{i}", "post", f"bg{i}", i * 0.1, "what a nice day", followers=1000 + i)
        for i in range(60)
    ]
    lines += [ev(f"c{i}", "post", "carl", 20 + i, ANGRY[i], followers=150) for i in range(2)]
    # ... then 40 distinct accounts share and answer the complaint: carl's reach grows
    lines += [
        ev(f"rt{i}", "repost", f"bg{i}", shared_after_minutes + i * 0.2, target={"id": "carl"})
        for i in range(40)
    ]
    run(lines, redis_url, redis_prefix)
    got = stream_alerts(redis_client, redis_prefix)
    assert len(got) == alerts_expected
    if got:
        data = got[0]["data"]
        assert data["customer_id"] == "twitter:carl"
        assert data["trigger_event_id"].startswith("rt")  # the share that tipped it
        assert data["influence"]["percentile"] >= 0.9
        assert data["influence"]["followers"] == 150
        assert {e["id"] for e in data["evidence"]} == {"c0", "c1"}


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["bytewax.run", "flows.pipeline:flow"], {}, False),
        (["bytewax.run", "flows.pipeline:flow", "-r", "/tmp/rec"], {}, True),
        (["bytewax.run", "flows.pipeline:flow", "--recovery-directory=/tmp/rec"], {}, True),
        (["bytewax.run", "flows.pipeline:flow"], {"BYTEWAX_RECOVERY_DIRECTORY": "/tmp/r"}, True),
    ],
)
def test_bytewax_runner_recovery_is_detected(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str], expected: bool
) -> None:
    from flows.pipeline import _bytewax_recovery

    monkeypatch.delenv("BYTEWAX_RECOVERY_DIRECTORY", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert (_bytewax_recovery(argv)[0] is not None) is expected


@pytest.mark.parametrize(
    ("argv", "directory", "keep"),
    [
        (["flows.pipeline:flow"], None, None),
        (["flows.pipeline:flow", "-r", "/tmp/rec", "-s", "2", "-b", "0"], "/tmp/rec", 3),
        (["-w", "2", "flows.pipeline:flow", "-r", "/tmp/r", "-s", "1", "-b", "10"], "/tmp/r", 13),
        (["flows.pipeline:flow", "--recovery-directory=/r", "--backup-interval=4"], "/r", 7),
    ],
)
def test_the_graph_stage_learns_the_bytewax_runners_recovery_directory(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], directory: str | None, keep: int | None
) -> None:
    from flows.pipeline import _bytewax_recovery

    for name in ("DIRECTORY", "BACKUP_INTERVAL"):
        monkeypatch.delenv(f"BYTEWAX_RECOVERY_{name}", raising=False)
    monkeypatch.delenv("BYTEWAX_SNAPSHOT_INTERVAL", raising=False)
    found, policy = _bytewax_recovery(argv)
    assert (None if found is None else str(found)) == directory
    assert (None if policy is None else policy.keep_manifests) == keep


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("jsonl:/data/feed.jsonl", "jsonl:/data/feed.jsonl"),
        ("/data/feed.jsonl", "jsonl:/data/feed.jsonl"),
        ("redis:social:events", "redis:social:events"),
        (
            "mastodon:https://user:pw@m.example/api/v1/streaming/public?access_token=SECRET",
            "mastodon:https://m.example/api/v1/streaming/public",
        ),
        (
            "jetstream:wss://js.example:443/subscribe?cursor=1",
            "jetstream:wss://js.example:443/subscribe",
        ),
    ],
)
def test_dead_letters_name_their_input_without_secrets(spec: str, name: str) -> None:
    from connectors.inputs import input_name

    assert input_name(spec) == name


def test_dead_letters_carry_the_input_name(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    run([b"not json"], redis_url, redis_prefix, input="jsonl:/data/feed.jsonl")
    [(_, fields)] = redis_client.xrange(f"{redis_prefix}dlq")
    assert fields[b"source"] == b"jsonl:/data/feed.jsonl"


def test_brand_known_by_handle_stays_a_brand_without_it(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    # AcmeSupport (configured by handle) posts once with its handle, then without one: its angry
    # apologies never alert, and its replies give the customer no reach.
    lines = [ev(f"bg{i}", "post", f"bg{i}", i * 0.1, "what a nice day") for i in range(30)]
    lines.append(ev("b0", "post", "AcmeSupport", 5, ANGRY[0], followers=900_000))
    for i in range(3):
        obj = orjson.loads(
            ev(f"b{i + 1}", "post", "AcmeSupport", 6 + i, ANGRY[i], followers=900_000)
        )
        del obj["author"]["handle"]
        lines.append(orjson.dumps(obj))
    run(lines, redis_url, redis_prefix)
    assert stream_alerts(redis_client, redis_prefix) == []


def test_account_purge_forgets_the_customer_here_and_in_redis(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    from operators.records import AccountPurge

    first = ev("p1", "post", "gone", 0, ANGRY[0], followers=50_000)
    second = ev("p2", "post", "gone", 2, ANGRY[1], followers=50_000)
    purge = AccountPurge("twitter:gone", T0 + timedelta(minutes=1))
    run([first, purge, second], redis_url, redis_prefix)
    # the post before the purge no longer counts: one post is not a pattern, no alert
    assert stream_alerts(redis_client, redis_prefix) == []
    view = redis_client.hgetall(f"{redis_prefix}customer:twitter:gone")
    assert orjson.loads(view[b"sentiment"])["posts"] == 1

    # a view written earlier (another batch, an earlier run) is deleted by the purge
    key = f"{redis_prefix}x:customer:twitter:gone"
    redis_client.hset(key, mapping={"customer_id": "twitter:gone"})
    run([purge], redis_url, redis_prefix + "x:")
    assert not redis_client.exists(key)


# -- the parse step: one item per input batch ----------------------------------------------------


def _line(event_id: str, **extra: Any) -> bytes:
    event = {
        "id": event_id,
        "platform": "twitter",
        "kind": "repost",
        "created_at": "2026-01-01T00:00:00Z",
        "author": {"id": "a"},
        "target": {"id": "b"},
    }
    return orjson.dumps({**event, **extra})


def test_parse_batch_sorts_one_input_batch_into_events_and_dead_letters() -> None:
    from flows.stateless_steps import ParsedBatch, parse_batch
    from operators.events import DeadLetter, SocialEvent
    from operators.records import AccountPurge

    feed_letter = DeadLetter("jetstream: not JSON", b"{", datetime.now(UTC), "jetstream")
    purge = AccountPurge("twitter:a", datetime(2026, 1, 1, tzinfo=UTC))
    built = SocialEvent.model_validate(orjson.loads(_line("built")))
    batch = [_line("1"), b"   \n", b"not json", feed_letter, purge, built, _line("2", kind="x")]
    [parsed] = parse_batch(batch, "jsonl:test")
    assert isinstance(parsed, ParsedBatch)
    assert [type(v).__name__ for v in parsed.valid] == [
        "SocialEvent",
        "AccountPurge",
        "SocialEvent",
    ]
    assert [v.id for v in parsed.valid if isinstance(v, SocialEvent)] == ["1", "built"]
    assert all(v.read_ns > 0 for v in parsed.valid if isinstance(v, SocialEvent))
    reasons = [d.reason for d in parsed.dead]
    assert len(reasons) == 3  # the blank line is skipped, not a dead letter
    assert reasons[0].startswith("not JSON") and reasons[1] == "jetstream: not JSON"
    assert reasons[2].startswith("invalid event: kind")
    assert parse_batch([b"\n"], "jsonl:test") == []  # nothing at all: no item


@pytest.mark.parametrize(
    ("created_at", "valid"),
    [
        ("2026-01-01T00:00:00Z", True),
        ("2026-01-01T02:00:00+02:00", True),
        ("2026-01-01 00:00:00.123456789z", True),
        ("2026-01-01T00:00:00+0000", False),  # not RFC 3339
        ("2026-01-01T00:00:00", False),  # no offset
        ("2026-01-01", False),
        ("1767225600", False),  # a Unix time as text
        (1767225600, False),
        ("\uff12\uff10\uff12\uff16-01-01T00:00:00Z", False),  # full-width digits
    ],
)
def test_created_at_is_rfc3339_text_in_utc(created_at: object, valid: bool) -> None:
    from operators.events import SocialEvent, parse_event

    parsed = parse_event(_line("1", created_at=created_at), datetime(2026, 6, 1, tzinfo=UTC))
    assert isinstance(parsed, SocialEvent) is valid
    if valid:
        assert isinstance(parsed, SocialEvent)
        assert parsed.created_at.tzinfo is UTC
        assert parsed.created_at.replace(microsecond=0) == datetime(2026, 1, 1, tzinfo=UTC)
