"""One consumer of a Redis stream group as a Bytewax source partition.

`StreamPartition` is what `connectors.redis_source.RedisStreamSource` builds for each worker;
the module docstring of `connectors.redis_source` explains when entries are acknowledged, how
pending, lost, poison and taken-over entries are handled, and what a snapshot holds. This module
holds the Bytewax side: epochs and snapshots, the end of a run, the lag metric. What to hand out
next is `connectors.stream_consumer`, the round trips to Redis `connectors.stream_round_trips`.
`acknowledged_on_success()` wraps a run: partitions that ended on a stop are acknowledged only
if the run returned without error.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import redis
from bytewax.inputs import StatefulSourcePartition
from redis.exceptions import RedisError

from connectors import shutdown
from connectors.redis_streams import entry_id, id_key
from connectors.stream_consumer import CLAIM_EVERY_SECONDS, StreamConsumer
from connectors.stream_round_trips import ACK_CHUNK, GroupVanished, ReplyLost
from operators.events import DeadLetter
from sense_respond import metrics

log = logging.getLogger(__name__)

LAG_EVERY_SECONDS = 2.0
"""How often the group's lag is read for `sense_respond_source_lag`."""
STATE_VERSION = 1


# -- the final acknowledgements of partitions that ended ---------------------------------------


