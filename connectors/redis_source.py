"""Read events from a Redis stream through a consumer group, and the small stream helpers.

Two sources over the same group (`settings.input_group`):

* `RedisStreamSource`, without Bytewax recovery: a `DynamicSource` where every worker (thread
  or process) is its own consumer of the group and Redis hands each entry to exactly one of
  them. No Bytewax resume state is needed: the group itself remembers what was delivered (its
  last-delivered id) and what is still unacknowledged (the pending entries list, PEL).
* `ResumableRedisStreamSource`, for runs with recovery (`--recovery-dir`): a
  `FixedPartitionedSource` with one partition, so one consumer in the cluster reads the stream
  and the partition's snapshot is the id of the last entry handed out. A resumed run re-reads
  everything after the restored snapshot, so every entry affects the recovered state exactly
  once. With recovery, the dynamic source would lose entries acknowledged after the last
  snapshot (their effect on state was not in it, and the group never hands them out again).

The dynamic source delivers at-least-once:

* an entry is acknowledged (XACK, pipelined with the next read) only when `next_batch` is
  called again: Bytewax calls it after this worker has run the previous batch through its
  steps (measured with Bytewax 0.21.1);
* `close` does not acknowledge. Bytewax calls `close` also while unwinding from a failed step
  (measured), and an unbounded stream never ends cleanly, so a batch seen at `close` may not
  have been processed: it stays pending and is replayed;
* a consumer that starts first re-reads its own pending entries (XREADGROUP from id 0), so a
  restart with the same consumer name replays what it had not acknowledged;
* entries left pending by a consumer that died are taken over with XAUTOCLAIM once they have
  been idle for `claim_idle_ms` (at start, then every few seconds, a bounded number at a time).

Downstream delivery is idempotent (see `redis_sinks`), so the duplicates it produces are
harmless.

In both sources the blocking XREADGROUP (BLOCK `block_ms`, never 0) holds the worker for at
most `block_ms` when the stream is idle; keep it small (default 100 ms) so epochs keep closing.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from bytewax.inputs import (
    DynamicSource,
    FixedPartitionedSource,
    StatefulSourcePartition,
    StatelessSourcePartition,
)
from redis.exceptions import ResponseError

from config.settings import RedisSettings
from connectors.redis_client import alerts_key, make_client, redacted_url
from operators.events import DeadLetter

log = logging.getLogger(__name__)

EVENT_FIELD = b"event"
CLAIM_EVERY_SECONDS = 5.0
"""How often idle pending entries of other consumers are looked for (at most)."""
_ZERO_ID = "0-0"
_Entry = tuple[Any, dict[bytes, bytes]]
"""A stream entry as redis-py returns it: (id, fields); fields are empty for a deleted entry."""
_MAX_READS_PER_BATCH = 4
"""Round trips one `next_batch` may make (pending -> claim -> new) before returning."""


def default_consumer(worker_index: int | None = None) -> str:
    """`{hostname}-{pid}` (plus `-{worker_index}`): unique per process and worker."""
    base = f"{socket.gethostname()}-{os.getpid()}"
    return base if worker_index is None else f"{base}-{worker_index}"


def ensure_group(client: redis.Redis, stream_key: str, group: str, start_id: str = "0") -> bool:
    """Create consumer group `group` on `stream_key` (and the stream) unless it exists.

    Returns whether it was created. `start_id` "0" reads the stream's history, "$" only new ones.
    """
    try:
        client.xgroup_create(stream_key, group, id=start_id, mkstream=True)
        return True
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def _id(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def _entries(reply: Any) -> list[_Entry]:
    """The entries of a single-stream XREADGROUP reply (RESP2 list or RESP3 dict shape)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        value = next(iter(reply.values()), [])
        # Older redis-py RESP3 parsing wraps the entries in a one-element list.
        if value and isinstance(value[0], list):
            value = value[0]
        return list(value)
    return list(reply[0][1])


