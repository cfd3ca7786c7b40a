"""The process's Prometheus metrics (prometheus_client), in one registry.

Every metric the run exports is declared here, once, so the names are a contract in one place.
Connectors and the flow shell update them; `operators/` never does (it stays pure). The HTTP
endpoint (`--metrics-port`) serves `REGISTRY`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from operators.events import DeadLetter

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


# ---------------------------------------------------------------------------------------------
# updating the generic metrics from the flow shell and the sinks

DEAD_LETTER_GROUPS = (
    "not_json",
    "not_object",
    "invalid_event",
    "too_large",
    "future_timestamp",
    "feed_frame",
    "poison",
    "other",
)
"""The fixed values of `sense_respond_dead_letters_total{reason}`: a dead letter's free-text
reason (it names fields and values) would make one time series per distinct message."""

_FEED_PREFIXES = ("jetstream: ", "mastodon: ")


def dead_letter_group(reason: str) -> str:
    """The metric group of a dead letter's reason (one of `DEAD_LETTER_GROUPS`)."""
    text = reason.lower()
    from_feed = text.startswith(_FEED_PREFIXES)
    if from_feed:
        text = text.partition(": ")[2]
    if "poison" in text or "deliveries" in text or "delivered " in text:
        return "poison"
    if "too large" in text or "too big" in text or "too long" in text or "exceeds" in text:
        return "too_large"
    if text.startswith("not json") or "not valid json" in text or "invalid json" in text:
        return "not_json"
    if text.startswith("not a json object"):
        return "not_object"
    if "in the future" in text:
        return "future_timestamp"
    if text.startswith("invalid event"):
        return "invalid_event"
    if from_feed or text.startswith("stream entry"):
        return "feed_frame"
    return "other"


def count_read(valid: int, dead: Iterable[DeadLetter], input_label: str) -> None:
    """Count what the parse step read from one batch: `valid` events and these dead letters
    (by group). Events are counted as read, valid or not: `events_total - dead_letters_total`
    is what the flow went on with."""
    n = valid
    groups: dict[str, int] = {}
    for item in dead:
        n += 1
        group = dead_letter_group(item.reason)
        groups[group] = groups.get(group, 0) + 1
    if n:
        EVENTS.labels(input=input_label).inc(n)
    for group, count in groups.items():
        DEAD_LETTERS.labels(reason=group).inc(count)


def observe_event_to_alert(read_ns: int, written_ns: int) -> None:
    """A new firing alert was written to Redis at `written_ns` (wall clock, ns); `read_ns` is
    when the flow shell read the event that triggered it (0: unknown, e.g. a record a test
    built). Observed into `sense_respond_event_to_alert_seconds`."""
    if read_ns > 0 and written_ns >= read_ns:
        EVENT_TO_ALERT_SECONDS.observe((written_ns - read_ns) / 1e9)


# ---------------------------------------------------------------------------------------------
# exporting the connectors' own counters (FeedMetrics, DeliveryStats) at scrape time


class _ConnectorCounters(Collector):
    """Reads the live feeds' `FeedMetrics` and the sinks' `DeliveryStats` when scraped.

    The connectors keep their plain counters (cheap, lock-free on the hot path); this collector
    turns them into Prometheus counters only when someone asks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._feeds: dict[str, Callable[[], Iterable[object]]] = {}
        self._sinks: dict[str, Callable[[], object]] = {}

    def watch_feed(self, input_label: str, metrics: Callable[[], Iterable[object]]) -> None:
        with self._lock:
            self._feeds[input_label] = metrics

    def watch_sink(self, step: str, stats: Callable[[], object]) -> None:
        with self._lock:
            self._sinks[step] = stats

    def clear(self) -> None:
        with self._lock:
            self._feeds.clear()
            self._sinks.clear()

    def describe(self) -> list[Metric]:
        return []  # the families depend on what is watched; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            feeds = list(self._feeds.items())
            sinks = list(self._sinks.items())
        totals: dict[str, dict[str, float]] = {}  # counter -> input -> sum over partitions
        for input_label, metrics in feeds:
            for feed_metrics in metrics():
                for name, value in dataclasses.asdict(feed_metrics).items():  # type: ignore[call-overload]
                    if name not in _DECLARED_FEED_COUNTERS:
                        per_input = totals.setdefault(name, {})
                        per_input[input_label] = per_input.get(input_label, 0.0) + float(value)
        for name, per_input in totals.items():
            family = CounterMetricFamily(
                f"sense_respond_feed_{name}",
                f"Live-feed counter {name} (FeedMetrics).",
                labels=["input"],
            )
            for input_label, value in per_input.items():
                family.add_metric([input_label], value)
            yield family
        if sinks:
            items = CounterMetricFamily(
                "sense_respond_sink_items",
                "What the Redis sinks wrote, by step and outcome (DeliveryStats).",
                labels=["step", "outcome"],
            )
            batches = CounterMetricFamily(
                "sense_respond_sink_batches", "Batches written by the Redis sinks.", labels=["step"]
            )
            for step, stats in sinks:
                for name, value in dataclasses.asdict(stats()).items():  # type: ignore[call-overload]
                    if name == "batches":
                        batches.add_metric([step], float(value))
                    else:
                        items.add_metric([step, name], float(value))
            yield items
            yield batches


_DECLARED_FEED_COUNTERS = frozenset({"reconnects", "stalls"})
"""FeedMetrics fields the feeds export themselves under declared names
(`sense_respond_feed_reconnects`, `sense_respond_feed_stalls`): one family per name."""

CONNECTORS = _ConnectorCounters()
REGISTRY.register(CONNECTORS)


# ---------------------------------------------------------------------------------------------
# the source of a run: its connector counters and its lag


def watch_source(source: object, input_label: str) -> None:
    """Export a live feed's `FeedMetrics` (the feed keeps `source_lag{input}` itself).

    Other sources export nothing here: a file has no lag, and the Redis stream source keeps its
    consumer-group lag in `SOURCE_LAG` itself.
    """
    from connectors.feed_runtime import FeedSource

    if isinstance(source, FeedSource):
        CONNECTORS.watch_feed(input_label, lambda: [p.metrics for p in list(source.partitions)])
