"""The "unhappy influential customer" rule, its cooldown, and the alert it produces.

unhappy     = at least `min_posts` scored posts in the window and mean compound <= the threshold
influential = influence percentile >= the threshold (once enough accounts are ranked)
              or followers >= the follower threshold
severity    = critical when the mean, the percentile or the followers cross the critical marks,
              else warning
The rule firing opens or re-fires the customer's incident; `operators/incidents.py` decides which
firings become events (escalations at once, repeats after the cooldown, on event time).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from config.detection import RuleSettings
from operators.records import Influence
from operators.window import WindowPost, WindowSummary

ALERT_TYPE = "sense_respond.unhappy_influential_customer"
ALERT_NAMESPACE = uuid.UUID("5d1f0c53-6a0e-4c39-9d0e-2f5b3f2b7a41")
"""Namespace of the deterministic (UUIDv5) alert ids."""

Severity = Literal["warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Decision:
    """The rule's verdict on one customer at one moment."""

    unhappy: bool
    influential: bool
    severity: Severity | None
    reasons: tuple[str, ...]

    @property
    def fires(self) -> bool:
        """Unhappy and influential."""
        return self.unhappy and self.influential


def evaluate(summary: WindowSummary, influence: Influence, rules: RuleSettings) -> Decision:
    """Apply the rule to a window summary and the customer's influence."""
    unhappy = summary.posts >= rules.min_posts and summary.mean <= rules.unhappy_mean_compound
    pct = influence.percentile
    if influence.by_rank is None:
        by_rank = pct is not None and pct >= rules.influence_percentile
    else:  # the graph stage's verdict: reach gate and hysteresis included
        by_rank = influence.by_rank and pct is not None
    by_followers = influence.followers >= rules.followers_threshold
    influential = by_rank or by_followers
    if not (unhappy and influential):
        # The common case, on every post: no reasons spelled out, nobody reads them.
        return Decision(unhappy, influential, None, ())
    reasons = [
        f"mean sentiment {summary.mean:.2f} over {summary.posts} posts"
        f" <= {rules.unhappy_mean_compound:.2f}"
    ]
    if by_rank:
        held = "" if pct >= rules.influence_percentile else " (held: it rose past it)"
        reasons.append(
            f"influence percentile {pct:.3f}{held} >= {rules.influence_percentile:.2f}"
            f" with {influence.inbound_accounts} inbound accounts"
        )
    if by_followers:
        reasons.append(f"{influence.followers} followers >= {rules.followers_threshold}")
    critical = (
        summary.mean <= rules.critical_mean_compound
        or (pct is not None and pct >= rules.critical_percentile)
        or influence.followers >= rules.critical_followers
    )
    return Decision(True, True, "critical" if critical else "warning", tuple(reasons))


def alert_id(customer_id: str, trigger_event_id: str, severity: str) -> str:
    """Deterministic id: the same input always yields the same alert id (replays, recovery)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{customer_id}\x1f{trigger_event_id}\x1f{severity}"))


def select_evidence(evidence: Sequence[WindowPost], rules: RuleSettings) -> list[WindowPost]:
    """The posts shown with an alert (and routed on): most negative first, the ones an on-call
    person should read before answering."""
    return sorted(evidence, key=lambda p: (p.compound, p.ts))[: rules.evidence_posts]


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


iso = _iso
"""An aware datetime as RFC 3339 UTC with a Z (how every lifecycle event writes times)."""


def sentiment_data(summary: WindowSummary) -> dict:
    """`data.sentiment` of a lifecycle event: the window as it was at that moment."""
    return {
        "mean": round(summary.mean, 4),
        "posts": summary.posts,
        "min": summary.min,
        "latest": summary.latest,
        "window_seconds": summary.window_seconds,
    }


@dataclass(frozen=True, slots=True)
class Subject:
    """Who an alert is about, and the event that made the rule true."""

    customer_id: str
    platform: str
    handle: str | None
    trigger_event_id: str
    event_time: datetime
    influence: Influence


def build_alert(
    subject: Subject,
    summary: WindowSummary,
    decision: Decision,
    evidence: list[WindowPost],
    rules: RuleSettings,
    source: str,
    detected_at: datetime,
    listen_scope: str = "post",
    lifecycle: Mapping[str, Any] | None = None,
) -> tuple[str, dict]:
    """The alert's id and CloudEvents 1.0 envelope (as a dict ready for orjson).

    `lifecycle` adds the incident's fields to `data` (incident_id, routing, ...; see
    `operators/incident_events.py`). `data` is the envelope's last member, which the sink relies on
    to add `silenced_by` without re-encoding the event.
    """
    assert decision.severity is not None
    aid = alert_id(subject.customer_id, subject.trigger_event_id, decision.severity)
    cap = rules.evidence_text_chars
    worst = select_evidence(evidence, rules)
    inf = subject.influence
    data = {
        "status": "firing",
        **(lifecycle or {}),
        "customer_id": subject.customer_id,
        "platform": subject.platform,
        "handle": subject.handle,
        "severity": decision.severity,
        "event_time": _iso(subject.event_time),
        "trigger_event_id": subject.trigger_event_id,
        "sentiment": sentiment_data(summary),
        "influence": {
            "score": round(inf.score, 6),
            "percentile": None if inf.percentile is None else round(inf.percentile, 4),
            "followers": inf.followers,
            "pagerank": inf.pagerank,
            "inbound_accounts": inf.inbound_accounts,
        },
        "evidence": [_evidence(p, cap) for p in worst],
        "reasons": list(decision.reasons),
        # How the posts were chosen: the scope, and what made the window's posts relevant.
        "listen": {
            "scope": listen_scope,
            "matched": sorted({term for p in evidence for term in p.matched}),
        },
    }
    envelope = {
        "specversion": "1.0",
        "id": aid,
        "source": source,
        "type": ALERT_TYPE,
        "subject": subject.customer_id,
        "time": _iso(detected_at),
        "datacontenttype": "application/json",
        "data": data,
    }
    return aid, envelope


def _evidence(post: WindowPost, cap: int) -> dict:
    item = {
        "id": post.event_id,
        "text": post.text if len(post.text) <= cap else post.text[: cap - 1] + "…",
        "compound": post.compound,
        "created_at": _iso(datetime.fromtimestamp(post.ts, UTC)),
        "matched": list(post.matched),
    }
    if post.url is not None:
        item["url"] = post.url
    return item


def dumps(obj: object) -> bytes:
    """orjson with the options every Redis payload uses."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
