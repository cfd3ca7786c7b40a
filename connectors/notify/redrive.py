"""`sense-respond notify redrive`: send the notifier's dead letters again, once their cause is
fixed (a routing key corrected, a receiver back after an outage longer than the retry budget).

What happens to each letter is planned in `connectors.notify.redrive_plan` (per destination and
incident, never out of order, nobody paged for a resolved incident); this module gathers the
facts from Redis and carries the plan out, one destination at a time:

* the facts are read once for all letters (one pass over the alerts stream); then, one
  destination at a time, under a lease `{prefix}notify:redrive:{destination}` (SET NX with a
  token, renewed right before each request, released after its last letter; it expires by
  itself if the command dies), so that two redrives never send the same letter;
* before every attempt, retries included, the letter's incident is planned again from fresh
  facts (the alerts stream's entries since the last look, the destination's markers), so an
  event the live notifier delivered meanwhile still supersedes an older letter;
* each send goes through the destination's own `Sender` (same payloads, timeouts and secrets
  handling as the notifier) and the notifier's retry policy (`max_attempts`,
  `max_retry_seconds`, backoff, `Retry-After`), paced by the destination's `max_per_second`;
* a delivered letter's marker becomes "sent" and the letter leaves `{prefix}notify:dlq` in one
  `MULTI`, retried through short Redis outages: a crash in between sends that one event again
  on the next redrive, nothing is lost;
* a letter that fails again stays where it is (with its original reason), and so do the later
  letters of its incident; when the destination is still down (network errors, 5xx or 429 to
  the end of the budget), its remaining letters are held without trying each one;
* letters that leave unsent (received since, superseded, resolved) are deleted from the dead
  letters; `dry_run` only plans.

A live notifier never sends a dead-lettered event (its marker says done), so running this beside
one repeats nothing. One race remains: a newer event of the same incident that the live notifier
sends between the last look and the request may reach the destination first.
"""

from __future__ import annotations

import logging
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from config.settings import Settings
from connectors.incident_keys import incident_key
from connectors.notify.events import InvalidEvent, LifecycleEvent, parse_entry, takes
from connectors.notify.policy import RetryPolicy, classify, parse_retry_after
from connectors.notify.redrive_plan import (
    LEAVES,
    Incident,
    Letter,
    Step,
    plan,
    plan_group,
)
from connectors.notify.sender import Sender
from connectors.notify.store import delivered_key, notify_dlq_key
from connectors.rate_limit import TokenBucket
from connectors.redis_client import alerts_key, key

log = logging.getLogger(__name__)

PAGE = 1_000
"""Stream entries read per XRANGE call (dead letters, alerts)."""

LEASE_MARGIN_SECONDS = 60
"""The lease outlives one send's whole retry budget by this much."""

MARK_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Pauses between tries of a delivered letter's marker write (about 19 s of Redis outage)."""

