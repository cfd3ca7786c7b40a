"""Bytewax sinks delivering lifecycle events, customer views and dead letters to Redis.

`AlertSink` writes `AlertRecord`s through the lifecycle delivery script
(`connectors.lifecycle_delivery`: effectively-once, silences, people's actions) and
`CustomerView`s as plain HSETs on `{prefix}customer:{customer_id}` (idempotent by nature,
expiring `view_ttl_seconds` after their last write; a `CustomerGone` deletes the hash).
`DeadLetterSink` appends `DeadLetter`s to `{prefix}dlq`, each id once
(`connectors.dead_letter_delivery`).

Each batch is one non-transactional pipeline (one round trip), run by `connectors.redis_retry`:
while Redis is away the batch is retried (and the flow waits, which is its back-pressure) for up to
`redis.outage_budget_seconds`; a non-transient error or a spent budget stops the run without
marking anything undelivered as delivered. The types of the fixed keys are checked at start.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config.runtime import RedisSettings
from connectors.dead_letter_delivery import DEAD_LETTER_SCRIPTS, queue_dead_letter
from connectors.incident_keys import incidents_index_key, open_incidents_key
from connectors.lifecycle_delivery import ALERT_SCRIPTS, DELIVERED, SUPPRESSED, queue_lifecycle
from connectors.redis_client import (
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
from sense_respond.metrics import ALERTS, observe_event_to_alert

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    """Counters of what a sink (or one batch) delivered."""

    alerts_new: int = 0
    alerts_duplicate: int = 0
    alerts_suppressed: int = 0
    """Events of incidents already resolved (by a person): recorded on the incident only."""
    alerts_silenced: int = 0
    """Delivered events of silenced customers (recorded, not pushed to teams)."""
    views_written: int = 0
    views_deleted: int = 0
    dead_letters: int = 0
    dead_letters_duplicate: int = 0
    batches: int = 0

    def add(self, other: DeliveryStats) -> None:
        """Add `other`'s counts to these."""
        self.alerts_new += other.alerts_new
        self.alerts_duplicate += other.alerts_duplicate
        self.alerts_suppressed += other.alerts_suppressed
        self.alerts_silenced += other.alerts_silenced
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
        check_key_types(
            self._retry,
            client,
            {
                self._stream: "stream",
                incidents_index_key(settings.prefix): "zset",
                open_incidents_key(settings.prefix): "set",
            },
        )
        load_scripts(self._retry, client, ALERT_SCRIPTS)

    def _queue_alert(self, pipe: Any, alert: AlertRecord) -> None:
        queue_lifecycle(pipe, alert, self._settings)

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
            self._client, lambda pipe: self._queue(pipe, ops), "alert delivery", ALERT_SCRIPTS
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
        written_ns = time.time_ns()
        for op, reply in zip(ops, replies, strict=True):
            if isinstance(op, AlertRecord):
                outcome, silenced = (int(x) for x in reply)
                if outcome == DELIVERED:
                    batch.alerts_new += 1
                    batch.alerts_silenced += silenced
                    if op.incident is not None and op.incident.status == "firing":
                        ALERTS.labels(op.incident.severity).inc()
                        observe_event_to_alert(op.read_ns, written_ns)
                elif outcome == SUPPRESSED:
                    batch.alerts_suppressed += 1
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
        for item in items:
            queue_dead_letter(pipe, item, self._settings)

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
