"""One consumer of a Redis stream group as a Bytewax source partition.

`StreamPartition` is what `connectors.redis_source.RedisStreamSource` builds for each worker;
the module docstring of `connectors.redis_source` explains when entries are acknowledged, how
pending, lost, poison and taken-over entries are handled, and what a snapshot holds.
`acknowledged_on_success()` wraps a run: partitions that ended on a stop are acknowledged only
if the run returned without error.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import orjson
import redis
from bytewax.inputs import StatefulSourcePartition
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors import shutdown
from connectors.redis_errors import (
    NonTransientRedisError,
    OutageBudgetExceeded,
    Verdict,
    classify,
    fail,
    one_line,
)
from connectors.redis_retry import OUTAGE
from connectors.redis_streams import (
    EVENT_FIELD,
    PROCESS_TOKEN,
    Entry,
    ensure_group,
    entries_of,
    entry_id,
    id_key,
    items_of,
)
from operators.events import DeadLetter
from sense_respond import metrics

log = logging.getLogger(__name__)

CLAIM_EVERY_SECONDS = 5.0
"""How often pending entries of dead consumers are looked for (at most)."""
LAG_EVERY_SECONDS = 2.0
"""How often the group's lag is read for `sense_respond_source_lag`."""
_ACK_CHUNK = 1000
"""Entry ids per XACK and per XPENDING page."""
_MAX_ROUNDS = 6
"""Round trips one `next_batch` may make (start, own PEL, claims, new) before returning."""
_BACKOFF_BASE, _BACKOFF_CAP = 0.1, 2.0
STATE_VERSION = 1
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_NAME = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{6})(?:-\d+)?$")


class _Lost(Exception):
    """A round trip failed: its reply (and whatever the server did) is unknown."""


class _Vanished(Exception):
    """The group is gone (NOGROUP) and was recreated."""


def isolation_size(delivery: int, max_deliveries: int, full: int) -> int:
    """Entries handed out together (in one epoch) at their `delivery`-th delivery.

    First and second deliveries: a full batch (a single crash is usually not the entry's
    fault). From then on the groups shrink geometrically to one entry at the last allowed
    delivery, so only the entry that keeps failing reaches `max_deliveries`.
    """
    if delivery <= 1 or (delivery == 2 and max_deliveries > 2):
        return full
    if delivery >= max_deliveries:
        return 1
    exponent = (max_deliveries - delivery) / (max_deliveries - 2)
    return max(1, min(full, int(full**exponent)))


def _local_consumer_is_dead(name: str) -> bool:
    """Whether `name` is a consumer name of this host whose process no longer runs."""
    match = _NAME.match(name)
    if match is None or match["host"] != socket.gethostname():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return match["token"] != PROCESS_TOKEN  # an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class _Phase(enum.Enum):
    START = "start"
    OWN = "own"
    """Re-claiming this consumer's pending entries not handed out in this run."""
    LIVE = "live"


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


