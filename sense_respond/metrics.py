"""The process's Prometheus metrics (prometheus_client), in one registry.

Every metric the run exports is declared here, once, so the names are a contract in one place.
Connectors and the flow shell update them; `operators/` never does (it stays pure). The HTTP
endpoint (`--metrics-port`) serves `REGISTRY`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "sense_respond_events", "Events read from the input.", ["input"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "sense_respond_dead_letters",
    "Inputs sent to the dead-letter stream, by reason group.",
    ["reason"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "sense_respond_alerts", "Alerts delivered (new, not replays).", ["severity"], registry=REGISTRY
)
POSTS = Counter(
    "sense_respond_posts",
    "Posts with text, by what listening made of them: scored (about the business), unscored "
    "(about it, in a language VADER does not read) or ignored (not about it: never scored).",
    ["listening"],
    registry=REGISTRY,
)
REDIS_UP = Gauge("sense_respond_redis_up", "1 while Redis answers, else 0.", registry=REGISTRY)
REDIS_RETRIES = Counter(
    "sense_respond_redis_retries",
    "Redis commands retried after a transient error.",
    registry=REGISTRY,
)
OUTAGE_SECONDS = Counter(
    "sense_respond_outage_seconds", "Time spent waiting for Redis to come back.", registry=REGISTRY
)
SOURCE_LAG = Gauge(
    "sense_respond_source_lag",
    "Consumer-group lag (entries), or the cursor age in seconds for live feeds.",
    ["input"],
    registry=REGISTRY,
)
FEED_RECONNECTS = Counter(
    "sense_respond_feed_reconnects", "Live-feed reconnects.", ["input"], registry=REGISTRY
)
FEED_STALLS = Counter(
    "sense_respond_feed_stalls",
    "Live feeds that delivered only heartbeats for stall_seconds.",
    ["input"],
    registry=REGISTRY,
)
INFLUENCE_REFRESH_SECONDS = Histogram(
    "sense_respond_influence_refresh_seconds",
    "Wall time of one influence ranking refresh.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
EVENT_TO_ALERT_SECONDS = Histogram(
    "sense_respond_event_to_alert_seconds",
    "From reading the triggering event to the alert being written to Redis.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
