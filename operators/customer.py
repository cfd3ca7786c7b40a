"""One customer's state: the sentiment window, the alert cooldown, and the latest view.

`CustomerState` is what the flow keeps per customer key. It is small (a bounded list of posts and
a few scalars) and pure: the caller passes the detection time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from config.settings import RuleSettings, WindowSettings
from operators.records import (
    AlertRecord,
    CustomerGone,
    CustomerView,
    Influence,
    InfluenceRise,
    ScoredPost,
    Withdrawal,
)
from operators.rules import Subject, build_alert, cooldown_allows, dumps, evaluate
from operators.window import CustomerWindow, Placement, WindowPost

Output = AlertRecord | CustomerView | CustomerGone


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    """The settings a customer's state needs, bundled once per flow."""

    window: WindowSettings
    rules: RuleSettings
    alert_source: str
    listen_scope: str = "post"
    """`[listen] scope`, named in every alert (`data.listen`)."""


class CustomerState:
    """Window + cooldown + last known identity of one customer."""

    __slots__ = (
        "handle",
        "influence",
        "is_brand",
        "last_alert_id",
        "last_alert_ts",
        "last_severity",
        "late_posts",
        "platform",
        "unscored_posts",
        "window",
    )

    def __init__(self, window: WindowSettings) -> None:
        self.window = CustomerWindow(
            window.length_seconds, window.allowed_lateness_seconds, window.max_posts
        )
        self.handle: str | None = None
        self.platform: str = ""
        self.influence: Influence | None = None
        self.is_brand = False
        self.last_alert_ts: float | None = None
        self.last_severity: str | None = None
        self.last_alert_id: str | None = None
        self.late_posts = 0
        self.unscored_posts = 0  # about the business, sentiment unknown (not English)

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def reconfigure(self, window: WindowSettings) -> None:
        """Apply the current window settings to a state restored from a snapshot (resume)."""
        self.window.reconfigure(
            window.length_seconds, window.allowed_lateness_seconds, window.max_posts
        )

    def on_post(
        self, post: ScoredPost, policy: CustomerPolicy, detected_at: datetime
    ) -> AlertRecord | None:
        """Add a scored post; return the alert it triggers, if any.

        The customer's view changes with every placed post; the caller writes it once per batch
        (`view()`), since only the latest one matters.
        """
        self.handle = post.handle or self.handle
        self.platform = post.platform
        self.influence = post.influence
        self.is_brand = post.is_brand
        ts = post.created_at.timestamp()
        if post.sentiment is None:
            # About the business, but VADER cannot read it: the customer is known, the window
            # is not changed (an unknown sentiment is neither happy nor unhappy).
            self.unscored_posts += 1
            self.window.advance(ts)
            return None
        placed = self.window.add(
            WindowPost(
                ts,
                post.event_id,
                post.sentiment.compound,
                _cap(post.text, policy),
                post.matched,
                post.url,
            )
        )
        if placed is Placement.LATE:
            self.late_posts += 1
            return None
        return self._check(post.customer_id, post.event_id, post.created_at, policy, detected_at)

    def on_influence(
        self, rise: InfluenceRise, policy: CustomerPolicy, detected_at: datetime
    ) -> AlertRecord | None:
        """The customer's reach grew: alert now if they are already unhappy."""
        self.influence = rise.influence
        if self.window.is_empty():
            return None
        self.window.advance(rise.created_at.timestamp())
        return self._check(rise.customer_id, rise.event_id, rise.created_at, policy, detected_at)

    def _check(
        self,
        customer_id: str,
        trigger_event_id: str,
        event_time: datetime,
        policy: CustomerPolicy,
        detected_at: datetime,
    ) -> AlertRecord | None:
        """Evaluate the rule after a change; the alert, when it fires and the cooldown allows."""
        if self.is_brand or self.influence is None:
            return None
        summary = self.window.summary()
        decision = evaluate(summary, self.influence, policy.rules)
        if not decision.fires or decision.severity is None:
            return None
        # Cooldown runs on the customer's event clock so that replays decide the same way.
        if not cooldown_allows(
            decision.severity,
            self.window.now,
            self.last_alert_ts,
            self.last_severity,
            policy.rules.cooldown_seconds,
        ):
            return None
        subject = Subject(
            customer_id, self.platform, self.handle, trigger_event_id, event_time, self.influence
        )
        aid, envelope = build_alert(
            subject,
            summary,
            decision,
            self.window.current(),
            policy.rules,
            policy.alert_source,
            detected_at,
            listen_scope=policy.listen_scope,
        )
        self.last_alert_ts = self.window.now
        self.last_severity = decision.severity
        self.last_alert_id = aid
        return AlertRecord(aid, customer_id, dumps(envelope), self.view(customer_id))

    def on_withdrawal(self, withdrawal: Withdrawal) -> bool:
        """Take a deleted post out of the window; True if it was there (the view changed)."""
        return self.window.remove(withdrawal.event_id)

    def advance(self, now_ts: float) -> None:
        """Advance the customer's event clock (idle expiry)."""
        self.window.advance(now_ts)

    def is_idle(self, cooldown_seconds: float) -> bool:
        """Nothing left worth keeping: no posts in the window and no cooldown running."""
        if not self.window.is_empty():
            return False
        if self.last_alert_ts is None:
            return True
        return self.window.now - self.last_alert_ts >= cooldown_seconds

    def view(self, customer_id: str) -> CustomerView:
        """The customer's one view: identity, latest sentiment, influence, last alert id."""
        summary = self.window.summary()
        inf = self.influence
        fields: dict[str, bytes] = {
            "customer_id": customer_id.encode(),
            "platform": self.platform.encode(),
            "handle": (self.handle or "").encode(),
            "sentiment": dumps(
                {
                    "mean": round(summary.mean, 4),
                    "posts": summary.posts,
                    "min": summary.min,
                    "latest": summary.latest,
                    "window_seconds": summary.window_seconds,
                }
            ),
            "updated_event_time": str(self.window.now).encode(),
        }
        if self.unscored_posts:
            fields["unscored_posts"] = str(self.unscored_posts).encode()
        if inf is not None:
            fields["influence"] = dumps(
                {
                    "score": round(inf.score, 6),
                    "percentile": inf.percentile,
                    "followers": inf.followers,
                    "pagerank": inf.pagerank,
                    "inbound_accounts": inf.inbound_accounts,
                }
            )
        if self.last_alert_id is not None:
            fields["last_alert_id"] = self.last_alert_id.encode()
        return CustomerView(customer_id, fields)


def _cap(text: str, policy: CustomerPolicy) -> str:
    # Only evidence is ever shown, and it is capped: keep no more than that in state (one
    # character more, so the alert can still tell that the text was cut).
    cap = policy.rules.evidence_text_chars + 1
    return text if len(text) <= cap else text[:cap]