def _items(entries: Sequence[_Entry], source: str) -> list[bytes | DeadLetter]:
    """The `event` bytes of stream entries, or a `DeadLetter` for an entry without that field.

    A deleted or trimmed entry (no fields: a pending one read again) yields nothing.
    """
    out: list[bytes | DeadLetter] = []
    for entry_id, fields in entries:
        if not fields:
            continue
        event = fields.get(EVENT_FIELD)
        if event is not None:
            out.append(event)
            continue
        eid = _id(entry_id)
        names = ", ".join(sorted(k.decode("utf-8", "replace") for k in fields))
        raw = orjson.dumps(
            {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
        )
        reason = f"stream entry {eid} has no 'event' field (fields: {names})"
        out.append(DeadLetter(reason, raw, datetime.now(UTC), f"{source}#{eid}"))
    return out


_ACK_CHUNK = 1000
"""Entry ids per XACK (and per XPENDING page when sweeping the pending entries list)."""


class _GroupConsumer:
    """What both stream partitions share: one consumer of a group on one stream, whose
    acknowledgements ride on the round trip of its next read."""

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int,
        idle_exit_seconds: float | None,
        clock: Callable[[], float],
    ) -> None:
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0 (BLOCK 0 blocks forever)")
        self._client = client
        self._key = stream_key
        self._group = group
        self.consumer = consumer
        self._count = count
        self._block_ms = block_ms
        self._idle_exit = idle_exit_seconds
        self._clock = clock
        self._last_data = clock()
        self._source = f"redis:{stream_key}"
        self._to_ack: list[str] = []

    def _group_vanished(self) -> None:
        """The stream or group was deleted under us (NOGROUP): recreate it and carry on."""
        raise NotImplementedError

    def _run(self, read: Callable[[Any], None]) -> Any:
        """One round trip: the due acknowledgements, then `read` (queued on the pipeline)."""
        pipe = self._client.pipeline(transaction=False)
        for i in range(0, len(self._to_ack), _ACK_CHUNK):
            pipe.xack(self._key, self._group, *self._to_ack[i : i + _ACK_CHUNK])
        read(pipe)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                log.warning("consumer group %s on %s vanished; recreating", self._group, self._key)
                self._to_ack = []  # nothing left to acknowledge
                self._group_vanished()
                return None
            if isinstance(reply, Exception):
                raise reply
        self._to_ack = []
        return replies[-1]

    def _read_new(self) -> list[_Entry]:
        return _entries(
            self._run(
                lambda p: p.xreadgroup(
                    self._group,
                    self.consumer,
                    {self._key: ">"},
                    count=self._count,
                    block=self._block_ms,
                )
            )
        )


