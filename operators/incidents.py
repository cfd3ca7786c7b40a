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

People act on incidents too (`sense-respond incidents ack|resolve`): those events are built here
as well, from the incident record in Redis, but the dataflow never learns of them (operators
cannot read Redis). How the two meet is decided in the sink: see `connectors/redis_sinks.py`.

Everything here is pure. `IncidentState` is data (no settings: `IncidentPolicy` is passed in),
small, picklable and versioned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from config.settings import RuleSettings, WindowSettings
from operators.records import IncidentUpdate
from operators.routing import Routing
from operators.rules import ALERT_TYPE, SEVERITY_RANK, dumps, iso, sentiment_data
from operators.window import WindowSummary

RESOLVED_TYPE = ALERT_TYPE + ".resolved"
ACKNOWLEDGED_TYPE = ALERT_TYPE + ".acknowledged"
TYPE_OF_STATUS = {
    "firing": ALERT_TYPE,
    "acknowledged": ACKNOWLEDGED_TYPE,
    "resolved": RESOLVED_TYPE,
}

INCIDENT_NAMESPACE = uuid.UUID("8f0c2a5e-3b7d-4e51-a6c9-1d2e3f4a5b6c")
"""Namespace of the deterministic (UUIDv5) incident ids and of their lifecycle event ids."""

SYSTEM_ACTOR = "sense-respond"
"""Who the activity log names for what the dataflow did."""

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


# ---------------------------------------------------------------------------------------------
# lifecycle events


def _ts_iso(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, UTC))


def firing_lifecycle(firing: Firing) -> dict[str, Any]:
    """The incident's fields in a firing event's `data` (see `rules.build_alert`)."""
    inc = firing.incident
    return {
        "incident_id": inc.incident_id,
        "incident_seq": inc.seq,
        "transition": firing.transition,
        "opened_at": _ts_iso(inc.opened_ts),
        "routing": inc.routing.as_data(),
    }


@dataclass(frozen=True, slots=True)
class Who:
    """Whom an event is about."""

    customer_id: str
    platform: str
    handle: str | None


def _record_fields(who: Who, inc_id: str, severity: str, routing: dict[str, Any]) -> dict:
    return {
        "id": inc_id,
        "customer_id": who.customer_id,
        "platform": who.platform,
        "handle": who.handle or "",
        "severity": severity,
        "team": routing["team"],
        "teams": dumps(routing.get("teams") or [routing["team"]]),
        "routing": dumps(routing),
    }


