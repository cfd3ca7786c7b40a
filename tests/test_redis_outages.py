"""`sense-respond run` through Redis outages, end to end, against a private redis-server.

The server is stopped in the middle of a run (after the first alert is in the stream) and started
again on the same port, or paused with SIGSTOP. The run must pause (read no further input, keep its
memory), log the outage without a traceback, and when Redis is back deliver every alert exactly
once: in the stream and on the channel, whose subscriber is back before the run can publish.
Past the outage budget the run exits 75 with one clear line, and a restart with `--recovery-dir`
delivers the rest, each alert once.

The outage, hung-server and budget scenarios run in the background from the start of the
session (`outage_harness.OUTAGE_LANES`, started by conftest); their tests check the outcomes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from outage_harness import (
    OUTAGE_END,
    OUTAGE_START,
    TRUTH,
    BackgroundScenarios,
    Feed,
    HungServer,
    Outage,
    PastTheBudget,
    Truth,
    assert_exactly_once,
    assert_no_traceback,
    command,
    environment,
    stream_ids,
)
from private_redis import Channel, PrivateRedis, Run, private_redis

from sense_respond.scenario import DEFAULT_START

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feed(outage_feed: Feed) -> Feed:
    return outage_feed


@pytest.fixture(scope="module")
def truth(background_outages: BackgroundScenarios) -> set[str]:
    """The alert ids of one uninterrupted run (`Truth`, run in the background)."""
    run = background_outages.outcome(TRUTH)
    assert isinstance(run, Truth)
    ids = run.ids
    assert len(ids) == len(set(ids)) >= 5
    return set(ids)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = private_redis(tmp_path)
    yield srv
    srv.stop()


def test_an_8_s_outage_pauses_the_run_which_then_delivers_every_alert_once(
    request: pytest.FixtureRequest, background_outages: BackgroundScenarios, truth: set[str]
) -> None:
    """Run in the background from the start of the session (conftest), like the 60 s one."""
    outage = background_outages.outcome(request.node.name)
    assert isinstance(outage, Outage)
    outage.check(truth)


def test_a_hung_server_is_a_timeout_and_the_run_carries_on_when_it_wakes(
    request: pytest.FixtureRequest, background_outages: BackgroundScenarios, truth: set[str]
) -> None:
    """The scenario (`HungServer`) ran in the background from the start of the session."""
    hung = background_outages.outcome(request.node.name)
    assert isinstance(hung, HungServer)
    run, channel = hung.run, hung.channel
    assert run is not None and channel is not None
    assert hung.code == 0, run.stderr()
    began = next(line for line in run.lines if OUTAGE_START in line)
    assert "TimeoutError" in began, began
    assert_exactly_once(hung.server.client(), channel, truth)
    assert run.count(OUTAGE_START) == 1 and run.count(OUTAGE_END) == 1, run.stderr()
    assert_no_traceback(run)


def test_past_the_budget_the_run_exits_and_a_recovery_restart_loses_nothing(
    request: pytest.FixtureRequest, background_outages: BackgroundScenarios, truth: set[str]
) -> None:
    """The scenario (`PastTheBudget`) ran in the background from the start of the session."""
    past = background_outages.outcome(request.node.name)
    assert isinstance(past, PastTheBudget)
    run, resumed, channel = past.run, past.resumed, past.channel
    assert run is not None and resumed is not None and channel is not None
    assert past.code == 75, run.stderr()
    errors = [line for line in run.lines if line.startswith("sense-respond: error: ")]
    assert len(errors) == 1, run.stderr()
    assert errors[0].startswith(
        "sense-respond: error: Redis unavailable for 3 s, past redis.outage_budget_seconds = 3"
    ), errors[0]
    assert "Connection refused" in errors[0] and "--recovery-dir" in errors[0]
    assert errors[0] == run.lines[-1]
    assert_no_traceback(run)

    assert past.resumed_code == 0, resumed.stderr()
    assert any("resuming from epoch" in line for line in resumed.lines), resumed.stderr()
    assert_exactly_once(past.server.client(), channel, truth)


@pytest.fixture(scope="module")
def vip_feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    """Two furious posts of a customer with 50k followers: one alert."""
    tmp = tmp_path_factory.mktemp("vip-feed")
    lines = []
    texts = ["worst service ever. I am furious and disgusted", "Terrible, awful, horrible!!"]
    for n, text in enumerate(texts):
        created = DEFAULT_START + timedelta(minutes=10 * n)
        lines.append(
            orjson.dumps(
                {"id": f"vip-{n}", "platform": "twitter", "kind": "post",
                 "created_at": created.isoformat(), "text": f"@AcmeAir {text}",
                 "author": {"id": "vip", "handle": "vip", "followers": 50_000}}
            )
        )  # fmt: skip
    path = tmp / "vip.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config = tmp / "sense-respond.toml"
    config.write_bytes(b'brand_accounts = ["AcmeAir"]\n')
    return Feed(path, config)


def test_a_wrong_key_type_stops_the_run_before_anything_is_delivered(
    vip_feed: Feed, server: PrivateRedis
) -> None:
    client = server.client()
    client.set("sr:alerts", b"not a stream")
    run = Run(command(vip_feed, server.url, "sr:"), environment())
    code, _ = run.finish()
    assert code == 78, run.stderr()
    assert run.lines[-1] == (
        "sense-respond: error: Redis key sr:alerts is a string, but the run writes a stream"
        " there: rename or delete it, or use another --prefix"
    ), run.stderr()
    assert_no_traceback(run)
    assert list(client.scan_iter("sr:alert-id:*")) == []  # nothing marked delivered
    assert list(client.scan_iter("sr:customer:*")) == []

    client.delete("sr:alerts")
    channel = Channel(server, "sr:alerts")
    channel.subscribe()
    again = Run(command(vip_feed, server.url, "sr:"), environment())
    code, _ = again.finish()
    assert code == 0, again.stderr()
    ids = stream_ids(client, "sr:")
    assert len(ids) == 1
    assert channel.drain() == ids


def test_the_bytewax_way_of_running_fails_with_the_same_one_line(
    vip_feed: Feed, server: PrivateRedis
) -> None:
    server.client().set("sr:dlq", b"not a stream")
    env = environment(
        input=f"jsonl:{vip_feed.path}", redis__url=server.url, redis__prefix="sr:"
    ) | {"SR_CONFIG": str(vip_feed.config)}
    run = Run([sys.executable, "-m", "bytewax.run", "flows.pipeline:flow"], env)
    code, _ = run.finish()
    assert code == 78, run.stderr()
    assert run.lines[-1].startswith("sense-respond: error: Redis key sr:dlq is a string"), run.lines
    assert_no_traceback(run)


def test_a_60_s_outage_in_the_background_is_survived_too(
    request: pytest.FixtureRequest, background_outages: BackgroundScenarios, truth: set[str]
) -> None:
    outage = background_outages.outcome(request.node.name)
    assert isinstance(outage, Outage)
    outage.check(truth)
