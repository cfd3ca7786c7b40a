"""`sense-respond notify redrive`: send the notifier's dead letters again, once their cause is
fixed (a routing key corrected, a receiver back after an outage longer than the retry budget).

What happens to each letter is planned in `connectors.notify.redrive_plan` (per destination and
incident, never out of order, nobody paged for a resolved incident); this module gathers the
facts from Redis, then carries the plan out:

* one redrive per destination at a time: a lease `{prefix}notify:redrive:{destination}` (SET NX
  with a token, renewed before each request, released at the end; it expires by itself if the
  command dies), so two operators cannot send the same letter twice;
* each send goes through the destination's own `Sender` (same payloads, timeouts and secrets
  handling as the notifier), its rate limit, and the notifier's retry policy (`max_attempts`,
  `max_retry_seconds`, backoff, `Retry-After`);
* a delivered letter's marker becomes "sent" and the letter leaves `{prefix}notify:dlq` in one
  `MULTI`: a crash in between cannot send it again on the next redrive, nor lose it;
* a letter that fails again stays where it is (with its original reason), and so do the later
  letters of its incident for that destination;
* letters that leave unsent (received since, superseded, resolved) are deleted from the dead
  letters; `dry_run` only plans.

A live notifier never sends a dead-lettered event (its marker says done), so running this beside
one repeats nothing. One race remains: a newer event of the same incident that the live notifier
sends while its older letter is being redriven may reach the destination first.
"""

from __future__ import annotations

import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from config.settings import Settings
from connectors.incident_keys import incident_key
from connectors.notify.events import InvalidEvent, LifecycleEvent, parse_entry, takes
from connectors.notify.policy import RetryPolicy, classify, parse_retry_after
from connectors.notify.redrive_plan import LEAVES, Group, Incident, Letter, Step, plan
from connectors.notify.sender import Sender
from connectors.notify.store import delivered_key, notify_dlq_key
from connectors.rate_limit import TokenBucket
from connectors.redis_client import alerts_key, key

log = logging.getLogger(__name__)

PAGE = 1_000
"""Stream entries read per XRANGE call (dead letters, alerts)."""

LEASE_MARGIN_SECONDS = 60
"""The lease outlives one send's whole retry budget by this much."""

