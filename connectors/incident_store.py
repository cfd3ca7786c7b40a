"""What people read and do in Redis: incidents, their acknowledgement and resolution, silences,
and the customer's shared view (the `incidents`, `silence` and `customer show` commands).

Acting on an incident writes its lifecycle event through the same delivery script as the
dataflow (`connectors.lifecycle_delivery.queue_lifecycle`): the event lands on `{prefix}alerts`
(stream and channel) and the team channels, the incident record, the customer's view and history
change with it atomically, and the notifier pushes it like any other.

Silences, as in Alertmanager, are per customer and in wall-clock time (people silence for
"24 h"): `{prefix}silence:{id}` (a hash that expires when the silence ends), the index
`{prefix}silences` (id scored by end), and `{prefix}silences:customer:{customer_id}` (id -> JSON),
which the delivery script reads atomically with each write.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import redis

from config.settings import Settings
from connectors.incident_keys import (
    customer_incidents_key,
    customer_silences_key,
    incident_key,
    incidents_index_key,
    open_incidents_key,
    silence_key,
    silences_index_key,
)
from connectors.lifecycle_delivery import DELIVERED, DUPLICATE, load_script, queue_lifecycle
from connectors.redis_client import customer_key
from operators.incident_events import MAX_NAME_CHARS, MAX_NOTE_CHARS, build_human_action
from operators.records import AlertRecord, CustomerView
from operators.rules import dumps, iso


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}


class UnknownIncident(LookupError):
    """No incident has this id (or id prefix)."""


class AmbiguousIncident(UnknownIncident):
    """More than one incident has this id prefix."""


MIN_ID_PREFIX = 6
"""The shortest id prefix the people commands take for a full id."""


def _by_prefix(client: redis.Redis, index: str, given: str, after: float = -math.inf) -> list[str]:
    """The ids in the sorted set `index` that start with `given` (at least `MIN_ID_PREFIX`),
    of those scored above `after`."""
    if len(given) < MIN_ID_PREFIX:
        return []
    low = "-inf" if after == -math.inf else f"({after}"
    ids = (i.decode() for i in client.zrangebyscore(index, low, "+inf"))
    return [i for i in ids if i.startswith(given)]


def resolve_id(client: redis.Redis, prefix: str, given: str) -> str:
    """The full incident id for `given`: the id itself, or a unique prefix of at least 6
    characters of an incident in the index (what `incidents list` shows)."""
    given = given.strip()
    if client.exists(incident_key(prefix, given)):
        return given
    hits = _by_prefix(client, incidents_index_key(prefix), given)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise AmbiguousIncident(f"incident id prefix {given!r} is ambiguous ({len(hits)} match)")
    raise UnknownIncident(f"no incident {given!r}")


def resolve_silence_id(client: redis.Redis, prefix: str, given: str, now: datetime) -> str:
    """The full silence id for `given`, as `resolve_id`, among the silences active at `now`
    (what `silence list` shows); raises LookupError for none or several."""
    given = given.strip()
    if client.exists(silence_key(prefix, given)):
        return given
    hits = _by_prefix(client, silences_index_key(prefix), given, int(now.timestamp()))
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise LookupError(f"silence id prefix {given!r} is ambiguous ({len(hits)} match)")
    raise LookupError(f"no active silence {given!r}")


def get_incident(client: redis.Redis, prefix: str, incident_id: str) -> dict[str, Any]:
    """The incident record, with its JSON fields decoded."""
    raw = client.hgetall(incident_key(prefix, incident_id))
    if not raw:
        raise UnknownIncident(f"no incident {incident_id!r}")
    return decode_record(_text(raw))


LIST_CHUNK = 200

_JSON_FIELDS = ("teams", "routing", "notes", "activity", "sentiment", "influence")


def decode_record(record: dict[str, str]) -> dict[str, Any]:
    """A record as text fields, its JSON fields parsed."""
    out: dict[str, Any] = dict(record)
    for name in _JSON_FIELDS:
        if name in out:
            with contextlib.suppress(orjson.JSONDecodeError):
                out[name] = orjson.loads(out[name])
    return out


def list_incidents(
    client: redis.Redis,
    prefix: str,
    *,
    open_only: bool = False,
    team: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Incidents, newest first: all kept ones, or only the open ones; optionally of one team
    (primary or any team it was routed to)."""
    ids = [i.decode() for i in client.zrevrange(incidents_index_key(prefix), 0, -1)]
    if open_only:
        still_open = {i.decode() for i in client.smembers(open_incidents_key(prefix))}
        ids = [i for i in ids if i in still_open]
    out: list[dict[str, Any]] = []
    for start in range(0, len(ids), LIST_CHUNK):  # one round trip per chunk, until `limit`
        pipe = client.pipeline(transaction=False)
        for iid in ids[start : start + LIST_CHUNK]:
            pipe.hgetall(incident_key(prefix, iid))
        for raw in pipe.execute():
            if not raw:
                continue  # expired since it was indexed
            rec = decode_record(_text(raw))
            if open_only and rec.get("status") == "resolved":
                continue
            teams = rec.get("teams") or []
            if team is not None and team != rec.get("team") and team not in teams:
                continue
            out.append(rec)
            if len(out) >= limit:
                return out
    return out


