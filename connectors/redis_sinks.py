"""Bytewax sinks delivering alerts, customer views and dead letters to Redis.

Delivery is at-least-once from Bytewax (a recovered flow replays the items since its last
snapshot) and made effectively-once here: an alert is written by one Lua script guarded by its
delivered marker `{prefix}alert-id:{id}`, so a replayed alert id is counted as a suppressed
duplicate and has no effect, as long as the replay happens within `alert_id_ttl_seconds`. Views
are plain HSETs, idempotent by nature. A dead letter has a deterministic id (a hash of its source,
reason and raw input) remembered in `{prefix}dlq:ids`, so a replay appends it once.

Keys (`prefix` is `RedisSettings.prefix`):

* `{prefix}alerts` — stream of alerts, fields `alert` (CloudEvents JSON) and `id` (alert id),
  trimmed to about `alerts_maxlen`; the pub/sub channel of the same name carries the same JSON.
* `{prefix}customer:{customer_id}` — hash of the latest view, plus `last_alert` and
  `last_alert_id`; expires `view_ttl_seconds` after its last write.
* `{prefix}alert-id:{alert_id}` — delivered-alert marker, expires after `alert_id_ttl_seconds`.
* `{prefix}dlq` — stream of dead letters (`reason`, `raw`, `at`, `source`), ~`dlq_maxlen`.
* `{prefix}dlq:ids` — sorted set of the ids of the last ~`dlq_maxlen` dead letters (by time).

Each batch is one non-transactional pipeline (one round trip), run by `connectors.redis_retry`:
while Redis is away the batch is retried (and the flow waits, which is its back-pressure) for up to
`redis.outage_budget_seconds`; a non-transient error or a spent budget stops the run without
marking anything undelivered as delivered. The types of the fixed keys are checked at start.
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

from config.settings import RedisSettings
from connectors.redis_client import (
    alert_id_key,
    alerts_key,
    customer_key,
    dlq_ids_key,
    dlq_key,
    make_client,
    redacted_url,
)
from connectors.redis_retry import RedisRetry, check_key_types, load_scripts
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

# A dead letter is appended once per id: the ids of the last ~maxlen letters are a sorted set (by
# the entry's time), trimmed with the stream, so the memory of ids is as bounded as the stream.
# Key types are checked before any write and the id is recorded last: a failure writes nothing.
# KEYS: 1 dlq stream, 2 ids. ARGV: 1 id, 2 maxlen, 3.. field/value pairs.
DEAD_LETTER_SCRIPT = """
local kinds = {'stream', 'zset'}
for i = 1, 2 do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. found .. ', not a ' .. kinds[i])
  end
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
redis.call('ZADD', KEYS[2], tonumber(string.match(entry, '^(%d+)')), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return 1
"""
DEAD_LETTER_SCRIPT_SHA = hashlib.sha1(DEAD_LETTER_SCRIPT.encode()).hexdigest()

SCRIPTS = {"alert": ALERT_SCRIPT}
"""The alert sink's scripts by name (loaded at start and again after NOSCRIPT)."""
DEAD_LETTER_SCRIPTS = {"dead-letter": DEAD_LETTER_SCRIPT}


def dead_letter_id(letter: DeadLetter) -> str:
    """A dead letter's deterministic id: the same bad input from the same source (with its
    position, where the source names one) always gets the same id, so replays append it once."""
    digest = hashlib.sha256()
    for part in (letter.source.encode(), letter.reason.encode(), letter.raw):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


@dataclass
class DeliveryStats:
    """Counters of what a sink (or one batch) delivered."""

    alerts_new: int = 0
    alerts_duplicate: int = 0
    views_written: int = 0
    views_deleted: int = 0
    dead_letters: int = 0
    dead_letters_duplicate: int = 0
    batches: int = 0

    def add(self, other: DeliveryStats) -> None:
        """Add `other`'s counts to these."""
        self.alerts_new += other.alerts_new
        self.alerts_duplicate += other.alerts_duplicate
        self.views_written += other.views_written
        self.views_deleted += other.views_deleted
        self.dead_letters += other.dead_letters
        self.dead_letters_duplicate += other.dead_letters_duplicate
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
        self,
        client: redis.Redis,
        settings: RedisSettings,
        shared: _SharedStats | None = None,
        retry: RedisRetry | None = None,
    ) -> None:
        """Wrap `client` (owned: closed by `close`), check the stream's type, load the script."""
        self._client = client
        self._settings = settings
        self._stream = alerts_key(settings.prefix)
        self._shared = shared
        self._retry = retry or RedisRetry.from_settings(settings.outage_budget_seconds)
        self.stats = DeliveryStats()
        """Totals of this partition since it was built."""
        check_key_types(self._retry, client, {self._stream: "stream"})
        load_scripts(self._retry, client, SCRIPTS)

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

    def _queue(self, pipe: Any, ops: list[Delivery]) -> None:
        prefix, view_ttl = self._settings.prefix, self._settings.view_ttl_seconds
        for op in ops:
            if isinstance(op, AlertRecord):
                self._queue_alert(pipe, op)
            elif isinstance(op, CustomerGone):
                pipe.delete(customer_key(prefix, op.customer_id))
            else:
                key = customer_key(prefix, op.customer_id)
                pipe.hset(key, mapping=op.fields)
                pipe.expire(key, view_ttl)

    def _execute(self, ops: list[Delivery]) -> list[Any]:
        """Run `ops` in one pipeline, through Redis outages; one reply per op."""
        results = self._retry.pipeline(
            self._client, lambda pipe: self._queue(pipe, ops), "alert delivery", SCRIPTS
        )
        replies: list[Any] = []
        it = iter(results)
        for op in ops:
            if isinstance(op, AlertRecord | CustomerGone):
                replies.append(next(it))
            else:
                _hset, expire = next(it), next(it)
                replies.append(expire)
        return replies

    def deliver(self, items: Sequence[Delivery]) -> DeliveryStats:
        """Write one batch in one pipeline; returns what it delivered.

        Blocks while Redis is away (within the outage budget); raises `RedisFailure` when the
        batch cannot be delivered.
        """
        batch = DeliveryStats(batches=1)
        ops = _plan(items)
        if not ops:
            return batch
        replies = self._execute(ops)
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
        # No redis-py retries: connectors.redis_retry waits outages out, within their budget.
        return make_client(
            self._url,
            self._settings,
            client_name=_client_name(kind, step_id, worker_index),
            retries=0,
        )


