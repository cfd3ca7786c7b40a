"""One customer's state: the sentiment window, the alert cooldown, and the latest view.

`CustomerState` is what the flow keeps per customer key. It is data only (a bounded list of posts
and a few scalars); the settings are the caller's `CustomerPolicy`, passed to every call, so a
state restored from a snapshot runs under the current settings without any "reconfigure".

Two streams meet here, and are paired deterministically:

* the scored post itself (`ScoredPost`, text and sentiment, from the scoring step), and
* the graph stage's records, stamped with the event-time watermark (`Stamped`): the post's
  `PostInfluence` (its author's influence at that event), `InfluenceRise` (reach grew on an
  interaction toward this customer), `Withdrawal` and `AccountPurge`.

The graph stage's records are applied strictly in their order; one that needs its post waits
(with the ones behind it) until the post has arrived. Every decision therefore sees the same
state whichever of the two streams is ahead, at any replay speed.

Event time: before each graph record is applied the state is advanced to its watermark
(`advance`), which expires posts; the shell also calls `advance` with the latest watermark it has
seen when it looks at idle customers. Cooldowns run on the customer's clock (the newest post or
the watermark). `advance(watermark_ts, policy)` returns outputs: it is the hook where
event-time driven outcomes (e.g. an incident's quiet resolution) are produced.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from config.settings import RuleSettings, WindowSettings
from operators.enrich import GraphRecord, PostInfluence, Stamped
from operators.records import (
    AccountPurge,
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

_STATE_VERSION = 2
_NO_WATERMARK = float("-inf")


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    """The settings a customer's state needs, bundled once per flow."""

    window: WindowSettings
    rules: RuleSettings
    alert_source: str
    listen_scope: str = "post"
    """`[listen] scope`, named in every alert (`data.listen`)."""


