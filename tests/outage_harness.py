"""The Redis-outage scenario of `tests/test_redis_outages.py`, shared with `conftest.py`, which
starts the 8 s and the 60 s outage in the background at the start of the session (each is
paused, not busy, for most of its time), so that their waits overlap the whole suite instead of
adding to one module."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from private_redis import THREAD_PREFIX, Channel, PrivateRedis, Run, private_redis

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


BACKGROUND_OUTAGES = {
    "test_an_8_s_outage_pauses_the_run_which_then_delivers_every_alert_once": 8.0,
    "test_a_60_s_outage_in_the_background_is_survived_too": 60.0,
}
"""The tests (in `tests/test_redis_outages.py`) that check an outage run in the background, and
its length in seconds: both are paused, not busy, for most of their time."""


class BackgroundOutage:
    """An `Outage` run in a thread of its own, started at once; `outcome()` waits for it."""

    def __init__(self, feed: Feed, tmp_path_factory: pytest.TempPathFactory, seconds: float):
        self.server = private_redis(tmp_path_factory.mktemp(f"outage-{seconds:g}s"))
        outage = Outage(feed, self.server, seconds)
        self.result: dict[str, Outage | BaseException] = {}

        def scenario() -> None:
            try:
                self.result["done"] = outage()
            except BaseException as exc:  # reported by the test
                self.result["done"] = exc

        self.thread = threading.Thread(
            target=scenario, name=f"{THREAD_PREFIX}outage-{seconds:g}s", daemon=True
        )
        self.thread.start()

    def outcome(self) -> Outage:
        self.thread.join(TIMEOUT)
        done = self.result.get("done")
        if isinstance(done, BaseException):
            raise done
        assert isinstance(done, Outage), "the outage did not finish"
        return done

    def close(self) -> None:
        self.thread.join(TIMEOUT)
        self.server.stop()
