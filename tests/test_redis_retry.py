"""The retry/outage policy as pure tables: error classification, backoff, budget, outage logs
(connectors.redis_errors and connectors.redis_retry)."""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    DataError,
    RedisError,
    TimeoutError,
)

from connectors import redis_retry
from connectors.redis_errors import (
    NonTransientRedisError,
    OutageBudgetExceeded,
    Verdict,
    classify,
    error_code,
)
from connectors.redis_retry import REPORT_EVERY_SECONDS, Outage, RedisRetry, RetryPolicy
from sense_respond.metrics import OUTAGE_SECONDS, REDIS_RETRIES, REDIS_UP


def reply(raw: str) -> RedisError:
    """The exception redis-py raises for the error reply `raw` (its own parser)."""
    return BaseParser.parse_error(raw)


@pytest.mark.parametrize(
    ("raw", "code", "verdict"),
    [
        ("LOADING Redis is loading the dataset in memory", "LOADING", Verdict.TRANSIENT),
        ("BUSY Redis is busy running a script.", "BUSY", Verdict.TRANSIENT),
        ("READONLY You can't write against a read only replica.", "READONLY", Verdict.TRANSIENT),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "TRYAGAIN", Verdict.TRANSIENT),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
         "MASTERDOWN", Verdict.TRANSIENT),
        ("ERR max number of clients reached", "ERR", Verdict.TRANSIENT),
        ("NOSCRIPT No matching script. Please use EVAL.", "NOSCRIPT", Verdict.RELOAD),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", "WRONGTYPE",
         Verdict.FATAL),
        ("WRONGTYPE Operation against a key holding the wrong kind of value script: 3f2a, on "
         "@user_script:5.", "WRONGTYPE", Verdict.FATAL),
        ("NOPERM User sr has no permissions to run the 'xadd' command", "NOPERM", Verdict.FATAL),
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM", Verdict.FATAL),
        ("NOAUTH Authentication required.", "NOAUTH", Verdict.FATAL),
        ("WRONGPASS invalid username-password pair or user is disabled.", "WRONGPASS",
         Verdict.FATAL),
        ("BUSYGROUP Consumer Group name already exists", "BUSYGROUP", Verdict.FATAL),
        ("BUSYKEY Target key name already exists.", "BUSYKEY", Verdict.FATAL),
        ("ERR unknown command 'FOO'", "ERR", Verdict.FATAL),
        ("EXECABORT Transaction discarded because of previous errors.", "EXECABORT",
         Verdict.FATAL),
    ],
)  # fmt: skip
def test_error_replies_are_classified(raw: str, code: str, verdict: Verdict) -> None:
    exc = reply(raw)
    assert error_code(exc) == code
    assert classify(exc) is verdict


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (ConnectionError("Error 111 connecting to 127.0.0.1:6400. Connection refused."),
         Verdict.TRANSIENT),
        (ConnectionError("Connection closed by server."), Verdict.TRANSIENT),
        (TimeoutError("Timeout reading from socket"), Verdict.TRANSIENT),
        (ConnectionResetError(104, "Connection reset by peer"), Verdict.TRANSIENT),
        (BrokenPipeError(32, "Broken pipe"), Verdict.TRANSIENT),
        (builtins.TimeoutError("timed out"), Verdict.TRANSIENT),  # socket.timeout
        (AuthenticationError("invalid password"), Verdict.FATAL),
        (DataError("Invalid input of type: 'NoneType'"), Verdict.FATAL),
    ],
)  # fmt: skip
def test_connection_errors_are_transient_but_passwords_are_not(
    exc: BaseException, verdict: Verdict
) -> None:
    assert classify(exc) is verdict


def test_bugs_are_not_classified() -> None:
    with pytest.raises(TypeError):
        classify(ValueError("a bug, not Redis"))


@pytest.mark.parametrize(
    ("attempt", "unit", "delay"),
    [
        (0, 0.0, 0.025),  # base 0.05, jitter halves at most
        (0, 0.999999, 0.05),
        (1, 0.0, 0.05),
        (1, 0.5, 0.075),
        (3, 0.999999, 0.4),
        (5, 0.999999, 1.6),
        (6, 0.999999, 2.0),  # capped
        (6, 0.0, 1.0),
        (100, 0.5, 1.5),
        (10_000, 0.0, 1.0),  # no overflow
    ],
)
def test_backoff_is_exponential_capped_and_jittered(
    attempt: int, unit: float, delay: float
) -> None:
    assert RetryPolicy().delay(attempt, unit) == pytest.approx(delay, abs=1e-5)


@pytest.mark.parametrize(
    ("outage", "wait"),
    [(0.0, 2.0), (290.0, 2.0), (299.5, 0.5), (300.0, None), (400.0, None)],
)
def test_the_last_wait_ends_at_the_budget(outage: float, wait: float | None) -> None:
    policy = RetryPolicy(budget_seconds=300)
    got = policy.next_wait(20, 0.999999, outage)
    assert got == (None if wait is None else pytest.approx(wait, abs=1e-5))


