"""Surviving Redis faults: how long to wait, what an outage is, and running commands through it.

Every Redis command or pipeline of the run goes through a `RedisRetry` (which errors are which is
`connectors.redis_errors`):

* **Transient** errors (connection refused or reset, socket timeouts, `LOADING`, `BUSY`,
  `READONLY` during a failover, `TRYAGAIN`, `MASTERDOWN`) are retried with capped exponential
  backoff and jitter, for up to `redis.outage_budget_seconds` since the outage began. The caller
  blocks meanwhile: a Bytewax sink that blocks in `write_batch` pauses its worker, which is the
  back-pressure that keeps the sources from reading on (nothing is buffered without bound).
* **Non-transient** errors (`WRONGTYPE`, `NOPERM`, `OOM`, a refused password, ...) are raised at
  once as `NonTransientRedisError`, naming the command and its keys.
* Past the budget, `OutageBudgetExceeded` is raised.

A replayed command must be safe, and it is for everything the run writes: alerts are de-duplicated
by their delivered marker, views are HSETs, dead letters by their deterministic id. A pipeline
whose reply was lost (a reset after the server ran it) is therefore simply run again.

One `Outage` per process tracks Redis's health across all sinks and workers: one log line when an
outage begins, one every `REPORT_EVERY_SECONDS` while it lasts, one when Redis is back, never a
traceback; it also keeps `sense_respond_redis_retries_total` and
`sense_respond_outage_seconds_total` current, and owns `sense_respond_redis_up` (see
`Outage.probed`: the readiness checker reports to it instead of writing the gauge).

redis-py's own retries are off on clients used through here (`make_client(..., retries=0)`):
two nested retry loops would multiply the waits and hide the outage from this one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.exceptions import RedisError

from connectors.redis_errors import (
    NonTransientRedisError,
    OutageBudgetExceeded,
    Verdict,
    classify,
    fail,
    one_line,
)
from sense_respond.metrics import OUTAGE_SECONDS, REDIS_RETRIES, REDIS_UP

log = logging.getLogger(__name__)

T = TypeVar("T")

REPORT_EVERY_SECONDS = 30.0
"""While an outage lasts, one "still unreachable" line this often."""


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, within an outage budget (pure: no clock, no I/O).

    The n-th wait (n = 0, 1, ...) is `min(cap, base * 2**n)` scaled by a jitter factor in
    [1 - jitter, 1): many workers that lost Redis together do not retry in lockstep, and a
    returning Redis is noticed within `cap_seconds`.
    """

    budget_seconds: float = 300.0
    base_seconds: float = 0.05
    cap_seconds: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.budget_seconds <= 0 or self.base_seconds <= 0 or self.cap_seconds <= 0:
            raise ValueError("budget, base and cap must be > 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, attempt: int, unit: float) -> float:
        """The wait after failed attempt `attempt` (0-based); `unit` in [0, 1) draws the jitter."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0 ** min(attempt, 62))
        return ceiling * (1.0 - self.jitter * (1.0 - unit))

    def next_wait(self, attempt: int, unit: float, outage_seconds: float) -> float | None:
        """How long to wait before the next attempt, None when the budget is spent.

        The last wait is cut short so that one attempt happens right at the budget's end.
        """
        remaining = self.budget_seconds - outage_seconds
        if remaining <= 0:
            return None
        return min(self.delay(attempt, unit), remaining)


class Outage:
    """Redis's health as this process sees it, shared by every sink and worker (thread-safe).

    The one writer of `sense_respond_redis_up`. Two things are heard: the run's own commands
    (an outage from the first transient failure to the next answer) and, with `--metrics-port`,
    the readiness checker's PING (`probed`). The gauge is 1 only while both say Redis answers:
    a function of the two latest opinions, never of which of them spoke last, so two that
    disagree hold it at 0 instead of flipping it at every command and every probe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._probe_answered = True  # no probe (no --metrics-port): the commands alone decide
        self._reported = 0.0
        self._accounted = 0.0
        self._retries = 0
        self.outages = 0
        """Outages seen by this process (ended or not)."""

    @property
    def down(self) -> bool:
        """Whether an outage is going on."""
        return self._since is not None

    def elapsed(self) -> float:
        """Seconds since the current outage began (0 when Redis is up)."""
        with self._lock:
            return 0.0 if self._since is None else self._clock() - self._since

    def failed(self, exc: BaseException, what: str, attempt_started: float, budget: float) -> float:
        """Record a transient failure of an attempt begun at `attempt_started`; returns how long
        the outage has lasted. Logs its start, then a line every `REPORT_EVERY_SECONDS`."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since = min(attempt_started, now)
                self._reported = self._accounted = self._since
                self._retries = 0
                self.outages += 1
                self._publish()
                log.warning(
                    "Redis unavailable (%s) during %s: pausing the flow, retrying for up to %g s",
                    one_line(exc),
                    what,
                    budget,
                )
            elif now - self._reported >= REPORT_EVERY_SECONDS:
                self._reported = now
                log.warning(
                    "Redis still unavailable after %.0f s of %g s (%s); %d retries so far",
                    now - self._since,
                    budget,
                    one_line(exc),
                    self._retries,
                )
            OUTAGE_SECONDS.inc(max(0.0, now - self._accounted))
            self._accounted = now
            return now - self._since

    def retrying(self) -> None:
        """Count one retry."""
        REDIS_RETRIES.inc()
        with self._lock:
            self._retries += 1

    def answered(self) -> None:
        """Redis answered (even with an error): any outage is over."""
        with self._lock:
            if self._since is None:
                self._publish()
                return
            now = self._clock()
            OUTAGE_SECONDS.inc(max(0.0, now - self._accounted))
            log.warning(
                "Redis is back after %.1f s (%d retries): the flow resumes",
                now - self._since,
                self._retries,
            )
            self._since = None
            self._publish()

    def probed(self, answered: bool) -> None:
        """The readiness checker's PING was answered or not. It begins and ends no outage (only
        the run's commands pause the flow); it only takes part in `sense_respond_redis_up`."""
        with self._lock:
            self._probe_answered = answered
            self._publish()

    def _publish(self) -> None:
        """Set `sense_respond_redis_up` from both opinions (the caller holds the lock)."""
        REDIS_UP.set(1 if self._since is None and self._probe_answered else 0)


OUTAGE = Outage()
"""The process's one view of Redis's health."""

_STOPPING = threading.Event()


def stop_waiting() -> None:
    """Shutdown (SIGTERM/SIGINT) was asked for: waits for Redis end now, and fail.

    A run that is told to stop during an outage cannot flush its output; it stops at once (exit
    75, nothing undelivered acknowledged) instead of waiting out the budget.
    """
    _STOPPING.set()


def _stoppable_sleep(seconds: float) -> None:
    _STOPPING.wait(seconds)


def _command_name(args: Sequence[Any], scripts: Mapping[str, str]) -> str:
    name = _text(args[0]).upper() if args else "?"
    if name == "EVALSHA" and len(args) > 1:
        sha = _text(args[1])
        return f"EVALSHA ({scripts.get(sha, sha[:12])} script)"
    return name


def _command_keys(args: Sequence[Any]) -> list[str]:
    """The keys a queued command names (enough for error reports: EVALSHA/EVAL and single-key
    commands)."""
    if not args:
        return []
    name = _text(args[0]).upper()
    if name in ("EVALSHA", "EVAL") and len(args) > 2:
        count = int(args[2])
        return [_text(k) for k in args[3 : 3 + count]]
    return [_text(args[1])] if len(args) > 1 else []


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class RedisRetry:
    """Runs Redis calls and pipelines under a `RetryPolicy` and the process's `Outage`."""

    def __init__(
        self,
        policy: RetryPolicy,
        outage: Outage = OUTAGE,
        *,
        sleep: Callable[[float], None] = _stoppable_sleep,
        unit: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sleep`, `unit` (jitter draws) and `clock` are injectable for tests."""
        self.policy = policy
        self.outage = outage
        self._sleep = sleep
        self._unit = unit
        self._clock = clock

    @classmethod
    def from_settings(cls, budget_seconds: float, outage: Outage = OUTAGE) -> RedisRetry:
        """The run's policy: the default backoff within `redis.outage_budget_seconds`."""
        return cls(RetryPolicy(budget_seconds=budget_seconds), outage)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """`fn()` until it succeeds; transient errors are waited out within the budget."""
        attempt = 0
        while True:
            started = self._clock()
            try:
                result = fn()
            except (RedisError, OSError) as exc:
                verdict = classify(exc)
                if verdict is not Verdict.TRANSIENT:
                    self.outage.answered()
                    fail(NonTransientRedisError(f"Redis refused {what}: {one_line(exc)}"))
                self._wait(exc, what, started, attempt)
                attempt += 1
                continue
            self.outage.answered()
            return result

    def pipeline(
        self,
        client: redis.Redis,
        queue: Callable[[Any], None],
        what: str,
        scripts: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """Run the commands `queue(pipe)` puts on a fresh non-transactional pipeline; returns one
        reply per command. The whole pipeline is run again after a transient error (a lost
        connection, or any reply saying LOADING, READONLY, ...), keeping each command's first
        successful reply. `scripts` (name -> Lua source) are loaded again on NOSCRIPT; their
        names label EVALSHA commands in error reports.

        Raises `NonTransientRedisError` (through `fail`) when a reply is a non-transient error,
        naming the command, its keys and their types.
        """
        scripts = scripts or {}
        names = {sha: name for sha, (name, _src) in _named(scripts).items()}
        kept: list[Any] | None = None
        attempt = reloads = 0
        while True:
            started = self._clock()
            pipe = client.pipeline(transaction=False)
            queue(pipe)
            stack = [args for args, _options in pipe.command_stack]
            try:
                replies = pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                if classify(exc) is Verdict.FATAL:
                    self.outage.answered()
                    fail(NonTransientRedisError(f"Redis refused {what}: {one_line(exc)}"))
                self._wait(exc, what, started, attempt)
                attempt += 1
                continue
            if kept is None:
                kept = list(replies)
            else:
                kept = [
                    r if isinstance(k, Exception) else k for k, r in zip(kept, replies, strict=True)
                ]
            errors = [(i, r) for i, r in enumerate(kept) if isinstance(r, Exception)]
            if not any(classify(err) is Verdict.TRANSIENT for _, err in errors):
                self.outage.answered()  # (an error reply saying LOADING, READONLY, ... is not)
            if not errors:
                return kept
            for i, err in errors:
                if classify(err) is Verdict.FATAL:
                    fail(self._refusal(client, stack[i], err, what, names))
            if any(classify(err) is Verdict.RELOAD for _, err in errors) and reloads < 3:
                # SCRIPT FLUSH, a restart without persistence, a failover to a fresh replica.
                reloads += 1
                log.warning("scripts missing on the server (NOSCRIPT); loading them again")
                self.call(lambda: _load(client, scripts), "SCRIPT LOAD")
                continue
            first = next((e for _, e in errors if classify(e) is Verdict.TRANSIENT), None)
            if first is None:  # NOSCRIPT right after loading the scripts, three times over
                fail(self._refusal(client, stack[errors[0][0]], errors[0][1], what, names))
            self._wait(first, what, started, attempt)
            attempt += 1

    def _wait(self, exc: BaseException, what: str, started: float, attempt: int) -> None:
        elapsed = self.outage.failed(exc, what, started, self.policy.budget_seconds)
        wait = self.policy.next_wait(attempt, self._unit(), elapsed)
        if wait is None:
            fail(
                OutageBudgetExceeded(
                    f"Redis unavailable for {elapsed:.0f} s, past redis.outage_budget_seconds"
                    f" = {self.policy.budget_seconds:g} (last error: {one_line(exc)}); nothing"
                    " undelivered was acknowledged: run again (with --recovery-dir to resume"
                    " from the last snapshot)"
                )
            )
        if not _STOPPING.is_set():
            self.outage.retrying()
            self._sleep(wait)
        if _STOPPING.is_set():
            fail(
                OutageBudgetExceeded(
                    f"stopping during a Redis outage of {elapsed:.0f} s (last error:"
                    f" {one_line(exc)}); nothing undelivered was acknowledged: run again (with"
                    " --recovery-dir to resume from the last snapshot)"
                )
            )

    @staticmethod
    def _refusal(
        client: redis.Redis,
        args: Sequence[Any],
        err: BaseException,
        what: str,
        names: Mapping[str, str],
    ) -> NonTransientRedisError:
        keys = _command_keys(args)
        described = ", ".join(f"{k} ({_key_type(client, k)})" for k in keys) or "none"
        return NonTransientRedisError(
            f"Redis refused {_command_name(args, names)} during {what}: {one_line(err)};"
            f" keys: {described}"
        )


def _named(scripts: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """`scripts` maps a name to a Lua source; returns sha -> (name, source)."""
    import hashlib

    return {hashlib.sha1(src.encode()).hexdigest(): (name, src) for name, src in scripts.items()}


def _load(client: redis.Redis, scripts: Mapping[str, str]) -> None:
    for sha, (name, src) in _named(scripts).items():
        loaded = client.script_load(src)
        loaded = loaded.decode() if isinstance(loaded, bytes) else loaded
        if loaded != sha:
            raise NonTransientRedisError(f"SCRIPT LOAD of the {name} script returned {loaded}")


def load_scripts(retry: RedisRetry, client: redis.Redis, scripts: Mapping[str, str]) -> None:
    """Load `scripts` (name -> Lua source) into the server's script cache, retrying."""
    retry.call(lambda: _load(client, scripts), "SCRIPT LOAD")


def _key_type(client: redis.Redis, key: str) -> str:
    """The key's type for an error report; best effort (the report must not fail)."""
    try:
        kind = _text(client.type(key))
    except (RedisError, OSError):
        return "type unknown"
    return "absent" if kind == "none" else f"a {kind}"


def check_key_types(retry: RedisRetry, client: redis.Redis, expected: Mapping[str, str]) -> None:
    """Fail (non-transient) unless every key is absent or of its expected type (`stream`,
    `hash`, ...): a run must not start against a key it would fail to write, after reading and
    acknowledging input."""
    for name, kind in expected.items():
        found = _text(retry.call(lambda name=name: client.type(name), f"TYPE {name}"))
        if found not in (kind, "none"):
            fail(
                NonTransientRedisError(
                    f"Redis key {name} is a {found}, but the run writes a {kind} there: rename"
                    " or delete it, or use another --prefix"
                )
            )
