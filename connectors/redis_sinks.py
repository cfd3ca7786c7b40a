"""Bytewax sinks delivering alerts, customer views and dead letters to Redis.

Delivery is at-least-once from Bytewax (a recovered flow replays the items since its last
snapshot) and made effectively-once for alerts here: an alert is written by one Lua script that
first does `SET {prefix}alert-id:{id} 1 NX EX ttl` and only when that succeeds appends it to the
stream, publishes it and updates the customer's hash. A replayed alert id is counted as a
suppressed duplicate and has no effect, as long as the replay happens within
`alert_id_ttl_seconds`. Views are plain HSETs, idempotent by nature. Dead letters are
at-least-once: a replayed or retried batch may append a dead letter twice.

Keys (`prefix` is `RedisSettings.prefix`):

* `{prefix}alerts` — stream of alerts, fields `alert` (CloudEvents JSON) and `id` (alert id),
  trimmed to about `alerts_maxlen`; the pub/sub channel of the same name carries the same JSON.
* `{prefix}customer:{customer_id}` — hash of the latest view, plus `last_alert` and
  `last_alert_id`; expires `view_ttl_seconds` after its last write.
* `{prefix}alert-id:{alert_id}` — delivered-alert marker, expires after `alert_id_ttl_seconds`.
* `{prefix}dlq` — stream of dead letters (`reason`, `raw`, `at`, `source`), ~`dlq_maxlen`.

Each batch is one non-transactional pipeline (one round trip). Connection errors are retried by
the client's retry policy; when a batch still fails the exception propagates and the flow
crashes (to be resumed by recovery): alerts are never silently dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis.exceptions import NoScriptError

from config.settings import RedisSettings
from connectors.redis_client import (
    alert_id_key,
    alerts_key,
    customer_key,
    dlq_key,
    make_client,
    redacted_url,
)
from operators.events import DeadLetter
from operators.records import AlertRecord, CustomerGone, CustomerView

log = logging.getLogger(__name__)

# KEYS: 1 alert-id marker, 2 alerts stream, 3 customer hash (declared for cluster routing; on a
# cluster the three keys would need one hash tag).
# ARGV: 1 alert id, 2 payload, 3 alert-id ttl, 4 stream maxlen, 5 view ttl, 6 channel,
#       7.. view field/value pairs.
ALERT_SCRIPT = """
local new = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3])
local fields = {}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
fields[#fields + 1] = 'last_alert_id'
fields[#fields + 1] = ARGV[1]
if new then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'alert', ARGV[2], 'id', ARGV[1])
  redis.call('PUBLISH', ARGV[6], ARGV[2])
  fields[#fields + 1] = 'last_alert'
  fields[#fields + 1] = ARGV[2]
end
-- The view is written even for a replayed alert: views replayed before it (after a recovery
-- resume) rolled the hash back, and this one is the customer's view at the alert's moment.
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[5])
if new then
  return 1
end
return 0
"""
ALERT_SCRIPT_SHA = hashlib.sha1(ALERT_SCRIPT.encode()).hexdigest()


@dataclass
class DeliveryStats:
    """Counters of what a sink (or one batch) delivered."""

    alerts_new: int = 0
    alerts_duplicate: int = 0
    views_written: int = 0
    views_deleted: int = 0
    dead_letters: int = 0
    batches: int = 0

    def add(self, other: DeliveryStats) -> None:
        """Add `other`'s counts to these."""
        self.alerts_new += other.alerts_new
        self.alerts_duplicate += other.alerts_duplicate
        self.views_written += other.views_written
        self.views_deleted += other.views_deleted
        self.dead_letters += other.dead_letters
        self.batches += other.batches


class _SharedStats:
    """Totals over all partitions of one sink in this process (workers are threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = DeliveryStats()

    def add(self, batch: DeliveryStats) -> None:
        with self._lock:
            self._totals.add(batch)

    def snapshot(self) -> DeliveryStats:
        with self._lock:
            copy = DeliveryStats()
            copy.add(self._totals)
            return copy


def _client_name(kind: str, step_id: str, worker_index: int) -> str:
    # CLIENT SETNAME refuses spaces and newlines.
    return re.sub(r"[^\w.:-]", "_", f"sense-respond:{kind}:{step_id}:{worker_index}")


Delivery = AlertRecord | CustomerView | CustomerGone


def _plan(items: Sequence[Delivery]) -> list[Delivery]:
    """The writes of a batch in order, consecutive views of a customer merged into one.

    Merging the field dicts of views with no alert of that customer in between gives exactly the
    hash that applying the HSETs one by one would, so "the last view wins" field by field.
    """
    ops: list[Delivery] = []
    pending: dict[str, dict[str, bytes]] = {}
    for item in items:
        if isinstance(item, CustomerGone):
            pending.pop(item.customer_id, None)  # views before the deletion are moot
            ops.append(item)
        elif isinstance(item, AlertRecord):
            fields = pending.pop(item.customer_id, None)
            if fields:
                ops.append(CustomerView(item.customer_id, fields))
            ops.append(item)
        elif isinstance(item, CustomerView):
            pending.setdefault(item.customer_id, {}).update(item.fields)
        else:
            raise TypeError(f"AlertSink cannot deliver a {type(item).__name__}")
    ops.extend(CustomerView(cid, fields) for cid, fields in pending.items() if fields)
    return ops


class AlertSinkPartition(StatelessSinkPartition[Delivery]):
    """One worker's connection delivering alerts and views (see the module docstring)."""

    def __init__(
        self, client: redis.Redis, settings: RedisSettings, shared: _SharedStats | None = None
    ) -> None:
        """Wrap `client` (owned: closed by `close`) and register the alert script."""
        self._client = client
        self._settings = settings
        self._stream = alerts_key(settings.prefix)
        self._shared = shared
        self.stats = DeliveryStats()
        """Totals of this partition since it was built."""
        self._load_script()

    def _load_script(self) -> None:
        sha = self._client.script_load(ALERT_SCRIPT)
        sha = sha.decode() if isinstance(sha, bytes) else sha
        if sha != ALERT_SCRIPT_SHA:
            raise RuntimeError(f"SCRIPT LOAD returned {sha}, expected {ALERT_SCRIPT_SHA}")

    def _queue_alert(self, pipe: Any, alert: AlertRecord) -> None:
        s = self._settings
        argv: list[str | bytes | int] = [
            alert.alert_id,
            alert.payload,
            s.alert_id_ttl_seconds,
            s.alerts_maxlen,
            s.view_ttl_seconds,
            self._stream,
        ]
        for name, value in alert.view.fields.items():
            argv.extend((name, value))
        pipe.evalsha(
            ALERT_SCRIPT_SHA,
            3,
            alert_id_key(s.prefix, alert.alert_id),
            self._stream,
            customer_key(s.prefix, alert.customer_id),
            *argv,
        )

    def _execute(self, ops: list[Delivery]) -> list[Any]:
        """Run `ops` in one pipeline; one reply per op (an alert's 1/0 or its error)."""
        prefix, view_ttl = self._settings.prefix, self._settings.view_ttl_seconds
        pipe = self._client.pipeline(transaction=False)
        for op in ops:
            if isinstance(op, AlertRecord):
                self._queue_alert(pipe, op)
            elif isinstance(op, CustomerGone):
                pipe.delete(customer_key(prefix, op.customer_id))
            else:
                key = customer_key(prefix, op.customer_id)
                pipe.hset(key, mapping=op.fields)
                pipe.expire(key, view_ttl)
        results = pipe.execute(raise_on_error=False)
        replies: list[Any] = []
        it = iter(results)
        for op in ops:
            if isinstance(op, AlertRecord | CustomerGone):
                replies.append(next(it))
            else:
                hset, expire = next(it), next(it)
                replies.append(hset if isinstance(hset, Exception) else expire)
        return replies

    def deliver(self, items: Sequence[Delivery]) -> DeliveryStats:
        """Write one batch in one pipeline; returns what it delivered. Raises if it failed."""
        batch = DeliveryStats(batches=1)
        ops = _plan(items)
        if not ops:
            return batch
        replies = self._execute(ops)
        if any(isinstance(r, NoScriptError) for r in replies):
            # The script cache was flushed (SCRIPT FLUSH, restart, failover): load the script
            # again and replay the whole batch in order, so a view written after an alert still
            # ends up last. Alerts that did go through are no-ops the second time (their id is
            # set); their first reply is the one that counts.
            log.warning("alert script missing on the server (NOSCRIPT); reloading it")
            self._load_script()
            again = self._execute(ops)
            replies = [
                b if isinstance(a, NoScriptError) else a
                for a, b in zip(replies, again, strict=True)
            ]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        for op, reply in zip(ops, replies, strict=True):
            if isinstance(op, AlertRecord):
                if int(reply) == 1:
                    batch.alerts_new += 1
                else:
                    batch.alerts_duplicate += 1
            elif isinstance(op, CustomerGone):
                batch.views_deleted += 1
            else:
                batch.views_written += 1
        return batch

    def write_batch(self, items: list[Delivery]) -> None:
        """Bytewax entry point: deliver the batch and count it."""
        batch = self.deliver(items)
        self.stats.add(batch)
        if self._shared is not None:
            self._shared.add(batch)
        if batch.alerts_duplicate:
            log.info("suppressed %d duplicate alert(s) (replay)", batch.alerts_duplicate)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class _RedisSink:
    """What both sinks share: where to write, and totals over this process's partitions."""

    def __init__(self, url: str, settings: RedisSettings) -> None:
        """Only remember where to write: each worker connects in `build`."""
        self._url = url
        self._settings = settings
        self._stats = _SharedStats()

    @property
    def stats(self) -> DeliveryStats:
        """Totals over this process's partitions (e.g. for the CLI summary)."""
        return self._stats.snapshot()

    def _connect(self, kind: str, step_id: str, worker_index: int) -> redis.Redis:
        log.debug(
            "%s sink %s worker %d -> %s", kind, step_id, worker_index, redacted_url(self._url)
        )
        return make_client(
            self._url, self._settings, client_name=_client_name(kind, step_id, worker_index)
        )


class AlertSink(_RedisSink, DynamicSink[Delivery]):
    """Delivers `AlertRecord`s (idempotently) and `CustomerView`s; one client per worker."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> AlertSinkPartition:
        """Connect this worker's partition."""
        client = self._connect("alerts", step_id, worker_index)
        return AlertSinkPartition(client, self._settings, self._stats)


class DeadLetterSinkPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection appending dead letters to `{prefix}dlq`."""

    def __init__(
        self, client: redis.Redis, settings: RedisSettings, shared: _SharedStats | None = None
    ) -> None:
        """Wrap `client` (owned: closed by `close`)."""
        self._client = client
        self._settings = settings
        self._stream = dlq_key(settings.prefix)
        self._shared = shared
        self.stats = DeliveryStats()

    def write_batch(self, items: list[DeadLetter]) -> None:
        """XADD every dead letter in one pipeline."""
        if not items:
            return
        pipe = self._client.pipeline(transaction=False)
        for item in items:
            if not isinstance(item, DeadLetter):
                raise TypeError(f"DeadLetterSink got a {type(item).__name__}, not a DeadLetter")
            pipe.xadd(
                self._stream,
                item.fields(),  # type: ignore[arg-type]
                maxlen=self._settings.dlq_maxlen,
                approximate=True,
            )
        pipe.execute()
        batch = DeliveryStats(dead_letters=len(items), batches=1)
        self.stats.add(batch)
        if self._shared is not None:
            self._shared.add(batch)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class DeadLetterSink(_RedisSink, DynamicSink[DeadLetter]):
    """Appends `DeadLetter`s to the stream `{prefix}dlq`; one client per worker."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> DeadLetterSinkPartition:
        """Connect this worker's partition."""
        client = self._connect("dlq", step_id, worker_index)
        return DeadLetterSinkPartition(client, self._settings, self._stats)
