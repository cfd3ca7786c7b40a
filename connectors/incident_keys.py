"""Redis key and channel names of incidents, team channels and silences (one place).

`prefix` is `RedisSettings.prefix` (it carries its own separator, e.g. `sr:`).
"""

from __future__ import annotations

from connectors.redis_client import key

INCIDENT_TTL_SECONDS = 30 * 86_400
"""Incident records and customers' incident histories live this long after their last event."""

HISTORY_CAP = 50
"""Incidents kept per customer in `{prefix}customer:{id}:incidents` (newest)."""

INDEX_CAP = 10_000
"""Incidents kept in the index `{prefix}incidents` that `incidents list` reads (newest)."""


def incident_key(prefix: str, incident_id: str) -> str:
    """Hash: the incident record (status, team, who acted when, notes)."""
    return key(prefix, "incident", incident_id)


def customer_incidents_key(prefix: str, customer_id: str) -> str:
    """Sorted set: the customer's incident ids scored by opening event time (capped)."""
    return key(prefix, "customer", customer_id, "incidents")


def incidents_index_key(prefix: str) -> str:
    """Sorted set: every incident id scored by opening event time (capped)."""
    return key(prefix, "incidents")


def open_incidents_key(prefix: str) -> str:
    """Set: the ids of incidents not resolved yet."""
    return key(prefix, "incidents", "open")


def team_channel_prefix(prefix: str) -> str:
    """The pub/sub channel of team T is this followed by T."""
    return key(prefix, "alerts", "team", "")


def team_channel(prefix: str, team: str) -> str:
    """`{prefix}alerts:team:{team}`."""
    return team_channel_prefix(prefix) + team


def silence_key(prefix: str, silence_id: str) -> str:
    """Hash: one silence (customer, by, comment, starts_at, ends_at); expires when it ends."""
    return key(prefix, "silence", silence_id)


def silences_index_key(prefix: str) -> str:
    """Sorted set: silence ids scored by their end (unix seconds)."""
    return key(prefix, "silences")


def customer_silences_key(prefix: str, customer_id: str) -> str:
    """Hash: the customer's silences, id -> JSON; what the delivery script checks."""
    return key(prefix, "silences", "customer", customer_id)
