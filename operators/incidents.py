"""Incidents: one customer's unhappy spell, from the first alert to its resolution.

The lifecycle, on the customer's event time only (never the wall clock):

* The first alert for a customer **opens** an incident. Its id is derived from the customer and
  the incident's sequence number (`incident_id(customer, seq)`), and the sequence number lives in
  the customer's recovered state, so a replay or a resume gives the same ids.
* While it is open, the rule firing again is a **firing event of the same incident** when the
  severity **escalates** (warning → critical: at once) or when `rules.cooldown_seconds` passed
  since its last firing (a **repeat**, like Alertmanager's `repeat_interval`).
* It **resolves** when the windowed mean rises to `rules.resolve_mean_compound` or above with at
  least one post since its last firing (`sentiment_recovered`), or when the customer posted
  nothing about the business for `rules.resolve_quiet_seconds` (`quiet`, at exactly the last
  post's time + that long).
* A later unhappy spell opens a new incident with the next sequence number.

The events and incident-record updates of the lifecycle, and of people's actions on incidents,
are built in `operators/incident_events.py`.

Everything here is pure. `IncidentState` is data (no settings: `IncidentPolicy` is passed in),
small, picklable and versioned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from config.detection import RuleSettings, WindowSettings
from operators.routing import Routing
from operators.rules import SEVERITY_RANK
from operators.window import WindowSummary

INCIDENT_NAMESPACE = uuid.UUID("8f0c2a5e-3b7d-4e51-a6c9-1d2e3f4a5b6c")
"""Namespace of the deterministic (UUIDv5) incident ids and of their lifecycle event ids."""

Transition = Literal["opened", "escalated", "repeat"]
ResolvedReason = Literal["sentiment_recovered", "quiet", "manual"]


def incident_id(customer_id: str, seq: int) -> str:
    """The incident's stable id: the same customer and sequence number, the same id."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{customer_id}\x1f{seq}"))