class _FinalAcks:
    """Partitions that ended (EOF) with entries only the end of the run makes safe to ack."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[StreamPartition] = []

    def register(self, part: StreamPartition) -> None:
        with self._lock:
            self._parts.append(part)

    def take(self) -> list[StreamPartition]:
        with self._lock:
            parts, self._parts = self._parts, []
            return parts


_FINAL = _FinalAcks()


@contextlib.contextmanager
def acknowledged_on_success() -> Iterator[None]:
    """Around a run: acknowledge what ended partitions handed out, if the run succeeded.

    The run returning normally means every sink wrote everything and, with recovery, the final
    snapshot is committed. After an exception nothing is acknowledged: it is handed out again.
    """
    for part in _FINAL.take():  # leftovers of an earlier run in this process
        part.abandon()
    try:
        yield
    except BaseException:
        for part in _FINAL.take():
            part.abandon()
        raise
    acked = sum(part.finish() for part in _FINAL.take())
    if acked:
        log.info("acknowledged the last %d stream entries of the run", acked)


# -- the partition -------------------------------------------------------------------------------


class StreamPartition(
    StreamConsumer, StatefulSourcePartition[bytes | DeadLetter, dict[str, Any] | None]
):
    """One consumer of the group (see the module docstring for when entries are acked)."""

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        resume: dict[str, Any] | None = None,
        count: int = 500,
        block_ms: int = 100,
        claim_idle_ms: int = 60_000,
        claim_every_seconds: float = CLAIM_EVERY_SECONDS,
        max_deliveries: int = 5,
        outage_budget_seconds: float = 300.0,
        idle_exit_seconds: float | None = None,
        input_name: str | None = None,
        stop: Callable[[], bool] = shutdown.requested,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read `stream_key` through `group` as `consumer`; `resume` is a snapshot of it.

        `client` must not retry by itself (see the module docstring). Nothing is sent to Redis
        before the first `next_batch`.
        """
        super().__init__(
            client,
            stream_key,
            group,
            consumer,
            resume=resume,
            count=count,
            block_ms=block_ms,
            claim_idle_ms=claim_idle_ms,
            claim_every_seconds=claim_every_seconds,
            max_deliveries=max_deliveries,
            outage_budget_seconds=outage_budget_seconds,
            input_name=input_name,
            clock=clock,
        )
        self._idle_exit = idle_exit_seconds
        self._stop = stop
        self._lag = metrics.SOURCE_LAG.labels(input=self._input)
        self._sealed: list[str] = []  # in closed epochs, acked at the next next_batch
        self._sealed_since_call = False
        self._ended = False
        now = clock()
        self._last_data = now
        self._lag_due = now

    # -- Bytewax -----------------------------------------------------------------------------

    def next_batch(self) -> list[bytes | DeadLetter]:
        """Acknowledge the sealed epochs' entries, then hand out the next ones."""
        if self._sealed_since_call:
            # Called again after `snapshot()`: the sealed epochs are through every sink.
            self._sealed_since_call = False
            self._to_ack.extend(self._sealed)
            self._sealed = []
        self._next_awake = None
        if self._stop():
            log.info("consumer %s: stop requested, ending the partition", self.consumer)
            self._end()
        try:
            items = self._next_items()
        except ReplyLost:
            return []
        except GroupVanished:
            return []
        if items:
            self._last_data = self._clock()
        elif self._idle_exit_due():
            log.info("consumer %s: %s idle for %.1fs, ending", self.consumer, self._key,
                     self._idle_exit)  # fmt: skip
            self._end()
        self._update_lag()
        return items

    def next_awake(self) -> datetime | None:
        """Wait before the next call while holding back or while Redis is away."""
        return self._next_awake

    def snapshot(self) -> dict[str, Any]:
        """Seal what was handed out so far: the consumer and the ids not known acknowledged."""
        self._sealed.extend(self._handed)
        self._handed = []
        self._sealed_since_call = True
        return {
            "v": STATE_VERSION,
            "consumer": self.consumer,
            # Restored ones not acknowledged yet (a stop before the first read) stay done.
            "done": sorted(self._unacked.union(self._done_at_start), key=id_key),
            "last_seen": self.last_seen,
        }

    def close(self) -> None:
        """Close the connection; a consumer with nothing left pending leaves the group.

        Bytewax also closes partitions while unwinding from a failed step: whatever was handed
        out and not acknowledged stays pending then, and is handed out again.
        """
        if self._ended:
            return  # the run's end acknowledges (or abandons) it
        try:
            if not self._unacked and not self._queue:
                self._retire()
        except RedisError as exc:
            log.debug("consumer %s not removed: %s", self.consumer, exc)
        finally:
            self._client.close()

    # -- the end of a run --------------------------------------------------------------------

    def _idle_exit_due(self) -> bool:
        # Not in a hurry: end only once everything handed out is acknowledged (one more epoch),
        # so a bounded run leaves nothing pending even without `acknowledged_on_success`.
        if self._idle_exit is None or self._queue or self._hold or self._unacked:
            return False
        return self._clock() - self._last_data >= self._idle_exit

    def _end(self) -> None:
        with contextlib.suppress(ReplyLost, GroupVanished):
            if self._to_ack:
                self._run(lambda pipe: None)
        self._ended = True
        if self._unacked or self._queue:
            _FINAL.register(self)  # acknowledged (or not) by the end of the run
        else:
            self.finish()  # nothing left to wait for: leave the group now
        raise StopIteration

    def finish(self) -> int:
        """After a successful run: acknowledge everything handed out, then leave the group."""
        ids = sorted(self._unacked, key=id_key)
        acked = 0
        try:
            for i in range(0, len(ids), ACK_CHUNK):
                acked += int(self._client.xack(self._key, self._group, *ids[i : i + ACK_CHUNK]))
            self._unacked.clear()
            if not self._queue:
                self._retire()
        except RedisError as exc:
            log.warning(
                "consumer %s: could not acknowledge the last %d entries (%s); they will be"
                " handed out again",
                self.consumer,
                len(ids),
                exc,
            )
        finally:
            self._client.close()
        return acked

    def abandon(self) -> None:
        """After a failed run: acknowledge nothing."""
        self._client.close()

    def _retire(self) -> None:
        pending = self._client.xpending_range(
            self._key, self._group, min="-", max="+", count=1, consumername=self.consumer
        )
        if not pending:
            self._client.xgroup_delconsumer(self._key, self._group, self.consumer)
            log.debug("consumer %s left group %s", self.consumer, self._group)

    # -- the lag metric ----------------------------------------------------------------------

    def _update_lag(self) -> None:
        now = self._clock()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_EVERY_SECONDS
        try:
            groups = self._client.xinfo_groups(self._key)
        except RedisError:
            return
        for info in groups:
            if entry_id(info["name"]) != self._group:
                continue
            lag = info.get("lag")
            if lag is None and info.get("entries-read") is not None:
                # Redis 7 cannot always tell (after deletions): count from the stream's side.
                with contextlib.suppress(RedisError):
                    added = self._client.xinfo_stream(self._key).get("entries-added")
                    if added is not None:
                        lag = max(0, int(added) - int(info["entries-read"]))
            if lag is not None:
                self._lag.set(int(lag))
            return