class AlertSink(_RedisSink, DynamicSink[Delivery]):
    """Delivers `AlertRecord`s (idempotently) and `CustomerView`s; one client per worker."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> AlertSinkPartition:
        """Connect this worker's partition."""
        client = self._connect("alerts", step_id, worker_index)
        return AlertSinkPartition(client, self._settings, self._stats)


class DeadLetterSinkPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection appending dead letters to `{prefix}dlq`, each id once."""

    def __init__(
        self,
        client: redis.Redis,
        settings: RedisSettings,
        shared: _SharedStats | None = None,
        retry: RedisRetry | None = None,
    ) -> None:
        """Wrap `client` (owned: closed by `close`), check the key types, load the script."""
        self._client = client
        self._settings = settings
        self._stream = dlq_key(settings.prefix)
        self._ids = dlq_ids_key(settings.prefix)
        self._shared = shared
        self._retry = retry or RedisRetry.from_settings(settings.outage_budget_seconds)
        self.stats = DeliveryStats()
        check_key_types(self._retry, client, {self._stream: "stream", self._ids: "zset"})
        load_scripts(self._retry, client, DEAD_LETTER_SCRIPTS)

    def _queue(self, pipe: Any, items: list[DeadLetter]) -> None:
        maxlen = self._settings.dlq_maxlen
        for item in items:
            argv: list[str | bytes | int] = [dead_letter_id(item), maxlen]
            for name, value in item.fields().items():
                argv.extend((name, value))
            pipe.evalsha(DEAD_LETTER_SCRIPT_SHA, 2, self._stream, self._ids, *argv)

    def write_batch(self, items: list[DeadLetter]) -> None:
        """Append every new dead letter in one pipeline (blocking through Redis outages)."""
        if not items:
            return
        for item in items:
            if not isinstance(item, DeadLetter):
                raise TypeError(f"DeadLetterSink got a {type(item).__name__}, not a DeadLetter")
        replies = self._retry.pipeline(
            self._client,
            lambda pipe: self._queue(pipe, items),
            "dead-letter delivery",
            DEAD_LETTER_SCRIPTS,
        )
        added = sum(int(r) for r in replies)
        batch = DeliveryStats(dead_letters=added, dead_letters_duplicate=len(items) - added)
        batch.batches = 1
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
