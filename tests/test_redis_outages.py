"""`sense-respond run` through Redis outages, end to end, against a private redis-server.

The server is stopped in the middle of a run (after the first alert is in the stream) and started
again on the same port, or paused with SIGSTOP. The run must pause (read no further input, keep its
memory), log the outage without a traceback, and when Redis is back deliver every alert exactly
once: in the stream and on the channel, whose subscriber is back before the run can publish.
Past the outage budget the run exits 75 with one clear line, and a restart with `--recovery-dir`
delivers the rest, each alert once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import redis
from private_redis import Channel, PrivateRedis, Run, private_redis, scenario_feed

from sense_respond import recovery
from sense_respond.scenario import DEFAULT_START

pytestmark = pytest.mark.slow

COPIES = 1
"""Scenario copies in the feed: ~7.5k events (2 MB), 8 alerts, seconds of run after the first."""
TIMEOUT = 180.0
OUTAGE_START = "Redis unavailable ("
OUTAGE_STILL = "Redis still unavailable after"
OUTAGE_END = "Redis is back after"


@dataclass
class Feed:
    path: Path
    config: Path


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    return Feed(*scenario_feed(tmp_path_factory.mktemp("outage-feed"), COPIES))


def command(feed: Feed, url: str, prefix: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sense_respond", "run", "--config", str(feed.config),
        "--input", f"jsonl:{feed.path}", "--redis-url", url, "--prefix", prefix, *extra,
    ]  # fmt: skip


def environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    env.update({f"SR_{k.upper()}": v for k, v in settings.items()})
    return env


def stream_ids(client: redis.Redis, prefix: str) -> list[str]:
    return [f[b"id"].decode() for _, f in client.xrange(f"{prefix}alerts")]


@pytest.fixture(scope="module")
def truth(feed: Feed, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The alert ids of one uninterrupted run."""
    server = private_redis(tmp_path_factory.mktemp("truth"))
    try:
        done = subprocess.run(
            command(feed, server.url, "sr:"),
            capture_output=True,
            timeout=TIMEOUT,
            env=environment(),
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        ids = stream_ids(server.client(), "sr:")
    finally:
        server.stop()
    assert len(ids) == len(set(ids)) >= 5
    return set(ids)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = private_redis(tmp_path)
    yield srv
    srv.stop()


def alerts_appear(client: redis.Redis, prefix: str) -> Callable[[], bool]:
    return lambda: client.xlen(f"{prefix}alerts") > 0


def assert_exactly_once(client: redis.Redis, channel: Channel, truth: set[str]) -> None:
    ids = stream_ids(client, "sr:")
    assert Counter(ids) == Counter(truth), "stream: every alert exactly once"
    published = channel.drain()
    assert Counter(published) == Counter(truth), "channel: every alert exactly once"


def assert_no_traceback(run: Run) -> None:
    text = "\n".join(run.lines)
    assert "Traceback" not in text and "panicked" not in text, text[-3000:]


@dataclass
class Outage:
    """A run with Redis stopped for `seconds` after the first alert, then started again."""

    feed: Feed
    server: PrivateRedis
    seconds: float
    code: int | None = None
    peak_rss_kb: int = 0
    rss_growth_kb: int = 0
    paused_read: int = 0
    unread: int = 0
    published: list[str] = field(default_factory=list)
    stream: list[str] = field(default_factory=list)
    run: Run | None = None

    def __call__(self) -> Outage:
        client = self.server.client()
        channel = Channel(self.server, "sr:alerts")
        channel.subscribe()
        cmd = command(self.feed, self.server.url, "sr:", "--print-alerts")
        run = self.run = Run(cmd, environment())
        run.wait_for(alerts_appear(client, "sr:"), "the first alert")
        stopped = time.monotonic()
        self.server.stop()
        run.wait_for_line(OUTAGE_START)
        rss_kb, position = run.rss_kb(), run.position(self.feed.path)
        time.sleep(max(0.0, self.seconds - (time.monotonic() - stopped)))
        self.paused_read = run.position(self.feed.path) - position
        self.rss_growth_kb = run.rss_kb() - rss_kb
        self.unread = self.feed.path.stat().st_size - position
        self.server.start(before_tcp=channel.subscribe)
        self.code, self.peak_rss_kb = run.finish()
        self.stream = stream_ids(self.server.client(), "sr:")
        self.published = channel.drain()
        return self

    def check(self, truth: set[str]) -> None:
        run = self.run
        assert run is not None
        print(
            f"\noutage {self.seconds:g} s: exit {self.code}, {len(self.stream)} alerts in the"
            f" stream ({len(set(self.stream))} distinct, {len(truth)} expected),"
            f" {len(self.published)} published; peak RSS {self.peak_rss_kb / 1024:.0f} MiB, RSS"
            f" growth while paused {self.rss_growth_kb} kB, input read while paused"
            f" {self.paused_read} B ({self.unread} B unread)"
        )
        assert self.code == 0, run.stderr()
        assert Counter(self.stream) == Counter(truth), "stream: every alert exactly once"
        assert Counter(self.published) == Counter(truth), "channel: every alert exactly once"
        # The flow paused: it read no more input and kept its memory while Redis was away.
        assert self.paused_read == 0 and self.unread > 256 * 1024  # a batch is ~140 kB
        assert self.rss_growth_kb < 64 * 1024
        assert self.peak_rss_kb < 1024 * 1024
        # one line when it began, one every 30 s, one when it ended; never a traceback
        assert run.count(OUTAGE_START) == 1 and run.count(OUTAGE_END) == 1, run.stderr()
        still = run.count(OUTAGE_STILL)
        assert (still == 0) if self.seconds < 30 else (1 <= still <= 3), run.stderr()
        assert_no_traceback(run)
        assert any(line.startswith("summary: ") for line in run.lines)


LONG_OUTAGE = "test_a_60_s_outage_in_the_background_is_survived_too"


@pytest.fixture(scope="module", autouse=True)
def long_outage(
    request: pytest.FixtureRequest, feed: Feed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Outage]]:
    """The 60 s outage runs in a background thread while the module's other tests run (it is
    paused, not busy, for most of its minute); its test, the last one, waits for it."""
    if not any(item.name == LONG_OUTAGE for item in request.session.items):
        yield lambda: pytest.skip("not selected")  # type: ignore[return-value]
        return
    server = private_redis(tmp_path_factory.mktemp("long-outage"))
    outage = Outage(feed, server, 60)
    result: dict[str, Outage | BaseException] = {}

    def scenario() -> None:
        try:
            result["done"] = outage()
        except BaseException as exc:  # reported by the test
            result["done"] = exc

    thread = threading.Thread(target=scenario, daemon=True)
    thread.start()

    def outcome() -> Outage:
        thread.join(TIMEOUT)
        done = result.get("done")
        if isinstance(done, BaseException):
            raise done
        assert isinstance(done, Outage), "the 60 s outage did not finish"
        return done

    yield outcome
    thread.join(TIMEOUT)
    server.stop()