class StreamPartition(StatefulSourcePartition[bytes | DeadLetter, dict[str, Any] | None]):
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
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0 (BLOCK 0 blocks forever)")
        self._client = client
        self._key = stream_key
        self._group = group
        self.consumer = consumer
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._claim_every = claim_every_seconds
        self._max_deliveries = max_deliveries
        self._budget = outage_budget_seconds
        self._idle_exit = idle_exit_seconds
        self._stop = stop
        self._clock = clock
        self._source = f"redis:{stream_key}"
        self._input = input_name or self._source
        self._events = metrics.EVENTS.labels(input=self._input)
        self._lag = metrics.SOURCE_LAG.labels(input=self._input)

        self._resumed = resume is not None
        self._done_at_start: list[str] = list(resume["done"]) if resume else []
        self.last_seen: str | None = resume.get("last_seen") if resume else None
        """The highest id this partition read from the group (where a lost group restarts)."""
        self._phase = _Phase.START
        self._own_cursor = "-"
        self._queue: deque[tuple[str, int]] = deque()  # (entry id, its delivery number)
        self._hold: set[str] = set()  # an isolated group in flight: nothing more until acked
        self._handed: list[str] = []  # in the current epoch
        self._sealed: list[str] = []  # in closed epochs, acked at the next next_batch
        self._to_ack: list[str] = []
        self._unacked: set[str] = set()  # handed out in this run, not known acknowledged
        self._sealed_since_call = False
        self._ended = False
        now = clock()
        self._last_data = now
        self._claim_due = now + (claim_every_seconds if self._resumed else 0.0)
        self._lag_due = now
        self._next_awake: datetime | None = None
        self._failures = 0

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
        except _Lost:
            return []
        except _Vanished:
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
        with contextlib.suppress(_Lost, _Vanished):
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
            for i in range(0, len(ids), _ACK_CHUNK):
                acked += int(self._client.xack(self._key, self._group, *ids[i : i + _ACK_CHUNK]))
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

    # -- reading -----------------------------------------------------------------------------

    def _next_items(self) -> list[bytes | DeadLetter]:
        for _ in range(_MAX_ROUNDS):
            if self._phase is _Phase.START:
                self._start()
                continue
            if self._hold:
                if self._hold & self._unacked:
                    if self._to_ack:
                        self._run(lambda pipe: None)
                    if self._hold & self._unacked:
                        self._wait(self._block_ms / 1000)
                        return []
                self._hold.clear()
            if self._queue:
                return self._hand_queued()
            if self._phase is _Phase.OWN:
                self._scan_own()
                continue
            if self._clock() >= self._claim_due:
                self._claim_dead()
                if self._phase is _Phase.OWN:  # took entries over: hand them out first
                    continue
            return self._read_new()
        return []

    def _start(self) -> None:
        done = self._done_at_start
        if done:
            # Their effect is in the restored state: acknowledge, never hand out again.
            self._to_ack.extend(done)
            self._unacked.update(done)
        # A group that does not exist yet reads the stream's history; a resumed partition's
        # group that vanished while the run was down continues after its snapshot.
        start = (self.last_seen if self._resumed else None) or "0"
        self._run(
            lambda pipe: pipe.xgroup_create(self._key, self._group, id=start, mkstream=True),
            tolerate="BUSYGROUP",
        )
        self._done_at_start = []
        self._phase = _Phase.OWN
        if done:
            log.info(
                "consumer %s resumed: acknowledged %d entries of the restored snapshot",
                self.consumer,
                len(done),
            )

    def _scan_own(self) -> None:
        """Queue this consumer's pending entries that this run has not handed out."""
        cursor = self._own_cursor
        rows = self._run(
            lambda pipe: pipe.xpending_range(
                self._key, self._group, min=cursor, max="+", count=self._count,
                consumername=self.consumer,
            )
        )  # fmt: skip
        if not rows:
            self._own_cursor = "-"
            self._phase = _Phase.LIVE
            return
        self._own_cursor = "(" + entry_id(rows[-1]["message_id"])
        queued = {eid for eid, _ in self._queue}
        fresh = 0
        for row in rows:
            eid = entry_id(row["message_id"])
            if eid not in self._unacked and eid not in queued:
                # The delivery it is about to get (XPENDING counts those it had).
                self._queue.append((eid, int(row["times_delivered"]) + 1))
                fresh += 1
        if fresh:
            log.info("consumer %s: handing out %d pending entries again", self.consumer, fresh)

    def _claim_dead(self) -> None:
        """Take over pending entries of consumers that are gone (then read as our own)."""
        consumers = self._run(lambda pipe: pipe.xinfo_consumers(self._key, self._group))
        for info in consumers or []:
            name = entry_id(info["name"])
            if name == self.consumer:
                continue
            local_dead = _local_consumer_is_dead(name)
            if not info.get("pending"):
                if local_dead:
                    # Its process is gone and nothing is pending on it: remove the name.
                    self._run(
                        lambda pipe, who=name: pipe.xgroup_delconsumer(self._key, self._group, who)
                    )
                continue
            if local_dead and not self._resumed:
                min_idle = 0
            elif int(info.get("idle", 0)) >= self._claim_idle_ms:
                min_idle = self._claim_idle_ms
            else:
                continue
            rows = self._run(
                lambda pipe, who=name: pipe.xpending_range(
                    self._key, self._group, min="-", max="+", count=self._count,
                    consumername=who,
                )
            )  # fmt: skip
            if not rows:
                continue
            ids = [entry_id(r["message_id"]) for r in rows]
            if min_idle == 0:
                # Several partitions may race for a dead consumer's entries: a claim resets an
                # entry's idle time, so with half its idle time as the minimum only one wins.
                min_idle = max(1, min(int(r["time_since_delivered"]) for r in rows) // 2)
            # JUSTID moves them into our PEL without counting a delivery (none happened yet).
            claimed = self._run(
                lambda pipe, ids=ids, idle=min_idle: pipe.xclaim(
                    self._key, self._group, self.consumer, idle, ids, justid=True
                )
            )
            if claimed:
                log.info("consumer %s took over %d pending entries of %s",
                         self.consumer, len(claimed), name)  # fmt: skip
                self._phase, self._own_cursor = _Phase.OWN, "-"
                return  # come back for more at once
        self._claim_due = self._clock() + self._claim_every

    def _hand_queued(self) -> list[bytes | DeadLetter]:
        """Hand out queued (re-delivered) entries: poison ones as dead letters, the rest in
        groups that shrink with their delivery count (one group per epoch)."""
        size = self._count
        taken: list[tuple[str, int]] = []
        while self._queue and len(taken) < size:
            _, delivery = self._queue[0]
            if delivery <= self._max_deliveries:
                size = min(size, isolation_size(delivery, self._max_deliveries, self._count))
                if len(taken) >= size:
                    break
            taken.append(self._queue.popleft())
        deliveries = dict(taken)
        ids = list(deliveries)
        # XCLAIM to ourselves (no idle time) fetches them and counts this delivery.
        entries = self._run(lambda pipe: pipe.xclaim(self._key, self._group, self.consumer, 0, ids))
        got = {entry_id(eid): (eid, fields) for eid, fields in entries or [] if eid is not None}
        # Pending but not returned: deleted from the stream (older servers keep such ids in
        # the PEL). Nothing to process; acknowledged so they stop coming back.
        self._to_ack.extend(i for i in ids if i not in got)
        out: list[bytes | DeadLetter] = []
        normal: list[Entry] = []
        for eid in ids:
            if eid not in got:
                continue
            if deliveries[eid] > self._max_deliveries:
                out.append(self._poison(got[eid], deliveries[eid] - 1))
            else:
                normal.append(got[eid])
        out.extend(items_of(normal, self._source))
        self._note_handed(list(got), len(normal))
        if size < self._count:
            self._hold = {entry_id(e[0]) for e in normal}
        return out

    def _poison(self, entry: Entry, deliveries: int) -> DeadLetter:
        eid = entry_id(entry[0])
        fields = entry[1]
        raw = fields.get(EVENT_FIELD)
        if raw is None:
            raw = orjson.dumps(
                {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                 for k, v in fields.items()}
            )  # fmt: skip
        reason = (
            f"stream entry {eid} was delivered {deliveries} times without completing"
            f" (redis.max_deliveries = {self._max_deliveries})"
        )
        log.warning("%s: %s; dead-lettered", self._key, reason)
        return DeadLetter(reason, raw, datetime.now(UTC), f"{self._source}#{eid}")

    def _read_new(self) -> list[bytes | DeadLetter]:
        reply = self._run(
            lambda pipe: pipe.xreadgroup(
                self._group, self.consumer, {self._key: ">"}, count=self._count,
                block=self._block_ms,
            )
        )  # fmt: skip
        entries = entries_of(reply)
        if not entries:
            return []
        ids = [entry_id(eid) for eid, _ in entries]
        self.last_seen = ids[-1]
        self._note_handed(ids, len(entries))
        return items_of(entries, self._source)

    def _note_handed(self, ids: list[str], events: int) -> None:
        self._handed.extend(ids)
        self._unacked.update(ids)
        if events:
            self._events.inc(events)

    # -- round trips -------------------------------------------------------------------------

    def _run(self, queue: Callable[[Any], Any], tolerate: str | None = None) -> Any:
        """One round trip: the due acknowledgements, then what `queue` adds to the pipeline.

        Returns the reply of the last command. A transient error (`connectors.redis_errors`)
        marks the own PEL for a rescan (a lost reply may have handed us entries) and raises
        `_Lost` after scheduling a retry; NOGROUP recreates the group and raises `_Vanished`;
        anything else stops the run (`NonTransientRedisError`).
        """
        acks = self._to_ack
        pipe = self._client.pipeline(transaction=False)
        for i in range(0, len(acks), _ACK_CHUNK):
            pipe.xack(self._key, self._group, *acks[i : i + _ACK_CHUNK])
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
                raise _Vanished
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
        raise _Lost from exc

    def _lost(self, exc: BaseException, what: str, started: float) -> None:
        self._phase = _Phase.OWN if self._phase is _Phase.LIVE else self._phase
        self._own_cursor = "-"
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

    def _group_vanished(self) -> None:
        start = self.last_seen or "0"
        log.warning(
            "consumer group %s on %s vanished; recreating it after entry %s",
            self._group,
            self._key,
            start,
        )
        # Acknowledgements and the old PEL went with the group.
        self._unacked.difference_update(self._to_ack)
        self._to_ack = []
        self._hold.clear()
        self._own_cursor = "-"
        if self._phase is not _Phase.START:
            self._phase = _Phase.LIVE
        try:
            ensure_group(self._client, self._key, self._group, start_id=start)
        except _RETRYABLE as exc:
            self._lost(exc, f"recreating group {self._group}", time.monotonic())

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
