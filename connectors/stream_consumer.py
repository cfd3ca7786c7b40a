"""What one consumer of a Redis stream group hands out next, and from where.

`StreamConsumer` is the reading side of `connectors.stream_partition.StreamPartition` (the
mechanism is described in `connectors.redis_source`). At start it creates the group (or
acknowledges the entries of its restored snapshot); then, in this order, it hands out its own
pending entries it has not handed out in this run (at start and after any lost reply), pending
entries it took over from dead consumers, and new entries. Re-delivered entries go out in
shrinking groups, one group at a time (`isolation_size`), and an entry delivered
`max_deliveries` times becomes a dead letter.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.redis_streams import (
    EVENT_FIELD,
    PROCESS_TOKEN,
    Entry,
    ensure_group,
    entries_of,
    entry_id,
    items_of,
)
from connectors.stream_round_trips import GroupRoundTrips
from operators.events import DeadLetter
from sense_respond import metrics

log = logging.getLogger(__name__)

CLAIM_EVERY_SECONDS = 5.0
"""How often pending entries of dead consumers are looked for (at most)."""
_MAX_ROUNDS = 6
"""Round trips one `next_batch` may make (start, own PEL, claims, new) before returning."""
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_NAME = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{6})(?:-\d+)?$")


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


class StreamConsumer(GroupRoundTrips):
    """Decides what to hand out next: own pending entries, taken-over ones, then new ones."""

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        resume: dict[str, Any] | None,
        count: int,
        block_ms: int,
        claim_idle_ms: int,
        claim_every_seconds: float,
        max_deliveries: int,
        outage_budget_seconds: float,
        input_name: str | None,
        clock: Callable[[], float],
    ) -> None:
        """Read `stream_key` through `group` as `consumer`; `resume` is a partition snapshot."""
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0 (BLOCK 0 blocks forever)")
        super().__init__(
            client, stream_key, group, consumer, outage_budget_seconds=outage_budget_seconds
        )
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._claim_every = claim_every_seconds
        self._max_deliveries = max_deliveries
        self._clock = clock
        self._source = f"redis:{stream_key}"
        self._input = input_name or self._source
        self._events = metrics.EVENTS.labels(input=self._input)

        self._resumed = resume is not None
        self._done_at_start: list[str] = list(resume["done"]) if resume else []
        self.last_seen: str | None = resume.get("last_seen") if resume else None
        """The highest id this partition read from the group (where a lost group restarts)."""
        self._phase = _Phase.START
        self._own_cursor = "-"
        self._queue: deque[tuple[str, int]] = deque()  # (entry id, its delivery number)
        self._hold: set[str] = set()  # an isolated group in flight: nothing more until acked
        self._handed: list[str] = []  # in the current epoch
        self._claim_due = clock() + (claim_every_seconds if self._resumed else 0.0)

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

    # -- lost replies and a lost group -------------------------------------------------------

    def _reply_lost(self) -> None:
        self._phase = _Phase.OWN if self._phase is _Phase.LIVE else self._phase
        self._own_cursor = "-"

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