@dataclass(frozen=True)
class ActionResult:
    """What an `ack` or `resolve` did."""

    outcome: Literal["delivered", "duplicate", "suppressed"]
    event: dict[str, Any]
    record: dict[str, Any]


def act(
    client: redis.Redis,
    settings: Settings,
    incident_id: str,
    action: Literal["acknowledged", "resolved"],
    by: str,
    note: str | None,
    now: datetime,
) -> ActionResult:
    """Acknowledge or resolve an incident: write its lifecycle event (deterministic id) and
    update the record, the view and the history, in one script run.

    Raises `UnknownIncident`, or `operators.incident_events.NotActionable` when the incident's state
    does not allow it (already resolved, already acknowledged).
    """
    prefix = settings.redis.prefix
    raw = client.hgetall(incident_key(prefix, incident_id))
    if not raw:
        raise UnknownIncident(f"no incident {incident_id!r}")
    record = _text(raw)
    envelope, update = build_human_action(record, action, by, note, now, settings.alert_source)
    customer_id = record.get("customer_id", "")
    event = AlertRecord(
        envelope["id"], customer_id, dumps(envelope), CustomerView(customer_id, {}), update
    )
    load_script(client)
    pipe = client.pipeline(transaction=False)
    queue_lifecycle(pipe, event, settings.redis)
    [reply] = pipe.execute()
    outcome = int(reply[0])
    name = {DELIVERED: "delivered", DUPLICATE: "duplicate"}.get(outcome, "suppressed")
    return ActionResult(name, envelope, get_incident(client, prefix, incident_id))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# silences

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `24h`, `2d`, `1w`, `1h30m` (Alertmanager's style) as a timedelta."""
    compact = text.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not compact or pos != len(compact) or total <= 0:
        raise ValueError(f"duration {text!r}: use e.g. 30m, 24h, 2d or 1h30m")
    return timedelta(seconds=total)


def add_silence(
    client: redis.Redis,
    prefix: str,
    customer_id: str,
    duration: timedelta,
    by: str,
    comment: str,
    now: datetime,
) -> dict[str, Any]:
    """Silence a customer from `now` for `duration`; returns the silence."""
    if not by.strip():
        raise ValueError("--by must name who silences")
    if not comment.strip():
        raise ValueError("--comment must say why")
    if len(by) > MAX_NAME_CHARS or len(comment) > MAX_NOTE_CHARS:
        raise ValueError(
            f"--by is at most {MAX_NAME_CHARS} characters, --comment at most {MAX_NOTE_CHARS}"
        )
    if ":" not in customer_id:
        raise ValueError(f"customer id {customer_id!r} is not PLATFORM:ID (e.g. twitter:123)")
    sid = str(uuid.uuid4())
    ends = now + duration
    silence = {
        "id": sid,
        "customer_id": customer_id,
        "by": by,
        "comment": comment,
        "starts_at": iso(now),
        "ends_at": iso(ends),
        "starts_ts": int(now.timestamp()),
        "ends_ts": int(ends.timestamp()),
    }
    ckey = customer_silences_key(prefix, customer_id)
    # Drop the customer's silences that ended, and keep the hash as long as its last silence.
    stale = []
    last_end = silence["ends_ts"]
    for field, value in client.hgetall(ckey).items():
        try:
            end = int(orjson.loads(value)["ends_ts"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            end = 0
        if end <= now.timestamp():
            stale.append(field)
        last_end = max(last_end, end)
    pipe = client.pipeline(transaction=True)
    pipe.hset(silence_key(prefix, sid), mapping={k: str(v) for k, v in silence.items()})
    pipe.expireat(silence_key(prefix, sid), silence["ends_ts"] + 1)
    pipe.zadd(silences_index_key(prefix), {sid: silence["ends_ts"]})
    pipe.zremrangebyscore(silences_index_key(prefix), "-inf", int(now.timestamp()))
    if stale:
        pipe.hdel(ckey, *stale)
    pipe.hset(ckey, sid, orjson.dumps(silence))
    pipe.expireat(ckey, last_end + 1)
    pipe.execute()
    return silence


def list_silences(client: redis.Redis, prefix: str, now: datetime) -> list[dict[str, Any]]:
    """Active silences, the soonest to end first."""
    index = silences_index_key(prefix)
    ids = [i.decode() for i in client.zrangebyscore(index, int(now.timestamp()) + 1, "+inf")]
    pipe = client.pipeline(transaction=False)
    for sid in ids:
        pipe.hgetall(silence_key(prefix, sid))
    out = []
    for sid, raw in zip(ids, pipe.execute(), strict=True):
        if raw:
            out.append(_text(raw))
        else:
            client.zrem(index, sid)  # expired early (silence expire on another index)
    return out


def expire_silence(client: redis.Redis, prefix: str, silence_id: str) -> dict[str, Any]:
    """End a silence now; returns it. Raises LookupError when there is no such silence."""
    raw = client.hgetall(silence_key(prefix, silence_id))
    if not raw:
        raise LookupError(f"no active silence {silence_id!r}")
    silence = _text(raw)
    pipe = client.pipeline(transaction=True)
    pipe.hdel(customer_silences_key(prefix, silence["customer_id"]), silence_id)
    pipe.delete(silence_key(prefix, silence_id))
    pipe.zrem(silences_index_key(prefix), silence_id)
    pipe.execute()
    return silence


def customer_silences(
    client: redis.Redis, prefix: str, customer_id: str, now: datetime
) -> list[dict[str, Any]]:
    """The customer's active silences."""
    out = []
    for value in client.hgetall(customer_silences_key(prefix, customer_id)).values():
        try:
            silence = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if int(silence.get("ends_ts", 0)) > now.timestamp():
            out.append(silence)
    return sorted(out, key=lambda s: s["ends_ts"])


# ---------------------------------------------------------------------------------------------
# the customer's view


def customer_view(
    client: redis.Redis, prefix: str, customer_id: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """Everything known about a customer: the view hash (JSON fields decoded), the incidents
    of their history (newest first, records included) and their active silences."""
    raw = client.hgetall(customer_key(prefix, customer_id))
    history = [
        i.decode() for i in client.zrevrange(customer_incidents_key(prefix, customer_id), 0, -1)
    ]
    if not raw and not history:
        return None
    view: dict[str, Any] = _text(raw)
    for name in ("sentiment", "influence", "incident", "last_alert"):
        if name in view:
            with contextlib.suppress(orjson.JSONDecodeError):
                view[name] = orjson.loads(view[name])
    pipe = client.pipeline(transaction=False)
    for iid in history:
        pipe.hgetall(incident_key(prefix, iid))
    incidents = [decode_record(_text(r)) for r in pipe.execute() if r]
    return {
        "customer_id": customer_id,
        "view": view,
        "incidents": incidents,
        "silences": customer_silences(client, prefix, customer_id, now or datetime.now(UTC)),
    }