def test_an_8_s_outage_pauses_the_run_which_then_delivers_every_alert_once(
    feed: Feed, truth: set[str], server: PrivateRedis
) -> None:
    Outage(feed, server, 8)().check(truth)


def test_a_hung_server_is_a_timeout_and_the_run_carries_on_when_it_wakes(
    feed: Feed, truth: set[str], server: PrivateRedis
) -> None:
    client = server.client()
    channel = Channel(server, "sr:alerts")
    channel.subscribe()  # the subscriber's connection survives the pause
    env = environment(redis__socket_timeout_seconds="1.5")
    run = Run(command(feed, server.url, "sr:"), env)
    run.wait_for(alerts_appear(client, "sr:"), "the first alert")
    server.pause()
    try:
        run.wait_for_line(OUTAGE_START, timeout=30)
        time.sleep(2)
    finally:
        server.resume()
    code, _ = run.finish()
    assert code == 0, run.stderr()
    began = next(line for line in run.lines if OUTAGE_START in line)
    assert "TimeoutError" in began, began
    assert_exactly_once(server.client(), channel, truth)
    assert run.count(OUTAGE_START) == 1 and run.count(OUTAGE_END) == 1, run.stderr()
    assert_no_traceback(run)


def test_past_the_budget_the_run_exits_and_a_recovery_restart_loses_nothing(
    feed: Feed, truth: set[str], server: PrivateRedis, tmp_path: Path
) -> None:
    client = server.client()
    channel = Channel(server, "sr:alerts")
    channel.subscribe()
    recovery_dir = tmp_path / "recovery"
    cmd = command(
        feed, server.url, "sr:", "--recovery-dir", str(recovery_dir), "--snapshot-interval", "0.2"
    )
    run = Run(cmd, environment(redis__outage_budget_seconds="3"))
    run.wait_for(alerts_appear(client, "sr:"), "the first alert")
    run.wait_for(lambda: not recovery.inspect(recovery_dir).fresh, "a snapshot")
    server.stop()
    code, _ = run.finish()
    assert code == 75, run.stderr()
    errors = [line for line in run.lines if line.startswith("sense-respond: error: ")]
    assert len(errors) == 1, run.stderr()
    assert errors[0].startswith(
        "sense-respond: error: Redis unavailable for 3 s, past redis.outage_budget_seconds = 3"
    ), errors[0]
    assert "Connection refused" in errors[0] and "--recovery-dir" in errors[0]
    assert errors[0] == run.lines[-1]
    assert_no_traceback(run)

    server.start(before_tcp=channel.subscribe)
    resumed = Run(cmd, environment())
    code, _ = resumed.finish()
    assert code == 0, resumed.stderr()
    assert any("resuming from epoch" in line for line in resumed.lines), resumed.stderr()
    assert_exactly_once(server.client(), channel, truth)


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
    long_outage: Callable[[], Outage], truth: set[str]
) -> None:
    long_outage().check(truth)
