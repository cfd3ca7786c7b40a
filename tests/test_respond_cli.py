"""`incidents`, `silence` and `customer show` against a real Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest
import redis
from test_incident_delivery import Conversation, open_spell

from config.runtime import RedisSettings
from connectors.redis_sinks import AlertSink, AlertSinkPartition
from sense_respond.cli import main
from sense_respond.respond_cli import printable


@pytest.fixture
def sink(redis_url: str, redis_prefix: str) -> Iterator[AlertSinkPartition]:
    part = AlertSink(redis_url, RedisSettings(prefix=redis_prefix)).build("out", 0, 1)
    yield part
    part.close()


@pytest.fixture
def sr(redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--redis-url", redis_url, "--prefix", redis_prefix])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_list_show_ack_resolve(
    sink: AlertSinkPartition, sr, redis_client: redis.Redis, redis_prefix: str
) -> None:
    ann = Conversation("twitter:ann")
    firing = open_spell(ann)
    bob_firing = open_spell(Conversation("twitter:bob", followers=20_000), -0.5)
    sink.write_batch([firing, bob_firing])
    iid = firing.incident.incident_id

    code, out, _ = sr("incidents", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(" firing " in line for line in lines)
    assert any(
        iid in line and "twitter:ann @ann" in line and "vip,billing" in line for line in lines
    )

    code, out, _ = sr("incidents", "ack", iid[:10], "--by", "zoe", "--note", "on it")
    assert code == 0 and f"acknowledged incident {iid}" in out
    code, _, err = sr("incidents", "ack", iid, "--by", "max")
    assert code == 1 and "already acknowledged by zoe" in err

    code, out, _ = sr("incidents", "show", iid)
    assert code == 0
    assert "(acknowledged, critical)" in out
    assert "acked      by zoe" in out
    assert "zoe: on it" in out
    assert "route routes[0]: followers 50000 >= 10000" in out
    assert "sense-respond  opened" in out and "zoe  acknowledged" in out

    code, out, _ = sr("incidents", "resolve", iid, "--by", "zoe", "--note", "refund sent")
    assert code == 0 and "resolved incident" in out
    code, _, err = sr("incidents", "resolve", iid, "--by", "zoe")
    assert code == 1 and "already resolved (manual by zoe" in err

    code, out, _ = sr("incidents", "list", "--open")
    assert [line.split()[0] for line in out.splitlines()] == [bob_firing.incident.incident_id]
    code, out, _ = sr("incidents", "list", "--team", "billing", "--json")
    assert {r["id"] for r in orjson.loads(out)} == {iid, bob_firing.incident.incident_id}
    code, out, _ = sr("incidents", "list", "--team", "nobody")
    assert code == 0 and out == ""

    events = [orjson.loads(f[b"alert"]) for _, f in redis_client.xrange(f"{redis_prefix}alerts")]
    assert [e["data"]["status"] for e in events] == [
        "firing",
        "firing",
        "acknowledged",
        "resolved",
    ]

    code, _, err = sr("incidents", "show", "nope-not-there")
    assert code == 1 and "no incident" in err


def test_customer_show_prints_the_whole_view(sink: AlertSinkPartition, sr) -> None:
    ann = Conversation("twitter:ann")
    first = open_spell(ann)
    [resolved] = ann.advance(24 * 60)
    ann.post(24 * 60 + 1, -0.9)
    [second] = ann.post(24 * 60 + 2, -0.9)
    sink.write_batch([first, resolved, second])
    assert sr("incidents", "ack", second.incident.incident_id, "--by", "zoe")[0] == 0
    assert sr("silence", "add", "--customer", "twitter:ann", "--duration", "2h", "--by", "max",
              "--comment", "PR handles it")[0] == 0  # fmt: skip

    code, out, _ = sr("customer", "show", "twitter:ann")
    assert code == 0
    assert out.startswith("customer twitter:ann @ann  (twitter)")
    assert "sentiment  mean -0.90 over 2 posts" in out
    assert "influence  followers 50,000, percentile 0.95" in out
    assert "last alert 2026-03-03T08:02:00Z critical" in out
    assert "-0.90  I want a refund, this is awful" in out
    assert "silenced   until" in out and "by max: PR handles it" in out
    open_part, past_part = out.split("past incidents")
    assert second.incident.incident_id in open_part and "(acknowledged, critical)" in open_part
    assert (
        first.incident.incident_id in past_part and "resolved quiet by sense-respond" in past_part
    )
    code, out, _ = sr("customer", "show", "twitter:ann", "--json")
    shown = orjson.loads(out)
    assert [i["id"] for i in shown["incidents"]] == [
        second.incident.incident_id,
        first.incident.incident_id,
    ]
    assert shown["view"]["incident"]["acknowledged_by"] == "zoe"
    code, _, err = sr("customer", "show", "twitter:nobody")
    assert code == 1 and "no customer" in err


def test_silence_add_list_expire(sr) -> None:
    code, out, _ = sr(
        "silence", "add", "--customer", "twitter:ann", "--duration", "24h", "--by", "zoe",
        "--comment", "talking to her",
    )  # fmt: skip
    assert code == 0
    sid = out.split()[1].rstrip(":")
    code, out, _ = sr("silence", "list")
    assert sid in out and "twitter:ann" in out and "by zoe: talking to her" in out
    code, _, err = sr("silence", "expire", sid[:5])
    assert code == 1 and "no active silence" in err  # a prefix needs 6 characters or more
    code, out, _ = sr("silence", "expire", sid[:8])
    assert code == 0 and f"expired silence {sid}" in out
    code, out, err = sr("silence", "list")
    assert out == "" and "no active silences" in err
    assert sr("silence", "expire", sid)[0] == 1
    code, _, err = sr(
        "silence", "add", "--customer", "twitter:ann", "--duration", "soon", "--by", "z",
        "--comment", "c",
    )  # fmt: skip
    assert code == 2 and "duration" in err


def test_text_from_outside_is_made_safe(sink: AlertSinkPartition, sr) -> None:
    firing = open_spell(Conversation("twitter:ann"))
    sink.write_batch([firing])
    evil = "ok\x1b[2J\x1b]0;pwned\x07 \u202eevil\nnext"
    assert sr("incidents", "ack", firing.incident.incident_id, "--by", evil, "--note", evil)[0] == 0
    for args in (
        ("incidents", "show", firing.incident.incident_id),
        ("customer", "show", "twitter:ann"),
    ):
        code, out, _ = sr(*args)
        assert code == 0
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "ok evil next" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("a\nb\tc", "a b c"),
        ("title\x1b]0;x\x07!", "title!"),
        ("\x00\x08\x7f\x9bz", "z"),
        ("x" * 600, "x" * 499 + "…"),
        (None, ""),
    ],
)
def test_printable(text: str | None, expected: str) -> None:
    assert printable(text) == expected


def test_people_commands_need_a_redis_url() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sense_respond", "incidents", "list"],
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 2
    assert b"needs --redis-url" in done.stderr


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_two_people_acting_at_the_same_moment_only_the_first_owns_it(
    sink: AlertSinkPartition,
    sr,
    redis_client: redis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
) -> None:
    """Max reads the incident while it is still firing; Zoe's command lands before his does.
    Both build the same event (its id is the incident's and the action's): Max is told Zoe has
    it, and exits 1."""
    import connectors.incident_store as incident_store

    firing = open_spell(Conversation("twitter:ann"))
    sink.write_batch([firing])
    iid = firing.incident.incident_id
    build = incident_store.build_human_action
    zoe_first: list[tuple[int, str, str]] = []

    def zoe_lands_first(record, act, by, *rest):
        built = build(record, act, by, *rest)  # from the firing record, as both read it
        if by == "max" and not zoe_first:
            zoe_first.append(sr("incidents", action, iid, "--by", "zoe", "--note", "mine"))
        return built

    monkeypatch.setattr(incident_store, "build_human_action", zoe_lands_first)
    code, out, err = sr("incidents", action, iid, "--by", "max", "--note", "on it")
    assert zoe_first[0][0] == 0
    past = "acknowledged" if action == "ack" else "resolved"
    assert code == 1 and out == ""
    assert f"already {past} by zoe" in err and "nothing written" in err
    record = redis_client.hgetall(f"{redis_prefix}incident:{iid}")
    assert record[f"{past}_by".encode()] == b"zoe"
    assert b"on it" not in record.get(b"notes", b"")