def test_the_whole_schedule_stays_within_the_budget() -> None:
    policy = RetryPolicy(budget_seconds=10)
    elapsed, waits = 0.0, []
    while (wait := policy.next_wait(len(waits), 0.5, elapsed)) is not None:
        waits.append(wait)
        elapsed += wait
    assert elapsed == pytest.approx(10)
    assert waits[:4] == pytest.approx([0.0375, 0.075, 0.15, 0.3])
    assert max(waits) <= policy.cap_seconds


@pytest.mark.parametrize(
    "kwargs", [{"budget_seconds": 0}, {"cap_seconds": -1}, {"jitter": 1.0}, {"jitter": -0.1}]
)
def test_bad_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, exc: BaseException, result: Any = "ok") -> Callable[[], Any]:
    calls = {"n": 0}

    def fn() -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    return fn


def retry_for(budget: float, fake: FakeTime) -> RedisRetry:
    outage = Outage(clock=fake.clock)
    return RedisRetry(
        RetryPolicy(budget_seconds=budget),
        outage,
        sleep=fake.sleep,
        unit=lambda: 0.5,
        clock=fake.clock,
    )


def sample(metric: Any) -> float:
    return next(iter(metric.collect())).samples[0].value


def test_an_outage_is_waited_out_with_one_line_at_start_every_30_s_and_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeTime()
    retry = retry_for(300, fake)
    refused = ConnectionError("Error 111 connecting to 127.0.0.1:6400. Connection refused.")
    retries_before, outage_before = sample(REDIS_RETRIES), sample(OUTAGE_SECONDS)
    with caplog.at_level(logging.INFO, logger="connectors.redis_retry"):
        assert retry.call(failing(60, refused), "alert delivery") == "ok"
    waited = sum(fake.sleeps)
    assert 60 < waited < 300
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Redis unavailable (ConnectionError: Error 111 connecting")
    assert "during alert delivery: pausing the flow, retrying for up to 300 s" in lines[0]
    still = [line for line in lines if line.startswith("Redis still unavailable")]
    assert len(still) == int(waited // REPORT_EVERY_SECONDS)
    assert lines[-1].startswith(f"Redis is back after {waited:.1f} s (60 retries)")
    assert len(lines) == 2 + len(still)
    assert all(r.exc_info is None for r in caplog.records)  # no tracebacks
    assert sample(REDIS_RETRIES) - retries_before == 60
    assert sample(OUTAGE_SECONDS) - outage_before == pytest.approx(waited)
    assert sample(REDIS_UP) == 1
    assert not retry.outage.down and retry.outage.outages == 1


def test_past_the_budget_the_call_fails_with_one_clear_line() -> None:
    fake = FakeTime()
    retry = retry_for(5, fake)
    fn = failing(10_000, TimeoutError("Timeout reading from socket"))
    with pytest.raises(OutageBudgetExceeded) as raised:
        retry.call(fn, "alert delivery")
    assert sum(fake.sleeps) == pytest.approx(5)
    message = str(raised.value)
    assert message.startswith("Redis unavailable for 5 s, past redis.outage_budget_seconds = 5")
    assert "TimeoutError: Timeout reading from socket" in message
    assert "--recovery-dir" in message and "\n" not in message
    assert raised.value.exit_code == 75
    assert sample(REDIS_UP) == 0
    assert retry.outage.down


def test_non_transient_errors_fail_at_once() -> None:
    fake = FakeTime()
    retry = retry_for(300, fake)
    fn = failing(1, reply("NOPERM User sr has no permissions to run the 'type' command"))
    with pytest.raises(NonTransientRedisError, match="Redis refused TYPE sr:alerts: ") as raised:
        retry.call(fn, "TYPE sr:alerts")
    assert fake.sleeps == []
    assert raised.value.exit_code == 78


def test_workers_share_one_outage_and_its_budget(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    outage = Outage(clock=fake.clock)
    policy = RetryPolicy(budget_seconds=10)
    refused = ConnectionError("refused")
    with caplog.at_level(logging.INFO, logger="connectors.redis_retry"):
        outage.failed(refused, "alert delivery", fake.now, policy.budget_seconds)
        fake.now += 8
        second = RedisRetry(policy, outage, sleep=fake.sleep, unit=lambda: 0.5, clock=fake.clock)
        with pytest.raises(OutageBudgetExceeded):
            second.call(failing(10_000, refused), "dead-letter delivery")
    # the second caller joined the first one's outage: 2 s were left of its budget
    assert sum(fake.sleeps) == pytest.approx(2)
    assert [r.getMessage()[:18] for r in caplog.records] == ["Redis unavailable "]


def test_a_shutdown_ends_the_wait_for_redis() -> None:
    outage = Outage()
    retry = RedisRetry(RetryPolicy(budget_seconds=300), outage)  # real, stoppable sleeps
    threading.Timer(0.2, redis_retry.stop_waiting).start()
    started = time.monotonic()
    try:
        with pytest.raises(OutageBudgetExceeded, match=r"^stopping during a Redis outage of"):
            retry.call(failing(10_000, ConnectionError("refused")), "alert delivery")
    finally:
        redis_retry._STOPPING.clear()
    assert time.monotonic() - started < 60  # not the 300 s budget
