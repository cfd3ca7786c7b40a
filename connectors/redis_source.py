"""Read events from a Redis stream through a consumer group, at-least-once for real.

`RedisStreamSource` is a Bytewax `FixedPartitionedSource` with one partition per worker of the
run (`partitions`, the CLI passes workers-per-process x processes; Bytewax gives each worker one
of them). Each partition is its own consumer of the group `settings.input_group`, so Redis
hands every entry to exactly one of them, in any number of processes.

When an entry is acknowledged (the mechanism)
---------------------------------------------
An entry is XACKed only once everything it caused is durable downstream. The partition learns
that from Bytewax's epochs, the same with and without recovery and for any worker count:

* Bytewax calls `snapshot()` on a source partition exactly when it closes one of its epochs;
  every entry handed out before that call belongs to that epoch or an earlier one (sealed).
* Bytewax calls `next_batch()` on a partition only while its "probe" has caught up with the
  partition's current epoch (`!probe.less_than(epoch)` in Bytewax 0.21.1 `src/inputs.rs`). The
  probe is global to the cluster and sits on every sink's clock when recovery is off, and
  behind the recovery commit when recovery is on (`src/worker.rs`). So the first `next_batch`
  after `snapshot()` means: every sink of every worker has written everything of the sealed
  epochs (a sink's clock passes an epoch only after `write_batch` returned), or, with
  recovery, the epoch's snapshot is committed.
* That call acknowledges the sealed entries, pipelined with its read (one round trip).

With recovery, an entry acknowledged after the commit is in the committed state either way, so
the acknowledgement adds no risk of its own. (Bytewax 0.21 leaves dynamic sinks out of the commit
frontier, see `write_recovery` in `src/recovery.rs`: a worker blocked in a sink holds its own
frontier back, and a failing sink aborts the run before its epoch commits, but a sink is not
formally ordered before the commit of another worker. Making the alert sink a stateful sink
would close that; it is outside this module.)

The partition's snapshot is `{"v": 1, "consumer", "done", "last_seen"}`: its consumer name and
the ids handed out up to the snapshot and not yet known acknowledged. A resumed partition keeps
the consumer name of its snapshot (the PEL that holds its unfinished entries), acknowledges
`done` (their effect is in the restored state) and hands out again every other entry of its
PEL (read after the snapshot, so not in the restored state), then reads new ones. Every entry
therefore affects the recovered state exactly once.

A bounded run (`redis.input_idle_exit_seconds`) ends its partitions only once everything they
handed out is acknowledged. When a partition ends on SIGTERM/SIGINT (through `shutdown`), the last
entries are sealed by the final snapshot, but Bytewax never calls `next_batch` again. They are
acknowledged by `acknowledged_on_success()` around the run, once the dataflow has returned
without error (all sinks done and, with recovery, the final snapshot committed); then the
consumer is removed from the group (XGROUP DELCONSUMER) if nothing is pending on it. After a
failed run nothing more is acknowledged: the entries stay pending and are handed out again.

Pending entries, lost replies, poison entries
----------------------------------------------
* Own PEL first: at start, and again after any lost round trip, the partition lists its own
  pending entries (XPENDING) and re-claims those it has not handed out in this run (XCLAIM), so
  a reply lost after the server ran XREADGROUP (connection reset) cannot skip entries. The
  source's client never retries by itself (`retries=0`): a retried XREADGROUP would hide the lost
  reply. The partition retries with capped backoff up to `redis.outage_budget_seconds`.
* Dead consumers: pending entries of a consumer of this host whose process is gone (name
  `host-pid-token`, pid not running) are claimed at once by a partition that starts fresh; any
  other consumer's entries once the consumer has been idle `claim_idle_ms` (checked every
  `claim_every_seconds`, first after that delay in a resumed partition, so that every resumed
  partition has taken its own entries back before anyone looks).
* Delivery counts come from XPENDING. An entry already delivered `redis.max_deliveries` times
  goes to the dead-letter stream (and is acknowledged like any entry, after the DLQ write). A
  re-delivered entry is handed out in smaller and smaller groups, one group per epoch (from all
  entries at the second delivery down to alone at the last one), so a poison entry that crashes
  the flow is isolated before it is dead-lettered and the innocent entries that were in flight
  with it complete instead of reaching the limit with it.
* A vanished group (XGROUP DESTROY, stream deleted) is recreated from the last id this
  partition read (or its snapshot's), not from 0; a group that does not exist at first start is
  created from 0 (the stream's history is the input).

XREADGROUP blocks at most `block_ms` (never 0), so epochs keep closing on an idle stream.
Metrics: `sense_respond_events_total{input}` counts entries handed out and
`sense_respond_source_lag{input}` is the group's lag (XINFO GROUPS `lag`, Redis >= 7).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bytewax.inputs import FixedPartitionedSource

from config.runtime import RedisSettings
from connectors import shutdown
from connectors.redis_client import make_client, redacted_url
from connectors.redis_streams import (
    EVENT_FIELD,
    AlertReader,
    default_consumer,
    ensure_group,
    push_jsonl,
)
from connectors.stream_consumer import CLAIM_EVERY_SECONDS, isolation_size
from connectors.stream_partition import STATE_VERSION, StreamPartition, acknowledged_on_success
from operators.events import DeadLetter

__all__ = [
    "CLAIM_EVERY_SECONDS",
    "EVENT_FIELD",
    "AlertReader",
    "RedisStreamSource",
    "StreamPartition",
    "acknowledged_on_success",
    "default_consumer",
    "ensure_group",
    "isolation_size",
    "push_jsonl",
]

log = logging.getLogger(__name__)


# -- the source ----------------------------------------------------------------------------------


class RedisStreamSource(FixedPartitionedSource[bytes | DeadLetter, dict[str, Any] | None]):
    """A Redis stream read through `settings.input_group` by `partitions` consumers.

    Items are the raw `event` field bytes (parsed by `operators.events.parse_event`), or a
    `DeadLetter` for entries without that field and for poison entries. Entries per read:
    `min(batch_size, settings.read_count)`. Partition `i` is named `{stream_key}#{i}`; its
    consumer is `settings.consumer` (suffixed `-{i}` when there are several partitions) or
    `{hostname}-{pid}-{random}[-{i}]`, and a resumed partition keeps the name of its snapshot.
    """

    def __init__(
        self,
        url: str,
        stream_key: str,
        settings: RedisSettings,
        batch_size: int | None = None,
        *,
        partitions: int = 1,
        claim_every_seconds: float = CLAIM_EVERY_SECONDS,
        input_name: str | None = None,
        stop: Callable[[], bool] = shutdown.requested,
    ) -> None:
        """Only remember where to read: each partition connects in `build_part`."""
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._url = url
        self._key = stream_key
        self._settings = settings
        self._count = min(batch_size or settings.read_count, settings.read_count)
        self.partitions = partitions
        self._claim_every = claim_every_seconds
        self._input = input_name or f"redis:{stream_key}"
        self._stop = stop

    def list_parts(self) -> list[str]:
        """`{stream_key}#{i}` for every partition (any worker can read any of them)."""
        return [f"{self._key}#{i}" for i in range(self.partitions)]

    def consumer_name(self, index: int) -> str:
        """The consumer name of a fresh partition (see the class docstring)."""
        configured = self._settings.consumer
        if configured:
            return configured if self.partitions == 1 else f"{configured}-{index}"
        return default_consumer(index if self.partitions > 1 else None)

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, Any] | None
    ) -> StreamPartition:
        """Connect one consumer; `resume_state` is its snapshot."""
        key, sep, index = for_part.rpartition("#")
        if not sep or key != self._key or not index.isdigit():
            raise ValueError(f"partition {for_part!r} is not one of {self._key}")
        if resume_state is not None and (
            not isinstance(resume_state, dict) or resume_state.get("v") != STATE_VERSION
        ):
            raise ValueError(
                f"the recovery state of partition {for_part!r} is not a Redis stream position"
                " of this version; use a new --recovery-dir"
            )
        s = self._settings
        consumer = resume_state["consumer"] if resume_state else self.consumer_name(int(index))
        # No client-side retries (a retried XREADGROUP would hide a lost reply), and a socket
        # that outlives a blocked XREADGROUP.
        client = make_client(
            self._url,
            s.model_copy(update={"retries": 0}),
            socket_timeout=max(s.socket_timeout_seconds, s.block_ms / 1000 + 1.0),
            client_name=f"sense-respond:source:{index}",
        )
        log.info(
            "reading %s from %s as %s/%s%s",
            self._key,
            redacted_url(self._url),
            s.input_group,
            consumer,
            " (resumed)" if resume_state else "",
        )
        return StreamPartition(
            client,
            self._key,
            s.input_group,
            consumer,
            resume=resume_state,
            count=self._count,
            block_ms=s.block_ms,
            claim_idle_ms=s.claim_idle_ms,
            claim_every_seconds=self._claim_every,
            max_deliveries=s.max_deliveries,
            outage_budget_seconds=s.outage_budget_seconds,
            idle_exit_seconds=s.input_idle_exit_seconds,
            input_name=self._input,
            stop=self._stop,
        )