# KEYS: 1 lease. ARGV: 1 token, 2 seconds. Renews (or, with seconds 0, releases) the lease only
# while it is still ours: one that expired and was taken by another redrive is left alone.
_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])
"""

Outcome = str
"""A step's outcome: its verdict for the letters that leave or stay unsent, else `sent`,
`failed` (with the reason), `held` (an earlier letter of its incident failed) or `busy` (another
redrive holds the destination)."""


def lease_key(prefix: str, destination: str) -> str:
    """The lease one redrive of `destination` holds."""
    return key(prefix, "notify", "redrive", destination)


@dataclass
class Report:
    """What a redrive did (or, dry, would do): each step with its outcome, in order."""

    done: list[tuple[Step, Outcome]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for _, outcome in self.done if outcome.startswith("failed"))

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, outcome in self.done:
            name = outcome.split(":", 1)[0]
            counts[name] = counts.get(name, 0) + 1
        return counts


class Redrive:
    """One redrive over the dead letters of `settings`' Redis and destinations."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        notify = settings.notify
        self.prefix = settings.redis.prefix
        self.notify = notify
        self.client = client
        self.destinations = {d.name: d for d in notify.destinations}
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(
            max_attempts=notify.max_attempts,
            max_retry_seconds=notify.max_retry_seconds,
            initial_seconds=notify.retry_initial_seconds,
            max_seconds=notify.retry_max_seconds,
        )
        self._lease = client.register_script(_LEASE)
        self._lease_seconds = (
            int(notify.max_retry_seconds + notify.timeout_seconds) + LEASE_MARGIN_SECONDS
        )
        self._rng = random.Random()

    # -- the facts -----------------------------------------------------------------------------

    def letters(self, destinations: set[str] | None, incident: str | None) -> list[Letter]:
        """The dead letters (oldest first), of these destinations (None: all) and incident."""
        out: list[Letter] = []
        for dlq_id, fields in _entries(self.client, notify_dlq_key(self.prefix)):
            letter = _letter(dlq_id, fields, self.notify.default_team)
            if destinations is not None and letter.destination not in destinations:
                continue
            if incident is not None and (
                letter.event is None or letter.event.incident_id != incident
            ):
                continue
            out.append(letter)
        return out

    def incidents(self, ids: set[str]) -> dict[str, Incident]:
        """Each incident's events still in the alerts stream (stream order) and its record's
        status; one pass over the stream, whatever the number of incidents."""
        if not ids:
            return {}
        events: dict[str, list[LifecycleEvent]] = {i: [] for i in ids}
        wanted = re.compile(
            rb'"incident_id":"(' + b"|".join(re.escape(i.encode()) for i in ids) + rb')"'
        )
        for _entry_id, fields in _entries(self.client, alerts_key(self.prefix)):
            raw = fields.get(b"alert", b"")
            if wanted.search(raw) is None:
                continue
            try:
                ev = parse_entry(fields, self.notify.default_team)
            except InvalidEvent:
                continue
            if ev.incident_id in events:
                events[ev.incident_id].append(ev)
        order = sorted(ids)
        pipe = self.client.pipeline(transaction=False)
        for incident_id in order:
            pipe.hget(incident_key(self.prefix, incident_id), "status")
        statuses = pipe.execute()
        return {
            i: Incident(events[i], s.decode() if s is not None else None)
            for i, s in zip(order, statuses, strict=True)
        }

    def markers(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bytes | None]:
        """The delivered markers of these (destination, event id) pairs (one MGET a page)."""
        wanted = list(dict.fromkeys(pairs))
        out: dict[tuple[str, str], bytes | None] = {}
        for i in range(0, len(wanted), PAGE):
            page = wanted[i : i + PAGE]
            values = self.client.mget([delivered_key(self.prefix, d, e) for d, e in page])
            out.update(zip(page, values, strict=True))
        return out

    def plan(self, letters: list[Letter]) -> list[Group]:
        """The steps for these letters (see `redrive_plan`), from what Redis holds now."""
        ids = {x.event.incident_id for x in letters if x.event is not None}
        incidents = self.incidents(ids)
        names = {x.destination for x in letters if x.destination in self.destinations}
        pairs = [(x.destination, x.event_id) for x in letters]
        pairs += [
            (d, ev.event_id) for inc in incidents.values() for ev in inc.events for d in names
        ]
        marks = self.markers(pairs)

        def received(destination: str, event_id: str) -> bool:
            return marks.get((destination, event_id)) == b"sent"

        def destination_takes(destination: str, event: LifecycleEvent) -> bool:
            return takes(self.destinations[destination], event)

        return plan(letters, self.destinations, incidents, received, destination_takes)

    # -- carrying it out -------------------------------------------------------------------------

    def run(
        self,
        destinations: set[str] | None = None,
        incident: str | None = None,
        dry_run: bool = False,
        on_step: Callable[[Step, Outcome], None] | None = None,
    ) -> Report:
        """Plan the matching letters, then (unless `dry_run`) carry the plan out."""
        report = Report()

        def record(step: Step, outcome: Outcome) -> None:
            report.done.append((step, outcome))
            if on_step is not None:
                on_step(step, outcome)

        letters = self.letters(destinations, incident)
        if dry_run:
            for group in self.plan(letters):
                for step in group:
                    record(step, step.verdict)
            return report
        # The leases first, then the plan: a redrive that ran meanwhile cannot have made it stale.
        names = sorted({x.destination for x in letters if x.destination in self.destinations})
        leases = {name: self._take_lease(name) for name in names}
        senders: dict[str, tuple[Sender, TokenBucket | None]] = {}
        try:
            for group in self.plan(letters):
                self._carry_out(group, leases, senders, record)
        finally:
            for sender, _bucket in senders.values():
                sender.close()
            for name, token in leases.items():
                if token is not None:
                    self._lease(keys=[lease_key(self.prefix, name)], args=[token, 0])
        return report

    def _carry_out(
        self,
        group: Group,
        leases: dict[str, str | None],
        senders: dict[str, tuple[Sender, TokenBucket | None]],
        record: Callable[[Step, Outcome], None],
    ) -> None:
        failed = False
        for step in group:
            letter = step.letter
            if step.verdict in ("unreadable", "unconfigured"):
                record(step, step.verdict)  # stays where it is
            elif leases.get(letter.destination) is None:
                record(step, "busy: another redrive holds this destination")
            elif step.verdict in LEAVES:
                self.client.xdel(notify_dlq_key(self.prefix), letter.dlq_id)
                record(step, step.verdict)
            elif failed:
                record(step, "held: an earlier letter of its incident was not delivered")
            else:
                outcome = self._send(step, leases[letter.destination], senders)  # type: ignore[arg-type]
                failed = outcome != "sent"
                record(step, outcome)

    def _send(
        self, step: Step, token: str, senders: dict[str, tuple[Sender, TokenBucket | None]]
    ) -> Outcome:
        letter = step.letter
        assert letter.event is not None
        name = letter.destination
        marker = delivered_key(self.prefix, name, letter.event_id)
        if self.client.get(marker) == b"sent":  # delivered meanwhile: nothing to send
            self.client.xdel(notify_dlq_key(self.prefix), letter.dlq_id)
            return "delivered"
        if name not in senders:
            destination = self.destinations[name]
            rate = destination.max_per_second
            bucket = TokenBucket(rate, now=self._clock()) if rate else None
            senders[name] = (Sender(destination, self.notify), bucket)
        sender, bucket = senders[name]
        attempts, first = 0, self._clock()
        while True:
            if not self._lease(
                keys=[lease_key(self.prefix, name)], args=[token, self._lease_seconds]
            ):
                return "failed: the lease on this destination was lost (another redrive took it)"
            if bucket is not None:
                self._sleep(bucket.reserve(self._clock()))
            attempts += 1
            try:
                result = sender.send(letter.event)
            except Exception as exc:  # a payload that cannot be built: this letter only
                log.exception("redrive %s: cannot build the request for %s", name, letter.event_id)
                return f"failed: cannot build the request: {type(exc).__name__}"
            verdict = classify(result.status)
            if verdict == "delivered":
                pipe = self.client.pipeline(transaction=True)
                pipe.set(marker, b"sent", ex=self.notify.delivered_ttl_seconds)
                pipe.xdel(notify_dlq_key(self.prefix), letter.dlq_id)
                pipe.execute()
                log.info(
                    "redrive %s: delivered %s (%s)", name, letter.event_id, letter.event.status
                )
                return "sent"
            if verdict == "reject":
                return f"failed: rejected: {result.reason}"
            retry_after = parse_retry_after(result.retry_after, datetime.now(UTC))
            elapsed = self._clock() - first
            delay = self._policy.next_delay(attempts, elapsed, retry_after, self._rng.random())
            if delay is None:
                return (
                    f"failed: gave up after {attempts} attempts in {elapsed:.0f}s: {result.reason}"
                )
            log.warning(
                "redrive %s (%s): attempt %d of %s failed (%s); retry in %.1fs",
                name,
                sender.where,
                attempts,
                letter.event_id,
                result.reason,
                delay,
            )
            self._sleep(delay)

    def _take_lease(self, destination: str) -> str | None:
        token = secrets.token_hex(8)
        taken = self.client.set(
            lease_key(self.prefix, destination), token, nx=True, ex=self._lease_seconds
        )
        return token if taken else None


def _entries(client: redis.Redis, stream: str) -> Iterable[tuple[str, dict[bytes, bytes]]]:
    """Every entry of `stream`, oldest first, a page per round trip."""
    start = "-"
    while True:
        page = client.xrange(stream, min=start, max="+", count=PAGE)
        for entry_id, fields in page:
            yield entry_id.decode(), fields
        if len(page) < PAGE:
            return
        start = "(" + page[-1][0].decode()


def _letter(dlq_id: str, fields: dict[bytes, bytes], default_team: str) -> Letter:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode("utf-8", "replace")

    event: LifecycleEvent | None = None
    raw: Any = fields.get(b"event")
    if raw is not None and text("destination") != "*":
        try:
            event = parse_entry({b"alert": raw}, default_team)
        except InvalidEvent:
            event = None
    event_id = text("event_id") or (event.event_id if event is not None else "")
    return Letter(dlq_id, text("destination"), event_id, text("status"), text("reason"), event)