class CustomerState:
    """Window + cooldown + last known identity of one customer, and the pairing queues."""

    __slots__ = (
        "handle",
        "influence",
        "is_brand",
        "last_alert_id",
        "last_alert_ts",
        "last_severity",
        "late_posts",
        "pending",
        "platform",
        "unscored_posts",
        "view_dirty",
        "waiting",
        "watermark",
        "window",
    )

    def __init__(self) -> None:
        self.window = CustomerWindow()
        self.handle: str | None = None
        self.platform: str = ""
        self.influence: Influence | None = None
        self.is_brand = False
        self.last_alert_ts: float | None = None
        self.last_severity: str | None = None
        self.last_alert_id: str | None = None
        self.late_posts = 0
        self.unscored_posts = 0  # about the business, sentiment unknown (not English)
        self.watermark = _NO_WATERMARK
        self.view_dirty = False  # the view in Redis lags the state
        # Posts waiting for their influence, graph records waiting for their post: None when
        # empty (most of the time), so an idle customer's state stays small.
        self.pending: dict[str, list[ScoredPost]] | None = None
        self.waiting: deque[Stamped] | None = None

    def __getstate__(self) -> tuple:
        return (_STATE_VERSION, *(getattr(self, name) for name in self.__slots__))

    def __setstate__(self, state: tuple) -> None:
        if not isinstance(state, tuple) or state[0] != _STATE_VERSION:
            raise ValueError(
                "unsupported CustomerState (a snapshot of an older version): "
                "resume needs a recovery directory written by this version"
            )
        for name, value in zip(self.__slots__, state[1:], strict=True):
            setattr(self, name, value)

    # ------------------------------------------------------------------ the two streams

    def receive_post(
        self, customer_id: str, post: ScoredPost, policy: CustomerPolicy, detected_at: datetime
    ) -> list[Output]:
        """A scored post arrived from the scoring step; it waits for its influence."""
        if self.pending is None:
            self.pending = {}
        self.pending.setdefault(post.event_id, []).append(post)
        return self._drain(customer_id, policy, detected_at)

    def receive(
        self, customer_id: str, stamped: Stamped, policy: CustomerPolicy, detected_at: datetime
    ) -> list[Output]:
        """A record from the graph stage arrived; applied in order once its post is here."""
        if self.waiting is None:
            self.waiting = deque()
        self.waiting.append(stamped)
        return self._drain(customer_id, policy, detected_at)

    def _drain(
        self, customer_id: str, policy: CustomerPolicy, detected_at: datetime
    ) -> list[Output]:
        out: list[Output] = []
        waiting = self.waiting
        while waiting:
            watermark, record = waiting[0]
            if isinstance(record, PostInfluence) and (
                self.pending is None or record.event_id not in self.pending
            ):
                break  # its post is still on its way
            waiting.popleft()
            out.extend(self.advance(watermark, policy))
            out.extend(self._apply(customer_id, watermark, record, policy, detected_at))
        if not waiting:
            self.waiting = None
        if not self.pending:
            self.pending = None
        return out

    def _apply(
        self,
        customer_id: str,
        watermark: float,
        record: GraphRecord,
        policy: CustomerPolicy,
        detected_at: datetime,
    ) -> list[Output]:
        alert: AlertRecord | None = None
        if isinstance(record, PostInfluence):
            pending = self.pending
            assert pending is not None  # checked by _drain
            posts = pending[record.event_id]
            post = posts.pop(0)
            if not posts:
                del pending[record.event_id]
            if record.duplicate:
                return []
            post = dataclasses.replace(post, influence=record.influence, is_brand=record.is_brand)
            alert = self.on_post(post, policy, detected_at, watermark)
        elif isinstance(record, InfluenceRise):
            alert = self.on_influence(record, policy, detected_at, watermark)
        elif isinstance(record, Withdrawal):
            self.view_dirty |= self.on_withdrawal(record)
        elif isinstance(record, AccountPurge):
            # The account went away: forget everything known about it, here and in Redis.
            self._forget()
            return [CustomerGone(customer_id)]
        return [] if alert is None else [alert]

    def _forget(self) -> None:
        pending, waiting, watermark = self.pending, self.waiting, self.watermark
        self.__init__()  # type: ignore[misc]
        self.pending, self.waiting, self.watermark = pending, waiting, watermark

    # ------------------------------------------------------------------ event time

    def advance(self, watermark_ts: float, policy: CustomerPolicy) -> list[Output]:
        """Advance the customer's event clock to the flow's watermark (never back).

        Posts that left the window expire. Returns what event time alone produces (nothing
        yet: this is the hook for outcomes such as an incident's quiet resolution).
        """
        if watermark_ts > self.watermark:
            self.watermark = watermark_ts
        before = len(self.window.posts)
        self.window.advance(watermark_ts, policy.window)
        if len(self.window.posts) != before:
            self.view_dirty = True
        return []

    def is_idle(self, policy: CustomerPolicy) -> bool:
        """Nothing left worth keeping: no posts, nothing waiting, no cooldown running."""
        if not self.window.is_empty() or self.pending or self.waiting:
            return False
        if self.last_alert_ts is None:
            return True
        return self.window.now - self.last_alert_ts >= policy.rules.cooldown_seconds

    def idle_at(self, policy: CustomerPolicy) -> float:
        """The watermark at which this state becomes idle if nothing else arrives."""
        at = max((p.ts for p in self.window.posts), default=_NO_WATERMARK)
        at += policy.window.length_seconds
        if self.last_alert_ts is not None:
            at = max(at, self.last_alert_ts + policy.rules.cooldown_seconds)
        return at

    # ------------------------------------------------------------------ decisions

    def on_post(
        self,
        post: ScoredPost,
        policy: CustomerPolicy,
        detected_at: datetime,
        watermark: float = _NO_WATERMARK,
    ) -> AlertRecord | None:
        """Add a scored post (with its influence); return the alert it triggers, if any.

        The customer's view changes with every post; the caller writes it once per batch
        (`view()`, when `view_dirty`), since only the latest one matters.
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
            self.window.advance(ts, policy.window)
            self.view_dirty = True
            return None
        placed = self.window.add(
            WindowPost(
                ts,
                post.event_id,
                post.sentiment.compound,
                _cap(post.text, policy),
                post.matched,
                post.url,
            ),
            policy.window,
            watermark,
        )
        self.view_dirty = True
        if placed is Placement.LATE:
            self.late_posts += 1
            return None
        return self._check(post.customer_id, post.event_id, post.created_at, policy, detected_at)

    def on_influence(
        self,
        rise: InfluenceRise,
        policy: CustomerPolicy,
        detected_at: datetime,
        watermark: float = _NO_WATERMARK,
    ) -> AlertRecord | None:
        """The customer's reach grew on an interaction toward them: alert if already unhappy."""
        self.influence = rise.influence
        if self.window.is_empty():
            return None
        self.window.advance(max(watermark, rise.created_at.timestamp()), policy.window)
        self.view_dirty = True
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
        summary = self.window.summary(policy.window)
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
        self.view_dirty = False  # the alert carries the view of its moment
        return AlertRecord(aid, customer_id, dumps(envelope), self.view(customer_id, policy))

    def on_withdrawal(self, withdrawal: Withdrawal) -> bool:
        """Take a deleted post out of the window; True if it was there (the view changed)."""
        return self.window.remove(withdrawal.event_id)

    def view(self, customer_id: str, policy: CustomerPolicy) -> CustomerView:
        """The customer's one view: identity, latest sentiment, influence, last alert id."""
        summary = self.window.summary(policy.window)
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
                    "by_rank": inf.by_rank,
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