class RedisStreamPartition(_GroupConsumer, StatelessSourcePartition[bytes | DeadLetter]):
    """One consumer of the group: yields the `event` bytes of entries, or a `DeadLetter`."""

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        count: int,
        block_ms: int,
        claim_idle_ms: int,
        claim_every_seconds: float = CLAIM_EVERY_SECONDS,
        retire_on_close: bool = False,
        idle_exit_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Join `group` on `stream_key` as `consumer` (creating the group from id 0 if needed).

        `retire_on_close` deletes the consumer from the group on `close` when it holds no pending
        entries (for throwaway host-pid names, so dead names do not pile up in the group).
        `idle_exit_seconds` ends this partition (EOF) once nothing new arrived for that long,
        after acknowledging the last batch: a bounded run over a stream (backfills, tests).
        """
        super().__init__(
            client,
            stream_key,
            group,
            consumer,
            count=count,
            block_ms=block_ms,
            idle_exit_seconds=idle_exit_seconds,
            clock=clock,
        )
        self._claim_idle_ms = claim_idle_ms
        self._claim_every = claim_every_seconds
        self._retire = retire_on_close
        # Own pending entries are replayed first, from this cursor; None once done.
        self._pending_cursor: str | None = "0"
        # XAUTOCLAIM scan: cursor of the current round, when the next round is due.
        self._claim_cursor = _ZERO_ID
        self._claim_due = clock()
        ensure_group(client, stream_key, group)

    # -- reading -----------------------------------------------------------------------------

    def _group_vanished(self) -> None:
        self._pending_cursor = None
        ensure_group(self._client, self._key, self._group)

    def _read_pending(self) -> list[_Entry]:
        cursor = self._pending_cursor
        assert cursor is not None
        reply = self._run(
            lambda p: p.xreadgroup(
                self._group, self.consumer, {self._key: cursor}, count=self._count
            )
        )
        entries = _entries(reply)
        if entries:
            self._pending_cursor = _id(entries[-1][0])
        else:
            self._pending_cursor = None
            log.debug("consumer %s: own pending entries replayed", self.consumer)
        return entries

    def _claim(self) -> list[_Entry]:
        cursor = self._claim_cursor
        reply = self._run(
            lambda p: p.xautoclaim(
                self._key,
                self._group,
                self.consumer,
                self._claim_idle_ms,
                start_id=cursor,
                count=self._count,
            )
        )
        if reply is None:
            return []
        next_cursor = _id(reply[0])
        claimed = [(eid, fields) for eid, fields in reply[1] if eid is not None]
        if next_cursor == _ZERO_ID:
            self._claim_cursor = _ZERO_ID
            self._claim_due = self._clock() + self._claim_every
        else:
            # More of the PEL to scan: continue with the next batch.
            self._claim_cursor = next_cursor
        if claimed:
            log.info("consumer %s claimed %d idle entries", self.consumer, len(claimed))
        return claimed

    def _convert(self, entries: Sequence[_Entry]) -> list[bytes | DeadLetter]:
        self._to_ack.extend(_id(entry_id) for entry_id, _ in entries)
        return _items(entries, self._source)

    def next_batch(self) -> list[bytes | DeadLetter]:
        """Ack the previous batch, then read: own pending first, idle claims, then new entries."""
        batch = self._next_entries()
        if batch:
            self._last_data = self._clock()
        elif self._idle_exit is not None and self._clock() - self._last_data >= self._idle_exit:
            # Bytewax has run everything handed out so far: acknowledge it, then end.
            self.ack_pending()
            raise StopIteration
        return batch

    def _next_entries(self) -> list[bytes | DeadLetter]:
        for _ in range(_MAX_READS_PER_BATCH):
            if self._pending_cursor is not None:
                entries = self._read_pending()
            elif self._clock() >= self._claim_due:
                entries = self._claim()
            else:
                return self._convert(self._read_new())
            if entries:
                return self._convert(entries)
        return []

    # -- lifecycle ---------------------------------------------------------------------------

    def ack_pending(self) -> int:
        """Acknowledge the entries of the last batch now (only once they are known processed)."""
        if not self._to_ack:
            return 0
        n = int(self._client.xack(self._key, self._group, *self._to_ack))
        self._to_ack = []
        return n

    def close(self) -> None:
        """Close the connection; the last batch stays pending (see the module docstring).

        A throwaway consumer name with nothing pending is removed from the group so dead
        host-pid names do not pile up; one with pending entries stays until they are claimed.
        """
        try:
            if self._retire and not self._to_ack:
                pending = self._client.xpending_range(
                    self._key, self._group, min="-", max="+", count=1, consumername=self.consumer
                )
                if not pending:
                    self._client.xgroup_delconsumer(self._key, self._group, self.consumer)
        finally:
            self._client.close()


class RedisStreamSource(DynamicSource[bytes | DeadLetter]):
    """Unbounded source over a Redis stream: each worker is a consumer of `settings.input_group`.

    Items are the raw `event` field bytes (to be parsed by `operators.events.parse_event`), or a
    `DeadLetter` for entries without that field. Entries per read: `min(batch_size,
    settings.read_count)`. Consumer name: `settings.consumer` (suffixed `-{worker_index}` when
    there are several workers, so they never share a PEL) or `{hostname}-{pid}-{worker_index}`.
    A stable configured name lets a restarted process replay its own pending entries at once;
    with the default name they are reclaimed after `claim_idle_ms`.
    """

    def __init__(
        self,
        url: str,
        stream_key: str,
        settings: RedisSettings,
        batch_size: int | None = None,
        *,
        claim_every_seconds: float = CLAIM_EVERY_SECONDS,
    ) -> None:
        """Only remember where to read: each worker connects in `build`."""
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._url = url
        self._key = stream_key
        self._settings = settings
        self._count = min(batch_size or settings.read_count, settings.read_count)
        self._claim_every = claim_every_seconds

    def consumer_name(self, worker_index: int, worker_count: int) -> str:
        """The consumer name of one worker (see the class docstring)."""
        configured = self._settings.consumer
        if configured:
            return configured if worker_count == 1 else f"{configured}-{worker_index}"
        return default_consumer(worker_index)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> RedisStreamPartition:
        """Connect this worker as its own consumer of the group."""
        s = self._settings
        consumer = self.consumer_name(worker_index, worker_count)
        # The socket must outlive a blocked XREADGROUP, or the block would look like a timeout.
        client = make_client(
            self._url,
            s,
            socket_timeout=max(s.socket_timeout_seconds, s.block_ms / 1000 + 1.0),
            client_name=f"sense-respond:source:{worker_index}",
        )
        log.info(
            "reading %s from %s as %s/%s",
            self._key,
            redacted_url(self._url),
            s.input_group,
            consumer,
        )
        return RedisStreamPartition(
            client,
            self._key,
            s.input_group,
            consumer,
            count=self._count,
            block_ms=s.block_ms,
            claim_idle_ms=s.claim_idle_ms,
            claim_every_seconds=self._claim_every,
            retire_on_close=not s.consumer,
            idle_exit_seconds=s.input_idle_exit_seconds,
        )


# -- with Bytewax recovery: one resumable reader ----------------------------------------------

RESUMABLE_CONSUMER = "sense-respond-recovery"
"""Consumer name of the resumable source unless one is configured: the same after a restart."""


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable (milliseconds, sequence) pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class _Phase(enum.Enum):
    START = "start"
    CLAIM = "claim"
    """Fresh start: every pending entry of the group, whoever holds it, oldest first."""
    REPLAY = "replay"
    """Resumed: the entries after the snapshot up to the group's last-delivered id."""
    NEW = "new"
    """XREADGROUP '>'."""


