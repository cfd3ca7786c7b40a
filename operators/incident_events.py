"""Incident lifecycle events: the CloudEvents and incident-record updates of what happened.

The dataflow's firings and resolutions (`operators/incidents.py` decides them) become events
here, and so do people's actions on incidents (`sense-respond incidents ack|resolve`): those are
built from the incident record in Redis, but the dataflow never learns of them (operators cannot
read Redis). How the two meet is decided in the sink: see `connectors/lifecycle_delivery.py`.

Everything here is pure: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from operators.incidents import Firing, Resolution, lifecycle_event_id
from operators.records import IncidentUpdate
from operators.rules import ALERT_TYPE, dumps, iso, sentiment_data
from operators.window import WindowSummary

RESOLVED_TYPE = ALERT_TYPE + ".resolved"
ACKNOWLEDGED_TYPE = ALERT_TYPE + ".acknowledged"
TYPE_OF_STATUS = {
    "firing": ALERT_TYPE,
    "acknowledged": ACKNOWLEDGED_TYPE,
    "resolved": RESOLVED_TYPE,
}

SYSTEM_ACTOR = "sense-respond"
"""Who the activity log names for what the dataflow did."""


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