# KEYS: 1 lease. ARGV: 1 token, 2 seconds. Renews (or, with seconds 0, releases) the lease only
# while it is still ours: one that expired and was taken by another redrive is left alone.
_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])
"""

Outcome = str
"""A step's outcome: its verdict for the letters that leave or stay unsent, else `sent`,
`failed` (with the reason), `held` (an earlier letter of its incident failed, or the destination
is still down) or `busy` (another redrive holds the destination)."""


def lease_key(prefix: str, destination: str) -> str:
    """The lease one redrive of `destination` holds."""
    return key(prefix, "notify", "redrive", destination)


@dataclass
class Report:
    """What a redrive did (or, dry, would do): each step with its outcome, in order."""

    done: list[tuple[Step, Outcome]] = field(default_factory=list)

    @property
    def unsent(self) -> int:
        """Letters that should have gone and did not: failed, held behind one that failed, or
        busy (another redrive holds their destination). They stay for the next redrive."""
        return sum(1 for _, outcome in self.done if outcome.startswith(("failed", "held", "busy")))

    def counts(self) -> dict[str, int]:
        """How many letters had each outcome (its name, before any `: reason`)."""
        return dict(Counter(outcome.split(":", 1)[0] for _, outcome in self.done))


class Facts:
    """What the plans rest on: the involved incidents' events in the alerts stream (read once,
    then only the entries added since), their records' statuses, and markers as last read."""

    def __init__(self, client: redis.Redis, prefix: str, default_team: str) -> None:
        self.client = client
        self.prefix = prefix
        self.default_team = default_team
        self.events: dict[str, list[LifecycleEvent]] = {}
        self.records: dict[str, str | None] = {}
        self.marks: dict[tuple[str, str], bytes | None] = {}
        self._wanted: re.Pattern[bytes] | None = None
        self._scanned_to = "-"

    def watch(self, ids: set[str]) -> None:
        """Gather the facts of these incidents: one pass over the alerts stream."""
        self.events = {i: [] for i in ids}
        if not ids:
            return
        # The stream's JSON is compact (orjson), but a space after the colon costs nothing.
        alternatives = b"|".join(re.escape(i.encode()) for i in sorted(ids))
        self._wanted = re.compile(rb'"incident_id"\s*:\s*"(' + alternatives + rb')"')
        self._scan("-")
        order = sorted(ids)
        pipe = self.client.pipeline(transaction=False)
        for incident_id in order:
            pipe.hget(incident_key(self.prefix, incident_id), "status")
        for incident_id, status in zip(order, pipe.execute(), strict=True):
            self._record(incident_id, status)

    def _record(self, incident_id: str, status: bytes | None) -> None:
        self.records[incident_id] = status.decode("utf-8", "replace") if status else None

    def catch_up(self) -> None:
        """The entries added to the alerts stream since the last look."""
        if self._wanted is not None:
            self._scan("(" + self._scanned_to if self._scanned_to != "-" else "-")

    def _scan(self, start: str) -> None:
        assert self._wanted is not None
        for entry_id, fields in _entries(self.client, alerts_key(self.prefix), start):
            self._scanned_to = entry_id
            if self._wanted.search(fields.get(b"alert", b"")) is None:
                continue
            try:
                ev = parse_entry(fields, self.default_team)
            except InvalidEvent:
                continue
            if ev.incident_id in self.events:
                self.events[ev.incident_id].append(ev)

    def incident(self, incident_id: str) -> Incident:
        return Incident(self.events.get(incident_id, []), self.records.get(incident_id))

    def read_markers(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read these (destination, event id) markers afresh (one MGET a page)."""
        wanted = list(dict.fromkeys(pairs))
        for i in range(0, len(wanted), PAGE):
            page = wanted[i : i + PAGE]
            values = self.client.mget([delivered_key(self.prefix, d, e) for d, e in page])
            self.marks.update(zip(page, values, strict=True))

    def marker(self, destination: str, event_id: str) -> bytes | None:
        return self.marks.get((destination, event_id))

    def refresh(self, destination: str, incident_id: str, letter: Letter) -> None:
        """Fresh facts for one destination's letter of one incident, right before an attempt:
        the stream's new entries, and the markers of the letter and of its incident's events
        (the later letters' are read afresh at their own turn)."""
        self.catch_up()
        pairs = [(destination, ev.event_id) for ev in self.events.get(incident_id, [])]
        pairs = list(dict.fromkeys([*pairs, (destination, letter.event_id)]))
        pipe = self.client.pipeline(transaction=False)  # one round trip for the rest
        pipe.mget([delivered_key(self.prefix, d, e) for d, e in pairs])
        pipe.hget(incident_key(self.prefix, incident_id), "status")
        values, status = pipe.execute()
        self.marks.update(zip(pairs, values, strict=True))
        self._record(incident_id, status)


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
        budget = notify.max_retry_seconds + notify.timeout_seconds
        self._lease_seconds = int(budget) + LEASE_MARGIN_SECONDS
        self._rng = random.Random()

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

    def facts(self, letters: list[Letter]) -> Facts:
        """The facts these letters are planned on, read now (one pass over the alerts stream
        for all of them)."""
        facts = Facts(self.client, self.prefix, self.notify.default_team)
        facts.watch({x.event.incident_id for x in letters if x.event is not None})
        names = {x.destination for x in letters if x.destination in self.destinations}
        pairs = [(x.destination, x.event_id) for x in letters]
        pairs += [(d, ev.event_id) for evs in facts.events.values() for ev in evs for d in names]
        facts.read_markers(pairs)
        return facts

    def takes(self, destination: str, event: LifecycleEvent) -> bool:
        """Whether the destination receives the event under its filters now."""
        return takes(self.destinations[destination], event)

    def run(
        self,
        destinations: set[str] | None = None,
        incident: str | None = None,
        dry_run: bool = False,
        on_step: Callable[[Step, Outcome], None] | None = None,
        include_stale: bool = False,
    ) -> Report:
        """Plan the matching letters, then (unless `dry_run`) carry the plan out, one
        destination at a time."""
        report = Report()

        def record(step: Step, outcome: Outcome) -> None:
            report.done.append((step, outcome))
            if on_step is not None:
                on_step(step, outcome)

        letters = self.letters(destinations, incident)
        facts = self.facts(letters)
        if dry_run:
            incidents = {i: facts.incident(i) for i in facts.events}
            groups = plan(
                letters,
                self.destinations,
                incidents,
                facts.marker,
                self.takes,
                include_stale,
            )
            for group in groups:
                for step in group:
                    record(step, step.verdict)
            return report
        by_destination: dict[str, list[Letter]] = {}
        for letter in letters:
            if letter.event is None or letter.destination not in self.destinations:
                for group in plan([letter], self.destinations, {}, facts.marker, self.takes):
                    for step in group:
                        record(step, step.verdict)  # stays: unreadable, or destination gone
                continue
            by_destination.setdefault(letter.destination, []).append(letter)
        for name, own in by_destination.items():
            self._destination(name, own, facts, include_stale, record)
        return report

    def _destination(
        self,
        name: str,
        letters: list[Letter],
        facts: Facts,
        include_stale: bool,
        record: Callable[[Step, Outcome], None],
    ) -> None:
        """One destination's letters, under its lease; each letter planned again from fresh
        facts before every attempt to send it."""
        token = self._take_lease(name)
        if token is None:
            for letter in letters:
                record(Step(letter, "send", ""), "busy: another redrive holds this destination")
            return
        sender: Sender | None = None
        try:
            groups: dict[str, list[Letter]] = {}
            for letter in letters:
                assert letter.event is not None
                groups.setdefault(letter.event.incident_id, []).append(letter)
            down = ""
            bucket = self._bucket(name)
            for incident_id, group in groups.items():
                failed = behind_stale = False
                for i in range(len(group)):
                    rest = group[i:]

                    def now(rest: list[Letter] = rest, incident_id: str = incident_id) -> Step:
                        facts.refresh(name, incident_id, rest[0])
                        incident = facts.incident(incident_id)
                        steps = plan_group(
                            name, rest, incident, facts.marker, self.takes, include_stale
                        )
                        return steps[0]

                    step = now()
                    if step.verdict in ("send", "resolved") and behind_stale:
                        why = "waits behind a stale letter of its incident (--include-stale)"
                        step = Step(step.letter, "stale", why)
                    if step.verdict == "send" and down:
                        record(step, f"held: {down}")
                        continue
                    if step.verdict == "send" and failed:
                        record(step, "held: an earlier letter of its incident was not delivered")
                        continue
                    if step.verdict == "send":
                        if sender is None:
                            sender = Sender(self.destinations[name], self.notify)
                        step, outcome, still_down = self._send(step, token, sender, bucket, now)
                        if still_down:
                            down = "the destination is still failing (" + outcome + ")"
                    else:
                        outcome = step.verdict
                    if outcome in LEAVES:
                        self.client.xdel(notify_dlq_key(self.prefix), step.letter.dlq_id)
                    behind_stale = behind_stale or outcome == "stale"
                    failed = failed or outcome.startswith(("failed", "held"))
                    record(step, outcome)
        finally:
            if sender is not None:
                sender.close()
            self._release(name, token)

    def _bucket(self, name: str) -> TokenBucket | None:
        rate = self.destinations[name].max_per_second
        return TokenBucket(rate, now=self._clock()) if rate else None

    def _send(
        self,
        step: Step,
        token: str,
        sender: Sender,
        bucket: TokenBucket | None,
        now: Callable[[], Step],
    ) -> tuple[Step, Outcome, bool]:
        """Deliver one letter: the step as last planned, its outcome, and whether the
        destination looks down (a budget spent on network errors, 5xx or 429: its other letters
        would go the same way). `now()` plans the letter again from fresh facts: before every
        attempt after the first, a letter that is no longer to be sent (a later event of its
        incident got there meanwhile) stops with that verdict."""
        letter = step.letter
        assert letter.event is not None
        name = letter.destination
        lease = lease_key(self.prefix, name)
        attempts, first = 0, self._clock()
        while True:
            if attempts:
                step = now()
                if step.verdict != "send":
                    return step, step.verdict, False
            if bucket is not None:
                self._sleep(bucket.reserve(self._clock()))
            if not self._lease(keys=[lease], args=[token, self._lease_seconds]):
                return step, "failed: the lease on this destination expired or was taken", False
            attempts += 1
            try:
                result = sender.send(letter.event)
            except Exception as exc:  # a payload that cannot be built: this letter only
                log.exception("redrive %s: cannot build the request for %s", name, letter.event_id)
                return step, f"failed: cannot build the request: {type(exc).__name__}", False
            verdict = classify(result.status)
            if verdict == "delivered":
                self._mark_sent(name, letter)
                log.info(
                    "redrive %s: delivered %s (%s)", name, letter.event_id, letter.event.status
                )
                return step, "sent", False
            if verdict == "reject":
                return step, f"failed: rejected: {result.reason}", False
            retry_after = parse_retry_after(result.retry_after, datetime.now(UTC))
            elapsed = self._clock() - first
            delay = self._policy.next_delay(attempts, elapsed, retry_after, self._rng.random())
            if delay is None:
                spent = f"{attempts} attempts in {elapsed:.0f}s"
                return step, f"failed: gave up after {spent}: {result.reason}", True
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

    def _mark_sent(self, name: str, letter: Letter) -> None:
        """The marker and the letter's removal, in one MULTI, through a short Redis outage (the
        event was delivered: giving up here would send it again on the next redrive)."""
        marker = delivered_key(self.prefix, name, letter.event_id)
        for pause in (*MARK_RETRY_SECONDS, None):
            try:
                pipe = self.client.pipeline(transaction=True)
                pipe.set(marker, b"sent", ex=self.notify.delivered_ttl_seconds)
                pipe.xdel(notify_dlq_key(self.prefix), letter.dlq_id)
                pipe.execute()
                return
            except redis.RedisError as exc:
                if pause is None:
                    raise
                log.warning(
                    "redrive %s: marking %s failed (%s); retrying", name, letter.event_id, exc
                )
                self._sleep(pause)

    def _take_lease(self, destination: str) -> str | None:
        token = secrets.token_hex(8)
        taken = self.client.set(
            lease_key(self.prefix, destination), token, nx=True, ex=self._lease_seconds
        )
        return token if taken else None

    def _release(self, destination: str, token: str) -> None:
        try:
            self._lease(keys=[lease_key(self.prefix, destination)], args=[token, 0])
        except redis.RedisError as exc:  # it expires by itself
            log.warning("redrive %s: could not release the lease (%s)", destination, exc)


def _entries(
    client: redis.Redis, stream: str, start: str = "-"
) -> Iterable[tuple[str, dict[bytes, bytes]]]:
    """The entries of `stream` from `start` on, oldest first, a page per round trip."""
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