class ResumableStreamPartition(
    _GroupConsumer, StatefulSourcePartition[bytes | DeadLetter, str | None]
):
    """The group's only reader, snapshotted by Bytewax: every entry affects recovered state once.

    The snapshot is the id of the last entry handed out (None before the first). Entries are
    handed out in id order, none skipped:

    * fresh start (no snapshot): the group's pending entries first, whichever consumer holds them
      (XAUTOCLAIM from 0 with no idle time: a previous run killed before its first snapshot left
      everything it read there), then new entries;
    * resumed from snapshot S: every entry after S up to the group's last-delivered id at start
      is read again with XRANGE (the crashed run handed them out, and may have acknowledged
      them, after the snapshot that was restored), after acknowledging everything pending up to
      that id; then new entries.

    Acknowledgement lags one snapshot: entries covered by a snapshot are acknowledged at the first
    `next_batch` after it, because Bytewax calls `next_batch` again only once that epoch is fully
    processed and committed (its input backpressure; measured with Bytewax 0.21.1). So nothing is
    acknowledged before it is in a committed snapshot, which is what makes the fresh start exact.
    `idle_exit_seconds` ends the partition once the stream was idle that long, after
    acknowledging everything, but in a run that has no committed snapshot yet only once one
    covering the last entry is committed (at most one epoch later).
    """

    def __init__(
        self,
        client: redis.Redis,
        stream_key: str,
        group: str,
        consumer: str,
        *,
        resume_id: str | None,
        count: int,
        block_ms: int,
        idle_exit_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read `stream_key` through `group` as `consumer`, after entry `resume_id` if given.

        Nothing is sent to Redis before the first `next_batch` (which looks at the group).
        """
        super().__init__(
            client,
            stream_key,
            group,
            consumer,
            count=count,
            block_ms=block_ms,
            idle_exit_seconds=idle_exit_seconds,
            clock=clock,
        )
        self._resume_id = resume_id
        self.last_id = resume_id
        """The id of the last entry handed out: the snapshot."""
        self._phase = _Phase.START
        self._cursor = _ZERO_ID  # CLAIM: the XAUTOCLAIM cursor; REPLAY: the last id re-read
        self._replay_end = _ZERO_ID
        self._handed: list[str] = []  # handed out since the last snapshot
        self._snapshotted: list[str] = []  # covered by the last snapshot, not known committed
        self._snapshot_taken = False
        self._snapshot_id: str | None = None
        # A committed snapshot of this run's recovery state holds an entry id: any later run
        # resumes from XRANGE and no longer depends on what is acknowledged.
        self._committed = resume_id is not None

    # -- Bytewax -----------------------------------------------------------------------------

    def next_batch(self) -> list[bytes | DeadLetter]:
        """Acknowledge what a committed snapshot covers, then hand out the next entries."""
        if self._snapshot_taken:
            # Called again only once the snapshot's epoch is committed (input backpressure).
            self._snapshot_taken = False
            self._to_ack.extend(self._snapshotted)
            self._snapshotted = []
            self._committed |= self._snapshot_id is not None
        entries = self._read()
        if entries:
            self._last_data = self._clock()
            ids = [_id(entry_id) for entry_id, _ in entries]
            self._handed.extend(ids)
            self.last_id = ids[-1]
            return _items(entries, self._source)
        if self._idle_exit_due():
            self._to_ack.extend(self._snapshotted + self._handed)
            self._snapshotted, self._handed = [], []
            self._flush_acks()
            raise StopIteration
        return []

    def _idle_exit_due(self) -> bool:
        if self._idle_exit is None or self._clock() - self._last_data < self._idle_exit:
            return False
        # With no committed snapshot yet, acknowledging now could lose entries to a crash
        # before the final commit: wait for the next snapshot (the next epoch) instead.
        return self._committed or self.last_id is None

    def snapshot(self) -> str | None:
        """The id of the last entry handed out: a resumed partition continues after it."""
        self._snapshotted.extend(self._handed)
        self._handed = []
        self._snapshot_id = self.last_id
        self._snapshot_taken = True
        return self.last_id

    def close(self) -> None:
        """Close the connection (unacknowledged entries are dealt with by the next start)."""
        self._client.close()

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> list[_Entry]:
        for _ in range(_MAX_READS_PER_BATCH):
            if self._phase is _Phase.START:
                self._start()
                continue
            if self._phase is _Phase.CLAIM:
                entries = self._claim()
            elif self._phase is _Phase.REPLAY:
                entries = self._replay()
            else:
                return self._read_new()
            if entries:
                return entries
        return []

    def _start(self) -> None:
        if self._resume_id is None:
            ensure_group(self._client, self._key, self._group)
            self._phase = _Phase.CLAIM
            return
        snapshot = self._resume_id
        end = self._last_delivered()
        if end is None:
            log.warning(
                "consumer group %s on %s is missing: recreating it after entry %s",
                self._group,
                self._key,
                snapshot,
            )
            ensure_group(self._client, self._key, self._group, start_id=snapshot)
            end = snapshot
        elif _id_key(end) < _id_key(snapshot):
            # The group was moved back (or recreated): what precedes the snapshot is processed.
            log.warning(
                "consumer group %s on %s is behind the snapshot: moving it to %s",
                self._group,
                self._key,
                snapshot,
            )
            self._client.xgroup_setid(self._key, self._group, snapshot)
            end = snapshot
        acked = self._ack_pending_through(end)
        deleted = _id(self._client.xinfo_stream(self._key).get("max-deleted-entry-id", _ZERO_ID))
        if _id_key(deleted) > _id_key(snapshot):
            log.warning(
                "entries of %s after the snapshot (%s) were deleted or trimmed before they could"
                " be read again: their effect on the recovered state is lost",
                self._key,
                snapshot,
            )
        self._cursor, self._replay_end = snapshot, end
        replay = _id_key(end) > _id_key(snapshot)
        self._phase = _Phase.REPLAY if replay else _Phase.NEW
        log.info(
            "resuming %s after entry %s: re-reading up to %s; acknowledged %d pending entries",
            self._key,
            snapshot,
            end,
            acked,
        )

    def _last_delivered(self) -> str | None:
        """The group's last-delivered id; None when the group or the stream does not exist."""
        try:
            groups = self._client.xinfo_groups(self._key)
        except ResponseError:  # no such key
            return None
        for info in groups:
            if _id(info["name"]) == self._group:
                return _id(info["last-delivered-id"])
        return None

    def _ack_pending_through(self, end: str) -> int:
        """Acknowledge every pending entry of the group up to `end`, whoever holds it."""
        acked = 0
        while True:
            rows = self._client.xpending_range(
                self._key, self._group, min="-", max=end, count=_ACK_CHUNK
            )
            if not rows:
                return acked
            acked += int(
                self._client.xack(self._key, self._group, *[r["message_id"] for r in rows])
            )

    def _group_vanished(self) -> None:
        # Go on after the last entry handed out (a stream created anew has larger ids).
        self._phase = _Phase.NEW
        ensure_group(self._client, self._key, self._group, start_id=self.last_id or "0")

    def _claim(self) -> list[_Entry]:
        cursor = self._cursor
        reply = self._run(
            lambda p: p.xautoclaim(
                self._key, self._group, self.consumer, 0, start_id=cursor, count=self._count
            )
        )
        if reply is None:
            return []
        # Entries deleted from the stream are dropped from the pending list by Redis 7; older
        # servers return them as None.
        claimed = [(eid, fields) for eid, fields in reply[1] if eid is not None]
        self._cursor = _id(reply[0])
        if self._cursor == _ZERO_ID:
            self._phase = _Phase.NEW
        return claimed

    def _replay(self) -> list[_Entry]:
        low, high = "(" + self._cursor, self._replay_end
        entries = self._run(lambda p: p.xrange(self._key, min=low, max=high, count=self._count))
        entries = list(entries or [])
        if entries:
            self._cursor = _id(entries[-1][0])
        if len(entries) < self._count or self._cursor == self._replay_end:
            self._phase = _Phase.NEW
        return entries

    def _flush_acks(self) -> None:
        if self._to_ack:
            self._run(lambda p: None)


class ResumableRedisStreamSource(FixedPartitionedSource[bytes | DeadLetter, str | None]):
    """A Redis stream as one Bytewax partition (named after the key): for runs with recovery.

    Exactly one worker in the cluster reads the stream, as `settings.consumer` or
    `RESUMABLE_CONSUMER`, and the partition's snapshot is the id of the last entry it handed
    out, so a resumed run re-reads exactly what followed the restored snapshot (see
    `ResumableStreamPartition`). It must be the group's only reader: at a fresh start it takes
    over every pending entry of the group. The partition name is the stream key, so resuming a
    recovery directory with another key fails (Bytewax refuses unknown partitions).
    """

    def __init__(
        self,
        url: str,
        stream_key: str,
        settings: RedisSettings,
        batch_size: int | None = None,
    ) -> None:
        """Only remember where to read: the partition connects in `build_part`."""
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._url = url
        self._key = stream_key
        self._settings = settings
        self._count = min(batch_size or settings.read_count, settings.read_count)

    @property
    def consumer(self) -> str:
        """The consumer name: configured, or one that stays the same across restarts."""
        return self._settings.consumer or RESUMABLE_CONSUMER

    def list_parts(self) -> list[str]:
        """One partition, named after the stream key (every worker can reach it)."""
        return [self._key]

    def build_part(
        self, step_id: str, for_part: str, resume_state: str | None
    ) -> ResumableStreamPartition:
        """Connect the reader; `resume_state` is the id of the last entry handed out."""
        s = self._settings
        client = make_client(
            self._url,
            s,
            socket_timeout=max(s.socket_timeout_seconds, s.block_ms / 1000 + 1.0),
            client_name="sense-respond:source",
        )
        where = "from the start" if resume_state is None else f"after entry {resume_state}"
        log.info(
            "reading %s from %s as %s/%s, %s",
            for_part,
            redacted_url(self._url),
            s.input_group,
            self.consumer,
            where,
        )
        return ResumableStreamPartition(
            client,
            for_part,
            s.input_group,
            self.consumer,
            resume_id=resume_state,
            count=self._count,
            block_ms=s.block_ms,
            idle_exit_seconds=s.input_idle_exit_seconds,
        )


# -- replay: JSONL file -> stream ------------------------------------------------------------


def push_jsonl(
    client: redis.Redis,
    stream_key: str,
    lines: Iterable[bytes | str],
    rate: float | None = None,
    maxlen: int | None = None,
    *,
    chunk: int = 500,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """XADD each non-blank line as field `event` of `stream_key`; returns how many were added.

    Lines go out in pipelined chunks. With `rate` (events/s) the chunks shrink to about a tenth
    of a second's worth and are paced so the average rate stays at `rate`. `maxlen` trims the
    stream approximately (MAXLEN ~).
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 events/s")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    size = chunk if rate is None else max(1, min(chunk, int(rate / 10)))
    sent = 0
    start = time.monotonic()
    pipe = client.pipeline(transaction=False)
    queued = 0

    def flush() -> None:
        nonlocal queued, sent
        if queued:
            pipe.execute()
            sent += queued
            queued = 0
        if rate is not None:
            ahead = start + sent / rate - time.monotonic()
            if ahead > 0:
                sleep(ahead)

    for line in lines:
        data = line.encode() if isinstance(line, str) else line
        data = data.rstrip(b"\r\n")
        if not data.strip():
            continue
        if maxlen is None:
            pipe.xadd(stream_key, {EVENT_FIELD: data})
        else:
            pipe.xadd(stream_key, {EVENT_FIELD: data}, maxlen=maxlen, approximate=True)
        queued += 1
        if queued >= size:
            flush()
    if queued:
        pipe.execute()
        sent += queued
    return sent


# -- on-call: read the alerts stream -------------------------------------------------------------


class AlertReader:
    """Reads `{prefix}alerts` as a consumer group (for `sense-respond alerts tail`).

    Each on-call tool instance is a consumer of `group`; alerts are acknowledged by the caller
    once handled, so an alert shown to nobody stays pending. A new group starts at `start_id`
    ("$": only alerts from now on; "0": everything still in the stream). At the first read, this
    consumer's own pending alerts come first, then alerts other consumers left pending for more
    than `claim_idle_ms`, then new ones (blocking up to `block_ms`; keep it below the client's
    socket timeout).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        group: str | None = None,
        consumer: str | None = None,
        block_ms: int = 1000,
        *,
        start_id: str = "$",
        claim_idle_ms: int = 60_000,
    ) -> None:
        """Join (or create) `group` (default "oncall") on the alerts stream."""
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0")
        self._client = client
        self.key = alerts_key(prefix)
        self.group = group or "oncall"
        self.consumer = consumer or default_consumer()
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._pending_cursor: str | None = "0"
        self._claimed = False
        ensure_group(client, self.key, self.group, start_id=start_id)

    def read(self, count: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Up to `count` alerts as (entry id, parsed CloudEvent), oldest first; may be empty."""
        if self._pending_cursor is not None:
            entries = _entries(
                self._client.xreadgroup(
                    self.group, self.consumer, {self.key: self._pending_cursor}, count=count
                )
            )
            if entries:
                self._pending_cursor = _id(entries[-1][0])
                return self._parse(entries)
            self._pending_cursor = None
        if not self._claimed:
            self._claimed = True
            reply = self._client.xautoclaim(
                self.key, self.group, self.consumer, self._claim_idle_ms, count=count
            )
            claimed = [(eid, fields) for eid, fields in reply[1] if eid is not None]
            if claimed:
                return self._parse(claimed)
        entries = _entries(
            self._client.xreadgroup(
                self.group, self.consumer, {self.key: ">"}, count=count, block=self._block_ms
            )
        )
        return self._parse(entries)

    def _parse(self, entries: Sequence[_Entry]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        junk: list[str] = []
        for entry_id, fields in entries:
            eid = _id(entry_id)
            raw = fields.get(b"alert") if fields else None
            try:
                alert = orjson.loads(raw) if raw is not None else None
            except orjson.JSONDecodeError:
                alert = None
            if isinstance(alert, dict):
                out.append((eid, alert))
            else:
                # Nothing to show; acknowledged so it does not come back at every start.
                log.warning("skipping alerts entry %s: no JSON object in field 'alert'", eid)
                junk.append(eid)
        if junk:
            self.ack(junk)
        return out

    def ack(self, entry_ids: Iterable[str]) -> int:
        """Acknowledge handled alerts; returns how many were pending."""
        ids = list(entry_ids)
        if not ids:
            return 0
        return int(self._client.xack(self.key, self.group, *ids))
