"""What the scenario generator produces: the generated accounts, and `Scenario` (a feed with its
ground truth, serialised as the feed JSONL, the truth JSON and the demo's TOML settings)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sense_respond.scenario_vocabulary import LISTEN

DEFAULT_SEED = 7
DEFAULT_BACKGROUND = 3000
DEFAULT_START = datetime(2026, 3, 2, 8, tzinfo=UTC)
DEFAULT_HOURS = 20.0

# Planted categories (the values of `Scenario.planted`).
CAT_FOLLOWERS = "unhappy_influential_followers"
CAT_GRAPH = "unhappy_influential_graph"
CAT_NO_REACH = "unhappy_no_reach"
CAT_HAPPY = "happy_influential"
CAT_BAD_THEN_GOOD = "one_bad_then_good"
CAT_FAR_APART = "negatives_far_apart"
CAT_UNRELATED = "unhappy_influential_unrelated"
CAT_BRAND = "brand"
ALERT_CATEGORIES = (CAT_FOLLOWERS, CAT_GRAPH)
CATEGORIES = (
    CAT_FOLLOWERS,
    CAT_GRAPH,
    CAT_NO_REACH,
    CAT_HAPPY,
    CAT_BAD_THEN_GOOD,
    CAT_FAR_APART,
    CAT_UNRELATED,
    CAT_BRAND,
)


@dataclass(frozen=True, slots=True)
class Account:
    """A generated account."""

    platform: str
    id: str
    handle: str
    followers: int

    @property
    def cid(self) -> str:
        """The customer id, `{platform}:{id}`."""
        return f"{self.platform}:{self.id}"

    def ref(self) -> dict[str, Any]:
        """The account as an event's `author` / `target`."""
        return {"id": self.id, "handle": self.handle, "followers": self.followers}


@dataclass
class Scenario:
    """A generated feed and its ground truth."""

    events: list[dict[str, Any]]
    expected_alerts: set[str]
    planted: dict[str, str]
    brand_accounts: list[str]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    """Customer id -> ids of its planted negative posts, in event-time order."""
    influence_basis: dict[str, str] = field(default_factory=dict)
    """Planted customer id -> "followers", "graph" or "none"."""
    handles: dict[str, str] = field(default_factory=dict)
    """Planted customer id -> handle."""
    followers: dict[str, int] = field(default_factory=dict)
    """Planted customer id -> followers."""
    text_classes: dict[str, str] = field(default_factory=dict)
    """Event id -> sentiment class of its text (every scored event)."""
    duplicate_ids: list[str] = field(default_factory=list)
    """Ids of events delivered twice."""
    out_of_order: int = 0
    """Deliveries that came after an event with a later `created_at`."""
    background_accounts: int = 0
    seed: int = DEFAULT_SEED
    start: datetime = DEFAULT_START
    hours: float = DEFAULT_HOURS
    listen: dict[str, Any] = field(default_factory=lambda: dict(LISTEN))
    """The `[listen]` rules the truth holds under."""

    def jsonl_bytes(self) -> bytes:
        """The feed as JSONL bytes, one event per line in delivery order."""
        return b"".join(orjson.dumps(event) + b"\n" for event in self.events)

    def write_jsonl(self, path: str | Path) -> int:
        """Write the feed as JSONL; returns the number of lines."""
        Path(path).write_bytes(self.jsonl_bytes())
        return len(self.events)

    def config_toml(self) -> str:
        """The settings the truth holds under: the brand accounts and the listening rules."""
        lines = [
            "# The bundled demo's settings (sense_respond/scenario.py writes them).",
            "brand_accounts = " + orjson.dumps(self.brand_accounts).decode(),
            "",
            "[listen]",
        ]
        for key, value in self.listen.items():
            lines.append(f"{key} = " + orjson.dumps(value).decode())
        return "\n".join(lines) + "\n"

    def truth_dict(self) -> dict[str, Any]:
        """The ground truth as JSON-able data (see `sense_respond.scenario`)."""
        kinds = Counter(e["kind"] for e in self.events)
        platforms = Counter(e["platform"] for e in self.events)
        unique = {(e["platform"], e["id"]) for e in self.events}
        alerts = {
            cid: {
                "category": self.planted[cid],
                "handle": self.handles[cid],
                "followers": self.followers[cid],
                "influence": self.influence_basis[cid],
                "negative_event_ids": self.negatives[cid],
                "must_fire_by_event_id": self.negatives[cid][2],
            }
            for cid in sorted(self.expected_alerts)
        }
        planted = {
            cid: {
                "category": cat,
                "handle": self.handles[cid],
                "followers": self.followers[cid],
                "influence": self.influence_basis[cid],
                "negative_event_ids": self.negatives.get(cid, []),
            }
            for cid, cat in sorted(self.planted.items())
        }
        return {
            "version": 1,
            "seed": self.seed,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "hours": self.hours,
            "brand_accounts": list(self.brand_accounts),
            "listen": dict(self.listen),
            "brand_customer_ids": sorted(c for c, cat in self.planted.items() if cat == CAT_BRAND),
            "expected_alerts": sorted(self.expected_alerts),
            "alerts": alerts,
            "planted": planted,
            "duplicate_event_ids": list(self.duplicate_ids),
            "rule": {
                "min_posts": 2,
                "unhappy_mean_compound": -0.35,
                "influence_percentile": 0.90,
                "followers_threshold": 10_000,
                "window_seconds": 6 * 3600,
            },
            "counts": {
                "lines": len(self.events),
                "unique_events": len(unique),
                "duplicates": len(self.events) - len(unique),
                "out_of_order": self.out_of_order,
                "background_accounts": self.background_accounts,
                "by_kind": dict(sorted(kinds.items())),
                "by_platform": dict(sorted(platforms.items())),
                "by_category": dict(sorted(Counter(self.planted.values()).items())),
            },
        }