def lifecycle_event_id(incident: str, status: str, *qualifiers: str) -> str:
    """Deterministic id of a non-firing lifecycle event of `incident`.

    The dataflow resolves an incident once: `lifecycle_event_id(iid, "resolved")`. People's
    actions add what makes them unique (`"manual"` and the incident's reopen count), so running
    the same command twice writes one event.
    """
    name = "\x1f".join((incident, status, *qualifiers))
    return str(uuid.uuid5(INCIDENT_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """The rules settings the lifecycle needs (policy, never kept in state)."""

    cooldown_seconds: float
    resolve_mean_compound: float
    quiet_seconds: float
    window_seconds: float

    @classmethod
    def from_settings(cls, rules: RuleSettings, window: WindowSettings) -> IncidentPolicy:
        """`rules.resolve_quiet_seconds` unset means the window length."""
        quiet = rules.resolve_quiet_seconds
        return cls(
            cooldown_seconds=float(rules.cooldown_seconds),
            resolve_mean_compound=rules.resolve_mean_compound,
            quiet_seconds=float(window.length_seconds if quiet is None else quiet),
            window_seconds=float(window.length_seconds),
        )


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """The incident a customer has open."""

    customer_id: str
    incident_id: str
    seq: int
    opened_ts: float
    severity: str
    last_fire_ts: float
    posts_since_fire: int
    routing: Routing


@dataclass(frozen=True, slots=True)
class Firing:
    """The rule fired and the incident says it is worth an event."""

    incident: OpenIncident
    transition: Transition


@dataclass(frozen=True, slots=True)
class Resolution:
    """The dataflow closed an incident."""

    incident: OpenIncident
    reason: Literal["sentiment_recovered", "quiet"]
    at_ts: float


STATE_VERSION = 1


class IncidentState:
    """A customer's incident counter, the open incident, and the time of their last post."""

    __slots__ = ("last_post_ts", "open", "seq")

    def __init__(self) -> None:
        self.seq = 0
        """Incidents opened so far (the next one gets seq + 1)."""
        self.open: OpenIncident | None = None
        self.last_post_ts: float | None = None
        """Event time of the customer's newest post about the business."""

    def __getstate__(self) -> tuple:
        return (STATE_VERSION, self.seq, self.open, self.last_post_ts)

    def __setstate__(self, state: tuple) -> None:
        version = state[0]
        if version != STATE_VERSION:
            raise ValueError(f"incident state version {version}; this build reads {STATE_VERSION}")
        _, self.seq, self.open, self.last_post_ts = state

    def fire(
        self,
        customer_id: str,
        severity: str,
        routing: Routing,
        event_ts: float,
        clock_ts: float,
        policy: IncidentPolicy,
    ) -> Firing | None:
        """The rule fired (at `event_ts`, the customer's clock at `clock_ts`): an event or not.

        Cooldowns run on the customer's clock, so out-of-order posts and replays decide alike.
        """
        transition = self.transition(severity, clock_ts, policy)
        if transition is None:
            return None
        inc = self.open
        if inc is None:
            self.seq += 1
            opened = OpenIncident(
                customer_id,
                incident_id(customer_id, self.seq),
                self.seq,
                event_ts,
                severity,
                clock_ts,
                0,
                routing,
            )
            self.open = opened
            return Firing(opened, "opened")
        top = severity if SEVERITY_RANK[severity] > SEVERITY_RANK[inc.severity] else inc.severity
        updated = replace(
            inc,
            severity=top,
            last_fire_ts=clock_ts,
            posts_since_fire=0,
            routing=inc.routing.merge(routing),
        )
        self.open = updated
        return Firing(updated, transition)

    def transition(
        self, severity: str, clock_ts: float, policy: IncidentPolicy
    ) -> Transition | None:
        """What the rule firing at `severity` (customer clock `clock_ts`) would be, if anything.

        Cheap, so that the caller routes (reads the evidence) only for firings that are events.
        """
        inc = self.open
        if inc is None:
            return "opened"
        if SEVERITY_RANK[severity] > SEVERITY_RANK[inc.severity]:
            return "escalated"
        if clock_ts - inc.last_fire_ts >= policy.cooldown_seconds:
            return "repeat"
        return None

    def posted(self, ts: float, scored: bool = True) -> None:
        """The customer posted about the business at `ts`: the quiet clock starts again.

        A post that could not be scored (`scored=False`, e.g. a language VADER does not read)
        keeps the incident from going quiet but is no evidence of recovery.
        """
        if self.last_post_ts is None or ts > self.last_post_ts:
            self.last_post_ts = ts
        inc = self.open
        if inc is not None and scored:
            self.open = replace(inc, posts_since_fire=inc.posts_since_fire + 1)

    def quiet_deadline(self, policy: IncidentPolicy) -> float | None:
        """When the open incident resolves as quiet if nothing is posted (None: no incident)."""
        if self.open is None:
            return None
        last = self.last_post_ts if self.last_post_ts is not None else self.open.opened_ts
        return last + policy.quiet_seconds

    def check(
        self, summary: WindowSummary, at_ts: float, policy: IncidentPolicy
    ) -> Resolution | None:
        """Resolve the open incident if it recovered or went quiet at `at_ts`."""
        inc = self.open
        if inc is None:
            return None
        if (
            inc.posts_since_fire >= 1
            and summary.posts >= 1
            and summary.mean >= policy.resolve_mean_compound
        ):
            self.open = None
            return Resolution(inc, "sentiment_recovered", at_ts)
        deadline = self.quiet_deadline(policy)
        if deadline is not None and at_ts >= deadline:
            self.open = None
            return Resolution(inc, "quiet", deadline)
        return None

    def close_quietly(self, at_ts: float) -> Resolution | None:
        """The account went away (purged): its open incident resolves as quiet now."""
        inc = self.open
        if inc is None:
            return None
        self.open = None
        return Resolution(inc, "quiet", at_ts)


def check_instants(
    post_times: Sequence[float],
    now: float,
    to_ts: float,
    policy: IncidentPolicy,
    quiet_deadline: float | None,
) -> list[float]:
    """The event times in (now, to_ts] at which an open incident must be re-checked.

    Between them nothing changes: the window loses a post only at `ts + window length`, and the
    quiet deadline is one instant. Checking exactly there makes a resolution's time and reason
    independent of how far the watermark jumps at once.
    """
    instants = {
        ts + policy.window_seconds for ts in post_times if now < ts + policy.window_seconds <= to_ts
    }
    if quiet_deadline is not None and quiet_deadline <= to_ts:
        instants.add(max(quiet_deadline, now))
    return sorted(instants)
