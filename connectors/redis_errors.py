"""What a Redis error means for the run: transient (wait), NOSCRIPT (reload) or fatal (stop).

Pure classification of redis-py's exceptions and error replies, the two ways a run fails for
Redis (`OutageBudgetExceeded`, `NonTransientRedisError`) with their exit statuses, and how the
command line turns them into one line and an exit instead of a Rust panic. The retry loop that
uses them is `connectors.redis_retry`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import NoReturn

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConnectionError,
    NoScriptError,
    RedisError,
    TimeoutError,
)

TRANSIENT_CODES = frozenset({"LOADING", "BUSY", "READONLY", "TRYAGAIN", "MASTERDOWN"})
"""Error replies that mean "not now": the server is loading, busy with a script, a replica after
a failover, resharding, or a replica that lost its master. The same command works later."""

EXIT_OUTAGE = 75
"""Exit status past the outage budget (EX_TEMPFAIL: running again later is the fix)."""
EXIT_NON_TRANSIENT = 78
"""Exit status on a non-transient Redis error (EX_CONFIG: a key, an ACL or maxmemory is wrong)."""


class Verdict(Enum):
    """What to do about an error."""

    TRANSIENT = "transient"  # wait and retry
    RELOAD = "reload"  # NOSCRIPT: load the scripts again, then retry at once
    FATAL = "fatal"  # give up and report


def error_code(exc: BaseException) -> str:
    """The error reply's code (`WRONGTYPE`, `LOADING`, ...), or "" for errors without one.

    redis-py strips the code off the errors it maps to a class (keeping it as `status_code`) and
    leaves it at the start of the message of a plain `ResponseError`.
    """
    code = getattr(exc, "status_code", None)
    if code:
        return str(code)
    head = str(exc).split(" ", 1)[0]
    return head if head.isupper() and head.isalpha() else ""


def classify(exc: BaseException) -> Verdict:
    """Transient, NOSCRIPT, or fatal (see the module docstring). Only errors of Redis or the
    socket are classified; anything else is a bug and must not be retried."""
    if isinstance(exc, NoScriptError):
        return Verdict.RELOAD
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return Verdict.FATAL  # a ConnectionError subclass, but waiting will not fix a password
    if isinstance(exc, ConnectionError | TimeoutError):
        return Verdict.TRANSIENT  # refused, reset, timed out, LOADING, max clients reached
    if isinstance(exc, RedisError):
        return Verdict.TRANSIENT if error_code(exc) in TRANSIENT_CODES else Verdict.FATAL
    if isinstance(exc, OSError):
        return Verdict.TRANSIENT  # socket errors redis-py did not wrap (reset, broken pipe)
    raise TypeError(f"not a Redis error: {type(exc).__name__}") from exc


class RedisFailure(RuntimeError):
    """Redis cannot take the run's output: the run must stop without acknowledging it."""

    exit_code = 1


class OutageBudgetExceeded(RedisFailure):
    """Transient errors lasted longer than `redis.outage_budget_seconds`."""

    exit_code = EXIT_OUTAGE


class NonTransientRedisError(RedisFailure):
    """Redis refused a command for a reason retrying cannot fix (wrong type, ACL, memory)."""

    exit_code = EXIT_NON_TRANSIENT


_failure_handler: Callable[[RedisFailure], None] | None = None


def exit_on_failure(
    report: Callable[[str], None] | None = None,
) -> Callable[[RedisFailure], None] | None:
    """From now on a `RedisFailure` ends the process with its exit code and one line,
    `sense-respond: error: ...`, given to `report` (default: printed on stderr). Returns the
    handler it replaces.

    For the command line only (and `python -m bytewax.run flows.pipeline:flow`). Raised through
    Bytewax, the error would come out wrapped in a Rust panic with its backtrace; instead the run
    stops where it is, like a crash: nothing after the last snapshot was acknowledged, so a
    restart (with `--recovery-dir`) loses nothing. Flows run in-process (tests) get the exception.
    """
    global _failure_handler

    def exit_with(failure: RedisFailure) -> None:
        line = f"sense-respond: error: {failure}"
        try:
            if report is None:
                print(line, file=sys.stderr, flush=True)
            else:
                report(line)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(failure.exit_code)

    previous, _failure_handler = _failure_handler, exit_with
    return previous


@contextlib.contextmanager
def exit_process_on_failure(report: Callable[[str], None] | None = None) -> Iterator[None]:
    """`exit_on_failure(report)` within the block only."""
    global _failure_handler
    previous = exit_on_failure(report)
    try:
        yield
    finally:
        _failure_handler = previous


def fail(failure: RedisFailure) -> NoReturn:
    """Raise `failure`, after the process's failure handler (if any) had its say."""
    handler = _failure_handler
    if handler is not None:
        handler(failure)
    raise failure


def one_line(exc: BaseException) -> str:
    """`Type: CODE message` on one line (the code redis-py strips off is put back)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    code = error_code(exc) if isinstance(exc, RedisError) else ""
    if code and code != "ERR" and not text.startswith(code):
        text = f"{code} {text}"
    return f"{type(exc).__name__}: {text}"