def _encode(fields: dict[str, Any]) -> dict[str, bytes]:
    return {k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def firing_update(envelope: dict[str, Any], firing: Firing, who: Who) -> IncidentUpdate:
    """What a firing event changes in the incident record."""
    inc, data = firing.incident, envelope["data"]
    routing = inc.routing.as_data()
    fields = _record_fields(who, inc.incident_id, inc.severity, routing)
    fields |= {
        "seq": inc.seq,
        "opened_at": data["opened_at"],
        "opened_ts": repr(inc.opened_ts),
        "updated_at": data["event_time"],
        "last_event_id": envelope["id"],
        "last_firing_id": envelope["id"],
        "sentiment": dumps(data.get("sentiment")),
        "influence": dumps(data.get("influence")),
    }
    activity = None
    if firing.transition != "repeat":  # repeats would only make the log long
        activity = dumps(
            {
                "at": data["event_time"],
                "by": SYSTEM_ACTOR,
                "action": firing.transition,
                "severity": inc.severity,
                "event_id": envelope["id"],
            }
        )
    return IncidentUpdate(
        inc.incident_id,
        "firing",
        inc.severity,
        tuple(routing["teams"]),
        inc.opened_ts,
        _encode(fields),
        activity=activity,
        escalation=firing.transition == "escalated",
    )


def build_resolution(
    resolution: Resolution,
    who: Who,
    summary: WindowSummary,
    trigger_event_id: str | None,
    source: str,
    detected_at: datetime,
) -> tuple[dict[str, Any], IncidentUpdate]:
    """The dataflow's `...resolved` event for an incident, and its record update."""
    inc = resolution.incident
    routing = inc.routing.as_data()
    event_time = _ts_iso(resolution.at_ts)
    eid = lifecycle_event_id(inc.incident_id, "resolved")
    data: dict[str, Any] = {
        "status": "resolved",
        "incident_id": inc.incident_id,
        "incident_seq": inc.seq,
        "resolved_reason": resolution.reason,
        "customer_id": who.customer_id,
        "platform": who.platform,
        "handle": who.handle,
        "severity": inc.severity,
        "event_time": event_time,
        "opened_at": _ts_iso(inc.opened_ts),
        "trigger_event_id": trigger_event_id,
        "sentiment": sentiment_data(summary),
        "routing": routing,
    }
    envelope = _envelope(eid, RESOLVED_TYPE, who.customer_id, source, detected_at, data)
    fields = _record_fields(who, inc.incident_id, inc.severity, routing) | {
        "updated_at": event_time,
        "last_event_id": eid,
        "resolved_at": event_time,
        "resolved_reason": resolution.reason,
        "resolved_by": SYSTEM_ACTOR,
    }
    activity = dumps(
        {"at": event_time, "by": SYSTEM_ACTOR, "action": "resolved", "reason": resolution.reason}
    )
    update = IncidentUpdate(
        inc.incident_id,
        "resolved",
        inc.severity,
        tuple(routing["teams"]),
        inc.opened_ts,
        _encode(fields),
        activity=activity,
    )
    return envelope, update


def _envelope(
    eid: str, kind: str, subject: str, source: str, detected_at: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": source,
        "type": kind,
        "subject": subject,
        "time": iso(detected_at),
        "datacontenttype": "application/json",
        "data": data,  # last: the sink appends `silenced_by` inside it
    }


MAX_NAME_CHARS = 100
MAX_NOTE_CHARS = 2_000
"""People's names and notes travel in every event and view: they are kept short."""


class NotActionable(ValueError):
    """A person's action does not apply to the incident in its current state."""


def build_human_action(
    record: dict[str, str],
    action: Literal["acknowledged", "resolved"],
    by: str,
    note: str | None,
    at: datetime,
    source: str,
) -> tuple[dict[str, Any], IncidentUpdate]:
    """A person acknowledges or resolves an incident: the event and its record update.

    `record` is the incident hash as text. `at` is when the person acted (wall clock: people's
    actions happen in real time); it is the event's `event_time` too. The id is deterministic
    (incident, action, reopen count), so repeating a command is one event.
    """
    status = record.get("status")
    who = f"{record.get('id')} ({record.get('customer_id')})"
    if status == "resolved":
        raise NotActionable(
            f"incident {who} is already resolved ({record.get('resolved_reason')}"
            f" by {record.get('resolved_by')} at {record.get('resolved_at')})"
        )
    if action == "acknowledged" and status == "acknowledged":
        raise NotActionable(
            f"incident {who} is already acknowledged by {record.get('acknowledged_by')}"
            f" at {record.get('acknowledged_at')}"
        )
    if not by.strip():
        raise NotActionable("--by must name who acts")
    if len(by) > MAX_NAME_CHARS or (note is not None and len(note) > MAX_NOTE_CHARS):
        raise NotActionable(
            f"--by is at most {MAX_NAME_CHARS} characters, --note at most {MAX_NOTE_CHARS}"
        )
    inc_id = record["id"]
    generation = record.get("reopened", "0")
    at_iso = iso(at)
    routing = _loads_or(record.get("routing"), {"team": record.get("team", "")})
    routing.setdefault("teams", [routing.get("team")])
    data: dict[str, Any] = {
        "status": action,
        "incident_id": inc_id,
        "customer_id": record.get("customer_id"),
        "platform": record.get("platform"),
        "handle": record.get("handle") or None,
        "severity": record.get("severity"),
        "event_time": at_iso,
        "opened_at": record.get("opened_at"),
        "routing": routing,
    }
    fields: dict[str, Any] = {"updated_at": at_iso}
    if action == "acknowledged":
        eid = lifecycle_event_id(inc_id, "acknowledged", generation)
        data |= {"acknowledged_by": by, "acknowledged_at": at_iso}
        fields |= {"acknowledged_by": by, "acknowledged_at": at_iso}
    else:
        eid = lifecycle_event_id(inc_id, "resolved", "manual", generation)
        data |= {"resolved_reason": "manual", "resolved_by": by}
        fields |= {"resolved_at": at_iso, "resolved_reason": "manual", "resolved_by": by}
    if note:
        data["note"] = note
    fields["last_event_id"] = eid
    envelope = _envelope(
        eid, TYPE_OF_STATUS[action], str(record.get("customer_id")), source, at, data
    )
    activity: dict[str, Any] = {"at": at_iso, "by": by, "action": action}
    if note:
        activity["note"] = note
    update = IncidentUpdate(
        inc_id,
        action,
        str(record.get("severity")),
        tuple(routing["teams"]),
        float(record.get("opened_ts") or 0.0),
        _encode(fields),
        activity=dumps(activity),
        note=dumps({"at": at_iso, "by": by, "text": note}) if note else None,
    )
    return envelope, update


def _loads_or(raw: str | None, default: dict[str, Any]) -> dict[str, Any]:
    if not raw:
        return default
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return default
    return value if isinstance(value, dict) else default
