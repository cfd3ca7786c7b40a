"""Operators can see it: Prometheus metrics and health endpoints of a real `sense-respond run`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from private_redis import private_redis
from prometheus_client.parser import text_string_to_metric_families

from connectors.redis_retry import Outage
from operators.events import DeadLetter, parse_event
from sense_respond import metrics
from sense_respond.health import HealthServer, Readiness, ReadinessChecker

ROOT = Path(__file__).resolve().parents[1]
DEMO_FEED = ROOT / "sense_respond" / "data" / "demo_feed.jsonl"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GOOD = (
    b'{"id": "1", "kind": "post", "created_at": "2026-03-02T10:00:00Z",'
    b' "author": {"id": "a"}, "text": "hello"}'
)


# ---------------------------------------------------------------------------------------------
# reason groups: the real reasons the parser and the feeds write


def _reason(line: bytes) -> str:
    letter = parse_event(line, NOW, "test")
    assert letter is not None and hasattr(letter, "reason"), letter
    return letter.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reason", "group"),
    [
        (_reason(b"{not json"), "not_json"),
        (_reason(b'"a string"'), "not_object"),
        (_reason(b"[1, 2]"), "not_object"),
        (_reason(b'{"id": "1"}'), "invalid_event"),
        (_reason(GOOD.replace(b'"post"', b'"dance"')), "invalid_event"),
        (_reason(GOOD.replace(b"hello", b"x" * 10_001)), "invalid_event"),
        (_reason(b"x" * (1024 * 1024 + 10)), "too_large"),
        (_reason(GOOD.replace(b"2026-03-02T10", b"2026-03-09T10")), "future_timestamp"),
        ("jetstream: message too large: 5000000 bytes", "too_large"),
        ("jetstream: not JSON: unexpected character", "not_json"),
        ("jetstream: invalid event: author.id: field required", "invalid_event"),
        ("mastodon: unmappable update frame: KeyError: 'account'", "feed_frame"),
        ("mastodon: mention notification: notification without account", "feed_frame"),
        ("stream entry 1-0 has no 'event' field (fields: x)", "feed_frame"),
        (
            "stream entry 1-0 was delivered 5 times without completing (redis.max_deliveries = 5)",
            "poison",
        ),
        ("something nobody planned for", "other"),
    ],
)
def test_dead_letter_reasons_fall_in_a_fixed_set(reason: str, group: str) -> None:
    assert metrics.dead_letter_group(reason) == group
    assert group in metrics.DEAD_LETTER_GROUPS


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_parse_counts_events_and_dead_letters_by_group() -> None:
    label = f"jsonl:/test/{time.monotonic_ns()}"
    before = _sample("sense_respond_dead_letters_total", reason="not_json")
    items = [parse_event(line, NOW, label) for line in (GOOD, b"{nope", b"[1]")]
    dead = [item for item in items if isinstance(item, DeadLetter)]
    metrics.count_read(len(items) - len(dead), dead, label)
    assert _sample("sense_respond_events_total", input=label) == 3
    assert _sample("sense_respond_dead_letters_total", reason="not_json") == before + 1


def test_latency_observed_only_when_the_trigger_read_time_is_known() -> None:
    count = _sample("sense_respond_event_to_alert_seconds_count")
    total = _sample("sense_respond_event_to_alert_seconds_sum")
    metrics.observe_event_to_alert(read_ns=1_000_000_000, written_ns=1_250_000_000)
    metrics.observe_event_to_alert(read_ns=0, written_ns=1_250_000_000)  # trigger time unknown
    assert _sample("sense_respond_event_to_alert_seconds_count") == count + 1
    assert _sample("sense_respond_event_to_alert_seconds_sum") == pytest.approx(total + 0.25)


# ---------------------------------------------------------------------------------------------
# the HTTP endpoint itself


def test_endpoint_paths_and_readiness_codes() -> None:
    state = {"value": Readiness(redis=True, source=True, checked_at=time.monotonic())}
    server = HealthServer("127.0.0.1", 0, lambda: state["value"]).start()
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
            state["value"] = Readiness(redis=False, source=True, checked_at=time.monotonic())
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["redis"] == "down"
            page = http.get("/metrics")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/plain")
            names = {f.name for f in text_string_to_metric_families(page.text)}
            assert "sense_respond_events" in names
            assert http.get("/nope").status_code == 404
    finally:
        server.stop()


def redis_up() -> float | None:
    return metrics.REGISTRY.get_sample_value("sense_respond_redis_up")


def test_checker_survives_a_failing_probe() -> None:
    def boom() -> bool:
        raise ConnectionError("down")

    checker = ReadinessChecker(boom, lambda: True, report_redis=Outage().probed)
    state = checker.check_now()
    assert not state.ready and not state.redis and state.source
    assert redis_up() == 0


@pytest.mark.parametrize(
    ("commands_answer", "probe_answers", "up"),
    [(True, True, 1), (True, False, 0), (False, True, 0), (False, False, 0)],
)
def test_redis_up_is_not_flipped_by_its_two_sources_disagreeing(
    commands_answer: bool, probe_answers: bool, up: int
) -> None:
    """The retry loop (commands) and the readiness checker (PING, in its own thread) each keep
    their opinion and speak as often as they like: the gauge only ever shows what the two
    opinions together say, whoever spoke last."""
    outage = Outage()
    refused = ConnectionError("Connection refused")
    checker = ReadinessChecker(
        lambda: probe_answers, lambda: True, interval=0.001, report_redis=outage.probed
    )

    def command() -> None:
        if commands_answer:
            outage.answered()
        else:
            outage.failed(refused, "alert delivery", time.monotonic(), 300.0)

    command()
    checker.check_now()  # both have spoken once
    seen = {redis_up()}
    checker.start()
    try:
        for _ in range(2000):
            command()
            seen.add(redis_up())
        checker.check_now()
        seen.add(redis_up())
    finally:
        checker.stop()
    assert outage.down is not commands_answer  # the probe begins and ends no outage
    outage.answered()  # leave the gauge as a fresh process has it
    assert seen == {up}


# ---------------------------------------------------------------------------------------------
# a real run in a subprocess


SR_RUN = (sys.executable, "-m", "sense_respond", "run")
BATCH = 100


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SR_")}


class RunningFlow:
    """`sense-respond run --input jsonl:- --metrics-port 0`, fed through its stdin."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        log_dir: Path,
        *extra: str,
        input_spec: str = "jsonl:-",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log = log_dir / f"run-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [*SR_RUN, "--input", input_spec, "--metrics-port", "0", "--prefix", prefix, *extra],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={
                    **_env(),
                    "SR_REDIS__URL": redis_url,
                    "SR_FLOW__SOURCE_BATCH_SIZE": str(BATCH),
                },
            )
        self.base = self._wait_for_endpoint()

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_for_endpoint(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(r"metrics: (http://[\d.]+:\d+)/metrics", self.stderr)
            if found:
                return found.group(1)
            time.sleep(0.02)
        self.kill()
        raise AssertionError("no metrics endpoint announced: " + self.stderr)

    def feed(self, lines: list[bytes]) -> None:
        """Write `lines`, padded with blank lines (skipped by the parser) to whole batches: a
        stdin partition hands a batch on once it is full (or at EOF)."""
        assert self.proc.stdin is not None
        pad = -len(lines) % BATCH
        self.proc.stdin.write(b"".join(lines) + b"\n" * pad)
        self.proc.stdin.flush()

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        page = httpx.get(f"{self.base}/metrics", timeout=10).text
        out = {}
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def finish(self) -> tuple[int, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=120)
        return code, self.stderr

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def flow(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[RunningFlow]:
    running = RunningFlow(redis_url, redis_prefix, tmp_path)
    yield running
    running.kill()


def _wait(check, timeout: float = 60.0, every: float = 0.1):
    """`check()` once it is truthy (or its last value at the deadline); polled often, as a
    condition usually holds well before the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


@pytest.mark.slow
def test_metrics_of_a_real_run(flow: RunningFlow, redis_client, redis_prefix: str) -> None:
    lines = DEMO_FEED.read_bytes().splitlines(keepends=True)[:3000]
    bad = [b"{not json\n", b"[1, 2]\n", b'{"id": "x"}\n']
    flow.feed(lines + bad)
    label = (("input", "jsonl:-"),)
    total = len(lines) + len(bad)
    scraped = _wait(
        lambda: (s := flow.scrape())[("sense_respond_events_total", label)] == total and s
    )
    assert scraped, "events were not all counted"

    def firing() -> int:  # the stream also carries lifecycle events (resolved, ...)
        entries = redis_client.xrange(f"{redis_prefix}alerts")
        return sum(orjson.loads(f[b"alert"])["data"]["status"] == "firing" for _, f in entries)

    alerts = _wait(lambda: firing() or None, timeout=30)
    assert alerts, "the demo slice raised no alert"
    scraped = _wait(
        lambda: (
            (s := flow.scrape())
            and s.get(("sense_respond_event_to_alert_seconds_count", ())) == alerts
            and s
        )
    )
    assert scraped, "latency not observed for every alert"
    by_severity = sum(v for (name, _), v in scraped.items() if name == "sense_respond_alerts_total")
    assert by_severity == alerts
    assert scraped[("sense_respond_event_to_alert_seconds_sum", ())] > 0
    for group in ("not_json", "not_object", "invalid_event"):
        assert scraped[("sense_respond_dead_letters_total", (("reason", group),))] == 1
    deliver = (("outcome", "alerts_new"), ("step", "deliver"))
    assert scraped[("sense_respond_sink_items_total", deliver)] == alerts
    dlq = (("outcome", "dead_letters"), ("step", "dead_letters"))
    assert _wait(lambda: flow.scrape().get(("sense_respond_sink_items_total", dlq)) == 3)
    assert scraped[("sense_respond_redis_up", ())] == 1
    for name in (
        "sense_respond_redis_retries_total",
        "sense_respond_outage_seconds_total",
        "sense_respond_influence_refresh_seconds_count",
    ):
        assert (name, ()) in scraped
    code, err = flow.finish()
    assert code == 0, err
    assert "summary:" in err


@pytest.mark.slow
def test_readyz_follows_redis_down_and_back(tmp_path: Path, redis_prefix: str) -> None:
    server = private_redis(tmp_path)
    running = None
    try:
        running = RunningFlow(server.url, redis_prefix, tmp_path)
        base = running.base

        def status(path: str) -> int:
            try:
                return httpx.get(f"{base}{path}", timeout=5).status_code
            except httpx.HTTPError:
                return -1

        assert _wait(lambda: status("/readyz") == 200, timeout=30)
        server.stop()
        stopped = time.monotonic()
        assert _wait(lambda: status("/readyz") == 503, timeout=30)
        # Within 10 s of the change (measured here with slack for a loaded machine: the
        # checker runs every 2 s with a 2 s ping timeout).
        assert time.monotonic() - stopped < 20
        assert status("/healthz") == 200
        metrics_page = httpx.get(f"{base}/metrics", timeout=5).text
        assert "sense_respond_redis_up 0.0" in metrics_page
        server.start()
        assert _wait(lambda: status("/readyz") == 200, timeout=30)
        code, err = running.finish()
        assert code == 0, err
    finally:
        if running is not None:
            running.kill()
        server.stop()


def test_no_port_without_the_flag_and_text_logs_by_default(
    redis_url: str, redis_prefix: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sense_respond", "run", "--input", "jsonl:-"],
        input=b"",
        capture_output=True,
        timeout=120,
        env={**_env(), "SR_REDIS__URL": redis_url, "SR_REDIS__PREFIX": redis_prefix},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert b"metrics:" not in done.stderr
    # ...and logs stay text by default: bare status lines.
    assert done.stderr.decode().splitlines()[-1].startswith("summary: {")


def test_port_in_use_is_a_clear_error(redis_url: str, redis_prefix: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SR_RUN, "--input", "jsonl:-", "--metrics-port", str(port)],
            input=b"",
            capture_output=True,
            timeout=120,
            env={**_env(), "SR_REDIS__URL": redis_url, "SR_REDIS__PREFIX": redis_prefix},
            check=False,
        )
    assert done.returncode == 2
    assert f"--metrics-port {port}".encode() in done.stderr
    assert b"Traceback" not in done.stderr


def thanks_posts(count: int) -> list[bytes]:
    """Jetstream commits of `count` posts by different authors, the last minute's."""
    from jetstream_server import jetstream_commit

    now_us = int(time.time() * 1e6)
    return [
        jetstream_commit(
            f"did:plc:author{i:018d}",
            now_us - (60 - i) * 1_000_000,
            "app.bsky.feed.post",
            f"rk{i}",
            {"text": "thanks for the help", "createdAt": "2026-03-02T10:00:00Z"},
        )
        for i in range(count)
    ]


@pytest.mark.slow
def test_live_feed_counters_and_readiness_follow_the_connection(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    from jetstream_server import JetstreamServer

    frames = thanks_posts(5)
    server = JetstreamServer(frames).__enter__()
    running = None
    try:
        label = f"jetstream:{server.url}"
        env_extra = {
            "SR_JETSTREAM__RECONNECT_INITIAL_SECONDS": "0.05",
            "SR_JETSTREAM__RECONNECT_MAX_SECONDS": "0.2",
        }
        running = RunningFlow(redis_url, redis_prefix, tmp_path, input_spec=label, env=env_extra)
        key = (("input", label),)

        def ready() -> int:
            return httpx.get(f"{running.base}/readyz", timeout=5).status_code

        assert _wait(lambda: ready() == 200, timeout=60)
        assert _wait(lambda: running.scrape().get(("sense_respond_feed_frames_total", key)) == 5)
        page = httpx.get(f"{running.base}/metrics", timeout=10).text
        families = [f.name for f in text_string_to_metric_families(page)]
        assert len(families) == len(set(families))  # no family exported twice
        scraped = running.scrape()
        assert scraped[("sense_respond_feed_events_total", key)] == 5
        assert scraped[("sense_respond_events_total", key)] == 5
        server.__exit__(None, None, None)  # the feed goes away: not ready, still alive
        server = None
        assert _wait(lambda: ready() == 503, timeout=30)
        body = httpx.get(f"{running.base}/readyz", timeout=5).json()
        assert body["source"] == "not connected" and body["redis"] == "up"
        assert httpx.get(f"{running.base}/healthz", timeout=5).status_code == 200
    finally:
        if running is not None:
            running.kill()
        if server is not None:
            server.__exit__(None, None, None)


@pytest.mark.slow
def test_in_a_cluster_only_the_processes_off_the_graph_read_a_live_feed(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Two processes on one Jetstream feed: the one that hosts the graph stage opens no
    session and is ready on Redis alone; the other reads every frame."""
    from jetstream_server import JetstreamServer
    from private_redis import free_port

    from connectors.placement import ClusterPlace
    from flows.stateless_steps import GRAPH_KEY

    frames = thanks_posts(5)
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    host = ClusterPlace(0, 2, 1).process_of(GRAPH_KEY)
    runs: list[RunningFlow] = []
    with JetstreamServer(frames) as server:
        label = f"jetstream:{server.url}"
        try:
            for i in range(2):
                runs.append(
                    RunningFlow(
                        redis_url, redis_prefix, tmp_path, "-i", str(i), "-a", addresses,
                        input_spec=label,
                    )
                )  # fmt: skip
            key = (("input", label),)
            reader = runs[1 - host]
            assert _wait(lambda: reader.scrape().get(("sense_respond_feed_frames_total", key)) == 5)
            for run in runs:
                assert _wait(
                    lambda run=run: httpx.get(f"{run.base}/readyz", timeout=5).status_code == 200,
                    timeout=60,
                ), run.stderr
            assert not runs[host].scrape().get(("sense_respond_feed_frames_total", key))
            assert "hosts the graph stage" in runs[host].stderr
        finally:
            for run in runs:
                run.kill()
