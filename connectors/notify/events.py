"""Lifecycle events as the notifier reads them from `{prefix}alerts`, and who takes them.

The dataflow writes three CloudEvent types per incident (firing, acknowledged, resolved); this
module validates the part the notifier relies on once, at the edge, and keeps the whole
envelope for the payload builders. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.notify import DestinationSettings

FIRING = "sense_respond.unhappy_influential_customer"
RESOLVED = FIRING + ".resolved"
ACKNOWLEDGED = FIRING + ".acknowledged"
STATUS_OF_TYPE: dict[str, str] = {
    FIRING: "firing",
    ACKNOWLEDGED: "acknowledged",
    RESOLVED: "resolved",
}
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}

Status = Literal["firing", "acknowledged", "resolved"]


class InvalidEvent(ValueError):
    """An alerts-stream entry the notifier cannot push (reason in the message)."""


class _Routing(BaseModel):
    model_config = ConfigDict(extra="allow")
    team: str = Field(min_length=1)
    teams: list[str] = Field(default_factory=list, description="Every team (routes that continue).")


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Status
    incident_id: str = Field(min_length=1, max_length=255)  # PagerDuty's dedup_key limit
    customer_id: str = Field(min_length=1)
    severity: Literal["warning", "critical"]
    routing: _Routing | None = None
    silenced_by: Any = None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")
    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=255)
    type: str
    data: _Data


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle event: what routing and ordering need, plus the whole envelope."""

    event_id: str
    status: Status
    incident_id: str
    team: str
    """The primary team (the route that opened the incident, else the default team)."""
    teams: tuple[str, ...]
    """Every team the incident is routed to (the primary one first)."""
    severity: str
    silenced: bool
    envelope: dict[str, Any]
    raw: bytes
    """The exact CloudEvent JSON from the stream (the webhook body, signed as is)."""

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope["data"]


def parse_entry(fields: dict[bytes, bytes], default_team: str) -> LifecycleEvent:
    """The lifecycle event of one `{prefix}alerts` entry (fields `alert` and `id`).

    Events without `data.routing` (written before routing existed) go to `default_team`.
    """
    raw = fields.get(b"alert")
    if raw is None:
        raise InvalidEvent("entry has no 'alert' field")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"alert is not JSON: {exc}") from None
    try:
        env = _Envelope.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidEvent(f"alert field {where}: {first['msg']}") from None
    status = STATUS_OF_TYPE.get(env.type)
    if status is None:
        raise InvalidEvent(f"unknown event type {env.type[:100]!r}")
    if status != env.data.status:
        raise InvalidEvent(f"type {env.type} with data.status {env.data.status!r}")
    entry_id = fields.get(b"id")
    if entry_id is not None and entry_id.decode("utf-8", "replace") != env.id:
        raise InvalidEvent("entry id field differs from the CloudEvent id")
    routing = env.data.routing
    team = routing.team if routing else default_team
    teams = (team, *(t for t in (routing.teams if routing else []) if t != team))
    return LifecycleEvent(
        event_id=env.id,
        status=status,  # type: ignore[arg-type]
        incident_id=env.data.incident_id,
        team=team,
        teams=teams,
        severity=env.data.severity,
        silenced=env.data.silenced_by not in (None, "", [], {}),
        envelope=obj,
        raw=bytes(raw),
    )


def takes(destination: DestinationSettings, event: LifecycleEvent) -> bool:
    """Whether `destination` receives `event`: not silenced, one of its teams (any team the
    incident is routed to), at least its severity."""
    if event.silenced:
        return False
    if destination.teams and not any(team in destination.teams for team in event.teams):
        return False
    return SEVERITY_RANK[event.severity] >= SEVERITY_RANK[destination.min_severity]
