"""The notifier process: reads `{prefix}alerts` through a consumer group and feeds the workers.

Delivery (at-least-once per destination, duplicates suppressed):
1. an entry is read (XREADGROUP, or XAUTOCLAIM from a consumer idle for `claim_idle_seconds`);
2. destinations with a delivered marker for its event id are already done (a redelivery);
3. each remaining destination's worker sends it and writes the marker after the 2xx (or the
   dead letter and a "dead" marker, atomically);
4. the entry is XACKed once every destination is done.
A kill -9 between 3's send and its marker repeats that one request (same webhook-id/dedup_key);
anywhere else, the restart finds the marker or the unacknowledged entry and loses nothing.

Order per incident, across processes: the group's pending list (XPENDING) holds every entry that
was delivered to some consumer and is not yet done for all destinations, and it is updated
atomically by XREADGROUP. So after reading entry N, every earlier entry of N's incident that is
not done is in that list. Before a worker may send N, the service looks up the pending entries
held by other consumers (live or dead), and for N's incident the earliest one not yet done for
that destination (no marker) holds N back. Held back events go once the other process delivers
or dead-letters its event, or, if it died, once its entry is reclaimed and delivered here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisError

from config.settings import Settings
from connectors.notify import metrics
from connectors.notify.events import InvalidEvent, LifecycleEvent, parse_entry, takes
from connectors.notify.sender import redacted_url
from connectors.notify.store import NotifyStore, entry_order, notify_dlq_key
from connectors.notify.worker import DestinationWorker, Job

log = logging.getLogger(__name__)

BLOCK_MS = 1_000
REDIS_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
CONSUMER_FORGET_SECONDS = 3_600


def default_consumer() -> str:
    """Unique per process: host, pid and a random tail (pids repeat across containers)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class _Held:
    event: LifecycleEvent
    remaining: set[str] = field(default_factory=set)


