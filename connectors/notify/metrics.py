"""The notifier's own Prometheus metrics, in their own registry (not the run's).

`sense-respond notify --metrics-port PORT` serves `NOTIFY_REGISTRY` at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NOTIFY_REGISTRY = CollectorRegistry(auto_describe=True)

SENT = Counter(
    "sense_respond_notify_sent",
    "Lifecycle events delivered (2xx), per destination.",
    ["destination"],
    registry=NOTIFY_REGISTRY,
)
RETRIES = Counter(
    "sense_respond_notify_retries",
    "Failed attempts that were scheduled for a retry, per destination.",
    ["destination"],
    registry=NOTIFY_REGISTRY,
)
DEAD_LETTERS = Counter(
    "sense_respond_notify_dead_letters",
    "Events written to {prefix}notify:dlq, per destination ('*': unreadable entries).",
    ["destination"],
    registry=NOTIFY_REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "sense_respond_notify_delivery_seconds",
    "From this process reading the event to the destination accepting it (retries included).",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=NOTIFY_REGISTRY,
)
TRIMMED_UNREAD = Counter(
    "sense_respond_notify_trimmed_unread",
    "Alerts trimmed from the alerts stream before any notifier read them: nobody was paged for"
    " them (counted as 1 when Redis cannot say how many).",
    registry=NOTIFY_REGISTRY,
)
IN_FLIGHT = Gauge(
    "sense_respond_notify_in_flight",
    "Alerts-stream entries this process holds, not yet done for every destination.",
    registry=NOTIFY_REGISTRY,
)
