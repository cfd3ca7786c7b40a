"""The round trips of one consumer of a Redis stream group: due acknowledgements first.

Every command a `connectors.stream_partition.StreamPartition` sends goes through
`GroupRoundTrips._run`: one non-transactional pipeline of the due XACKs followed by what the
caller queues, so acknowledging costs no round trip of its own. The consumer's client never
retries by itself (a retried XREADGROUP would hide a lost reply); a failed round trip fails the
call instead:

* a transient error (`connectors.redis_errors`) loses the reply, and what the server did with it
  is unknown: `_reply_lost()` lets the subclass look again at what it may have been handed, the
  next call waits a capped, jittered backoff (`_next_awake`), and `ReplyLost` is raised. Past
  `redis.outage_budget_seconds` since the outage began (the process's one `OUTAGE` tracker) the
  run stops with `OutageBudgetExceeded`;
* NOGROUP (the group was destroyed, or the stream deleted) calls `_group_vanished()`, then
  raises `GroupVanished`;
* any other error stops the run (`NonTransientRedisError`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import redis
from redis.exceptions import RedisError, ResponseError

from connectors.redis_errors import (
    NonTransientRedisError,
    OutageBudgetExceeded,
    Verdict,
    classify,
    fail,
    one_line,
)
from connectors.redis_retry import OUTAGE

ACK_CHUNK = 1000
"""Entry ids per XACK and per XPENDING page."""
_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 2.0


class ReplyLost(Exception):
    """A round trip failed: its reply (and whatever the server did) is unknown."""


class GroupVanished(Exception):
    """The group is gone (NOGROUP) and was recreated."""


class GroupRoundTrips:
    """One consumer's connection to its group, with the ids still to acknowledge."""

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        outage_budget_seconds: float,
    ) -> None:
        """Talk to `group` on `stream_key` as `consumer`; `client` must not retry by itself."""
        self._client = client
        self._key = stream_key
        self._group = group
        self.consumer = consumer
        self._budget = outage_budget_seconds
        self._to_ack: list[str] = []
        self._unacked: set[str] = set()  # handed out in this run, not known acknowledged
        self._next_awake: datetime | None = None
        self._failures = 0

    def _reply_lost(self) -> None:
        """A reply was lost: the server may have handed this consumer entries nobody saw."""
        raise NotImplementedError

    def _group_vanished(self) -> None:
        """The group is gone: forget what went with it and recreate it."""
        raise NotImplementedError

    def _run(self, queue: Callable[[Any], Any], tolerate: str | None = None) -> Any:
        """One round trip: the due acknowledgements, then what `queue` adds to the pipeline.

        Returns the reply of the last command. A transient error (`connectors.redis_errors`)
        calls `_reply_lost()` (a lost reply may have handed us entries) and raises `ReplyLost`
        after scheduling a retry; NOGROUP calls `_group_vanished()` and raises `GroupVanished`;
        anything else stops the run (`NonTransientRedisError`).
        """
        acks = self._to_ack
        pipe = self._client.pipeline(transaction=False)
        for i in range(0, len(acks), ACK_CHUNK):
            pipe.xack(self._key, self._group, *acks[i : i + ACK_CHUNK])
        n_acks = len(pipe)
        queue(pipe)
        if len(pipe) == 0:
            return None
        started = time.monotonic()
        try:
            replies = pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            self._failed(exc, started)
        OUTAGE.answered()
        self._failures = 0
        for reply in replies:
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                self._group_vanished()
                raise GroupVanished
            if isinstance(reply, Exception):
                if tolerate is not None and tolerate in str(reply):
                    continue
                self._failed(reply, started)
        self._to_ack = []
        self._unacked.difference_update(acks)
        return replies[-1] if len(replies) > n_acks else None

    def _failed(self, exc: BaseException, started: float) -> NoReturn:
        what = f"reading {self._key} as {self._group}/{self.consumer}"
        if classify(exc) is not Verdict.TRANSIENT:
            fail(NonTransientRedisError(f"Redis refused a command while {what}: {one_line(exc)}"))
        self._lost(exc, what, started)
        raise ReplyLost from exc

    def _lost(self, exc: BaseException, what: str, started: float) -> None:
        self._reply_lost()
        # The process's one outage tracker: shared log lines and redis_up/outage metrics.
        elapsed = OUTAGE.failed(exc, what, started, self._budget)
        if elapsed > self._budget:
            fail(
                OutageBudgetExceeded(
                    f"Redis unavailable for {elapsed:.0f} s while {what}, past"
                    f" redis.outage_budget_seconds = {self._budget:g} ({one_line(exc)}); nothing"
                    " unfinished was acknowledged: run again (with --recovery-dir to resume from"
                    " the last snapshot)"
                )
            )
        OUTAGE.retrying()
        self._failures += 1
        delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** min(self._failures, 10))
        self._wait(delay * random.uniform(0.5, 1.0))

    def _wait(self, seconds: float) -> None:
        self._next_awake = datetime.now(UTC) + timedelta(seconds=seconds)
