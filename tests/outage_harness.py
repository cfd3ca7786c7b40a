"""The Redis-outage scenarios of `tests/test_redis_outages.py`, shared with `conftest.py`, which
starts them in the background at the start of the session (`OUTAGE_LANES`): the 8 s and 60 s
outages, the hung server and the run past its outage budget are paused or waiting, not busy, for
most of their time, so their waits overlap the whole suite instead of adding to one module; the
tests check the outcomes."""

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

COPIES = 3
"""Scenario copies in the feed: ~22k events (6 MB), 24 alerts. Enough that the run is still
reading when a scenario acts after its first alert (or snapshot) on a fast machine: with one
copy, a quiet 2-core machine had read the whole feed, and delivered all its alerts, by then."""
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
        with run.frozen():
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


@dataclass
class HungServer:
    """A run whose server hangs (SIGSTOP) after the first alert until its outage was logged and
    2 s more (socket timeout 1.5 s: more timeouts in the same outage), then wakes (SIGCONT)."""

    feed: Feed
    server: PrivateRedis
    code: int | None = None
    channel: Channel | None = None
    run: Run | None = None

    def __call__(self) -> HungServer:
        client = self.server.client()
        channel = self.channel = Channel(self.server, "sr:alerts")
        channel.subscribe()  # the subscriber's connection survives the pause
        env = environment(redis__socket_timeout_seconds="1.5")
        run = self.run = Run(command(self.feed, self.server.url, "sr:"), env)
        run.wait_for(alerts_appear(client, "sr:"), "the first alert")
        with run.frozen():
            self.server.pause()
        try:
            run.wait_for_line(OUTAGE_START, timeout=30)
            time.sleep(2)
        finally:
            self.server.resume()
        self.code, _ = run.finish()
        return self


@dataclass
class PastTheBudget:
    """A run with --recovery-dir whose server stops after the first alert and a snapshot, for
    good (outage budget 3 s); then the server is back and the same command resumes."""

    feed: Feed
    server: PrivateRedis
    recovery_dir: Path
    code: int | None = None
    resumed_code: int | None = None
    channel: Channel | None = None
    run: Run | None = None
    resumed: Run | None = None

    def __call__(self) -> PastTheBudget:
        from sense_respond import recovery

        client = self.server.client()
        channel = self.channel = Channel(self.server, "sr:alerts")
        channel.subscribe()
        cmd = command(
            self.feed, self.server.url, "sr:",
            "--recovery-dir", str(self.recovery_dir), "--snapshot-interval", "0.05",
        )  # fmt: skip
        run = self.run = Run(cmd, environment(redis__outage_budget_seconds="3"))
        run.wait_for(alerts_appear(client, "sr:"), "the first alert")
        run.wait_for(lambda: not recovery.inspect(self.recovery_dir).fresh, "a snapshot")
        with run.frozen():
            self.server.stop()
        self.code, _ = run.finish()
        self.server.start(before_tcp=channel.subscribe)
        resumed = self.resumed = Run(cmd, environment())
        self.resumed_code, _ = resumed.finish()
        return self


@dataclass
class Truth:
    """One uninterrupted run of the feed: the alert ids each scenario must deliver, once."""

    feed: Feed
    server: PrivateRedis
    ids: list[str] = field(default_factory=list)

    def __call__(self) -> Truth:
        run = Run(command(self.feed, self.server.url, "sr:"), environment())
        code, _ = run.finish()
        assert code == 0, run.stderr()
        self.ids = stream_ids(self.server.client(), "sr:")
        self.server.stop()
        return self


TRUTH = "truth"
"""The name of the `Truth` run: it follows the last scenario of the second lane, and runs
whenever any scenario does (their tests compare with it)."""

OUTAGE_LANES: list[list[tuple[str, float | str]]] = [
    [("test_a_60_s_outage_in_the_background_is_survived_too", 60.0)],
    [
        ("test_an_8_s_outage_pauses_the_run_which_then_delivers_every_alert_once", 8.0),
        ("test_a_hung_server_is_a_timeout_and_the_run_carries_on_when_it_wakes", "hung"),
        ("test_past_the_budget_the_run_exits_and_a_recovery_restart_loses_nothing", "budget"),
    ],
]
"""The scenarios of `tests/test_redis_outages.py` run in the background, by test name: each lane
is a thread running its scenarios one after another (the 60 s outage alone: the others are over
long before it). All wait far more than they compute, so they overlap the rest of the suite."""


def scenario(
    kind: float | str, feed: Feed, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PrivateRedis, Callable[[], object]]:
    """The scenario `kind` of `OUTAGE_LANES` on a private server of its own."""
    directory = tmp_path_factory.mktemp(f"background-{kind}")
    server = private_redis(directory)
    if kind == "hung":
        return server, HungServer(feed, server)
    if kind == "budget":
        return server, PastTheBudget(feed, server, directory / "recovery")
    if kind == TRUTH:
        return server, Truth(feed, server)
    assert isinstance(kind, float)
    return server, Outage(feed, server, kind)


class BackgroundScenarios:
    """The selected scenarios of `OUTAGE_LANES`, started at once; `outcome(name)` waits for the
    one of a test and returns it (or raises what it raised)."""

    def __init__(
        self, feed: Feed | None, tmp_path_factory: pytest.TempPathFactory, selected: set[str]
    ) -> None:
        self.servers: list[PrivateRedis] = []
        self.results: dict[str, object] = {}
        self.done: dict[str, threading.Event] = {}
        lanes = [[(n, kind) for n, kind in lane if n in selected] for lane in OUTAGE_LANES]
        if selected:
            lanes[-1].append((TRUTH, TRUTH))
        self.threads = []
        for k, lane in enumerate(lane for lane in lanes if lane):
            for name, _ in lane:
                self.done[name] = threading.Event()
            runs = []
            assert feed is not None, "a selected scenario needs the outage feed"
            for name, kind in lane:
                server, run = scenario(kind, feed, tmp_path_factory)
                self.servers.append(server)
                runs.append((name, run))
            thread = threading.Thread(
                target=self._lane, args=(runs,), name=f"{THREAD_PREFIX}lane-{k}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _lane(self, runs: list[tuple[str, Callable[[], object]]]) -> None:
        for name, run in runs:
            try:
                self.results[name] = run()
            except BaseException as exc:  # reported by the test
                self.results[name] = exc
            finally:
                self.done[name].set()

    def outcome(self, name: str) -> object:
        if name not in self.done:
            pytest.skip("not started: the test was not selected at the start of the session")
        assert self.done[name].wait(3 * TIMEOUT), f"{name}: the scenario did not finish"
        result = self.results[name]
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        for thread in self.threads:
            thread.join(3 * TIMEOUT)
        for server in self.servers:
            server.stop()