class Notifier:
    """One notifier process (a consumer of the group); `run()` until `stop()` or a signal."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.monotonic,
        block_ms: int = BLOCK_MS,
    ) -> None:
        notify = settings.notify
        if not notify.destinations:
            raise ValueError("no [[notify.destinations]] configured: nothing to notify")
        self.settings = settings
        self.notify = notify
        self.consumer = notify.consumer or default_consumer()
        self.store = NotifyStore(
            client,
            settings.redis.prefix,
            notify.group,
            self.consumer,
            notify.delivered_ttl_seconds,
            settings.redis.dlq_maxlen,
        )
        self._clock = clock
        self._block_ms = block_ms
        self._results: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.workers = {
            d.name: DestinationWorker(d, notify, self.store, self._on_done, clock=clock)
            for d in notify.destinations
        }
        self._held: dict[str, _Held] = {}
        self._to_ack: list[str] = []
        self._foreign: dict[str, LifecycleEvent | None] = {}
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped; exits 0 after a clean shutdown (SIGTERM/SIGINT included)."""
        restore = self._install_signal_handlers()
        try:
            created = self._with_retries(lambda: self.store.ensure_group(self.notify.start_from))
            if created is None:
                return 0
            where = "oldest kept entry" if self.notify.start_from == "oldest" else "new entries"
            log.info(
                "notifier %s: group %r on %s (%s); destinations: %s",
                self.consumer,
                self.notify.group,
                self.store.stream,
                f"created at the {where}" if created else "existing",
                ", ".join(
                    f"{d.name} ({d.type} {redacted_url(d.url.get_secret_value())})"
                    for d in self.notify.destinations
                ),
            )
            waiting = self._with_retries(self.store.dead_letter_count)
            if waiting:
                # Pages nobody got: say so where the operator who just restarted us looks.
                log.warning(
                    "notifier: %d dead letters wait in %s: `sense-respond notify redrive"
                    " --dry-run` shows what sending them again would do",
                    waiting,
                    notify_dlq_key(self.store.prefix),
                )
            for worker in self.workers.values():
                worker.start()
            if self.notify.consumer:
                # A stable consumer name picks up its own unfinished entries at once.
                self._with_retries(lambda: self._take(self.store.own_pending()))
            self._loop()
        finally:
            self._shutdown()
            restore()
        return 0

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, _frame: Any) -> None:
            log.info("notifier: %s, finishing the requests in flight", signal.Signals(signum).name)
            self.stop()

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        """`call()` retried through Redis trouble until it works; None if stopped first."""
        attempt = 0
        while not self._stop.is_set():
            try:
                return call()
            except RedisError as exc:
                pause = REDIS_BACKOFF_SECONDS[min(attempt, len(REDIS_BACKOFF_SECONDS) - 1)]
                log.warning("notifier: Redis error (%s); retrying in %.1fs", exc, pause)
                attempt += 1
                self._stop.wait(pause)
        return None

    def _loop(self) -> None:
        idle = self.notify.claim_idle_seconds
        last_heartbeat = last_claim = self._clock()
        last_claim -= idle  # reclaim a dead consumer's entries right at the start
        attempt = 0
        while not self._stop.is_set():
            try:
                self._drain_results()
                now = self._clock()
                if now - last_heartbeat >= idle / 3:
                    self._heartbeat()
                    last_heartbeat = now
                room = self.notify.max_in_flight - len(self._held)
                claimed: list[tuple[str, Any]] = []
                if now - last_claim >= idle / 2 and room > 0:
                    claimed = self._claim(room)
                    last_claim = now
                    self._take(claimed)  # at once: the read below may block
                room = self.notify.max_in_flight - len(self._held)
                entries: list[tuple[str, Any]] = []
                if room > 0:
                    count = min(room, self.notify.read_count)
                    entries, trimmed = self.store.read_new(count, 1 if claimed else self._block_ms)
                    if trimmed:
                        self._report_trimmed(trimmed)
                else:
                    self._wait_for_results()
                self._take(entries)
                if self._held and not entries:
                    self._refresh_blockers()
                self._drain_results()
                metrics.IN_FLIGHT.set(len(self._held))
                attempt = 0
            except RedisError as exc:
                if "NOGROUP" in str(exc):
                    # The stream or the group was deleted under us: start over as configured.
                    log.warning("notifier: group %r is gone; creating it again", self.notify.group)
                    self._held.clear()
                    for worker in self.workers.values():
                        worker.forget(worker.entry_ids())
                    with contextlib.suppress(RedisError):
                        self.store.ensure_group(self.notify.start_from)
                pause = REDIS_BACKOFF_SECONDS[min(attempt, len(REDIS_BACKOFF_SECONDS) - 1)]
                log.warning("notifier: Redis error (%s); retrying in %.1fs", exc, pause)
                attempt += 1
                self._stop.wait(pause)

    def _shutdown(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        grace = self.notify.timeout_seconds + 5
        for worker in self.workers.values():
            if not worker.join(grace):
                log.warning("notifier: %s did not finish its request in time", worker.name)
        try:
            self._drain_results()
        except RedisError as exc:
            log.warning("notifier: final acks failed (%s); the entries are redelivered", exc)
        left = len(self._held)
        log.info(
            "notifier %s stopped; %d entr%s left pending for the next notifier",
            self.consumer,
            left,
            "y" if left == 1 else "ies",
        )

    # -- entries in --------------------------------------------------------------------------

    def _take(self, entries: list[tuple[str, Any]]) -> None:
        """Route new (or reclaimed) entries to the workers of the destinations that take them."""
        fresh: list[tuple[str, LifecycleEvent, list[str]]] = []
        acks: list[str] = []
        for entry_id, fields in entries:
            if entry_id in self._held:
                continue
            if not fields:
                acks.append(entry_id)  # trimmed from the stream: nothing left to deliver
                continue
            try:
                event = parse_entry(fields, self.notify.default_team)
            except InvalidEvent as exc:
                self._dead_letter_entry(entry_id, fields, str(exc))
                continue
            names = [d.name for d in self.notify.destinations if takes(d, event)]
            fresh.append((entry_id, event, names))
        done = self.store.done(
            (name, event.event_id) for _, event, names in fresh for name in names
        )
        jobs: dict[str, list[Job]] = {}
        now = self._clock()
        for entry_id, event, names in fresh:
            remaining = {n for n in names if (n, event.event_id) not in done}
            if not remaining:
                acks.append(entry_id)
                continue
            self._held[entry_id] = _Held(event, remaining)
            for name in remaining:
                jobs.setdefault(name, []).append(
                    Job(entry_id, entry_order(entry_id), event, read_at=now)
                )
        try:
            self.store.ack(acks)
            if jobs:
                # The ordering view must be at least as new as the entries: taken after the
                # read, with them held (they are this process's, not another's).
                self._refresh_blockers()
        except BaseException:
            # Not offered to any worker: held, they would be heartbeated (kept from idling) and
            # skipped for ever, a page that never goes out. Let go, they idle and are claimed
            # again (`_claim`), by this notifier or another.
            for entry_id, _, _ in fresh:
                self._held.pop(entry_id, None)
            raise
        for name, batch in jobs.items():
            self.workers[name].offer(batch)

    def _report_trimmed(self, trimmed: int) -> None:
        """Alerts trimmed from the stream before any notifier read them: nobody was paged for
        them, and nothing but this line says so (their content is gone)."""
        log.error(
            "notifier: alerts trimmed from %s before any notifier read them"
            " (redis.alerts_maxlen): %s; nobody was paged for those",
            self.store.stream,
            "how many, Redis cannot say" if trimmed < 0 else f"{trimmed} lost",
        )
        metrics.TRIMMED_UNREAD.inc(max(trimmed, 1))

    def _dead_letter_entry(self, entry_id: str, fields: dict[bytes, bytes], reason: str) -> None:
        raw_id = fields.get(b"id", b"")
        self.store.dead_letter(
            "*",
            raw_id.decode("utf-8", "replace")[:255],
            fields.get(b"alert", b""),
            "invalid",
            reason,
            ack_entry=entry_id,
        )
        metrics.DEAD_LETTERS.labels("*").inc()
        log.error(
            "notifier: entry %s is not a lifecycle event (%s): dead-lettered", entry_id, reason
        )

    def _claim(self, room: int) -> list[tuple[str, Any]]:
        idle_ms = int(self.notify.claim_idle_seconds * 1000)
        claimed, trimmed = self.store.autoclaim(idle_ms, room)
        if claimed:
            log.warning(
                "notifier %s: took over %d entr%s from a consumer idle for %gs or more",
                self.consumer,
                len(claimed),
                "y" if len(claimed) == 1 else "ies",
                self.notify.claim_idle_seconds,
            )
        if trimmed:
            log.error(
                "notifier: %d pending entr%s trimmed from %s before delivery (alerts_maxlen)",
                len(trimmed),
                "y was" if len(trimmed) == 1 else "ies were",
                self.store.stream,
            )
        forget_ms = int(max(CONSUMER_FORGET_SECONDS, 10 * self.notify.claim_idle_seconds) * 1000)
        self.store.forget_idle_consumers(forget_ms)
        return claimed

    def _heartbeat(self) -> None:
        if not self._held:
            return
        ids = list(self._held)
        mine = self.store.heartbeat(ids)
        lost = [entry_id for entry_id in ids if entry_id not in mine]
        if lost:
            log.warning(
                "notifier %s: %d entries were taken over by another", self.consumer, len(lost)
            )
            for entry_id in lost:
                self._held.pop(entry_id, None)
            for worker in self.workers.values():
                worker.forget(lost)

    # -- order across processes --------------------------------------------------------------

    def _refresh_blockers(self) -> None:
        """Tell each worker, per incident it holds, the earliest entry held elsewhere that is
        not done for it (see the module docstring)."""
        total, others = self.store.pending_counts()
        if others == 0 and total <= len(self._held):
            # The common case (one process, or the others caught up): every pending entry is
            # one this process holds, so there is nothing elsewhere to wait for.
            foreign: list[str] = []
        else:
            foreign = [p.entry_id for p in self.store.pending() if p.entry_id not in self._held]
        incidents = {held.event.incident_id for held in self._held.values()}
        missing = [entry_id for entry_id in foreign if entry_id not in self._foreign]
        fetched = self.store.fetch(missing)
        for entry_id in missing:
            fields = fetched.get(entry_id)
            try:
                event = parse_entry(fields, self.notify.default_team) if fields else None
            except InvalidEvent:
                event = None
            self._foreign[entry_id] = event
        alive = set(foreign)
        self._foreign = {k: v for k, v in self._foreign.items() if k in alive}
        candidates: list[tuple[str, str, str, str]] = []
        for entry_id in foreign:
            event = self._foreign.get(entry_id)
            if event is None or event.incident_id not in incidents:
                continue
            for dest in self.notify.destinations:
                if takes(dest, event):
                    candidates.append((dest.name, event.event_id, entry_id, event.incident_id))
        done = self.store.done((name, event_id) for name, event_id, _, _ in candidates)
        blockers: dict[str, dict[str, tuple[int, int]]] = {name: {} for name in self.workers}
        for name, event_id, entry_id, incident in candidates:
            if (name, event_id) in done:
                continue
            order = entry_order(entry_id)
            current = blockers[name].get(incident)
            if current is None or order < current:
                blockers[name][incident] = order
        for name, worker in self.workers.items():
            worker.set_blockers(blockers[name])

    # -- results out -------------------------------------------------------------------------

    def _on_done(self, entry_id: str, destination: str) -> None:
        self._results.put((entry_id, destination))

    def _wait_for_results(self) -> None:
        try:
            item = self._results.get(timeout=self._block_ms / 1000)
        except queue.Empty:
            return
        self._results.put(item)

    def _drain_results(self) -> None:
        while True:
            try:
                entry_id, destination = self._results.get_nowait()
            except queue.Empty:
                break
            held = self._held.get(entry_id)
            if held is None:
                continue
            held.remaining.discard(destination)
            if not held.remaining:
                del self._held[entry_id]
                self._to_ack.append(entry_id)
        if self._to_ack:
            self.store.ack(self._to_ack)
            self._to_ack = []


def make_notifier_client(settings: Settings) -> redis.Redis:
    """The notifier's Redis client (socket timeout above the XREADGROUP block)."""
    from connectors.redis_client import make_client

    assert settings.redis.url is not None
    return make_client(
        settings.redis.url.get_secret_value(),
        settings.redis,
        socket_timeout=settings.redis.socket_timeout_seconds + BLOCK_MS / 1000,
        client_name="sense-respond-notify",
    )
