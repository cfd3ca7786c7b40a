"""One customer's state: the sentiment window, the incident lifecycle, and the latest view.

`CustomerState` is what the flow keeps per customer key. It is small (a bounded list of posts and
a few scalars) and pure: the caller passes the detection time in. Its incident hooks
(`operators/incidents.py`) run on a post, on an influence rise and on an event-time advance;
each returns the lifecycle events (`AlertRecord`s) it caused, in order.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from config.detection import RuleSettings, WindowSettings
from operators.enrich import GraphRecord, PostInfluence, Stamped
from operators.incident_events import Who, build_resolution, firing_lifecycle, firing_update
from operators.incidents import Firing, IncidentPolicy, IncidentState, Resolution, check_instants
from operators.records import (
    AlertRecord,
    CustomerGone,
    CustomerView,
    Influence,
    InfluenceRise,
    ScoredPost,
    Withdrawal,
)
from operators.routing import DEFAULT_ROUTER, Router, RoutingFacts
from operators.rules import Decision, Subject, build_alert, dumps, evaluate, select_evidence
from operators.window import CustomerWindow, Placement, WindowPost, WindowSummary

Output = AlertRecord | CustomerView | CustomerGone

_STATE_VERSION = 3
_NO_WATERMARK = float("-inf")


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    """The settings a customer's state needs, bundled once per flow."""

    window: WindowSettings
    rules: RuleSettings
    alert_source: str
    listen_scope: str = "post"
    """`[listen] scope`, named in every alert (`data.listen`)."""
    router: Router = DEFAULT_ROUTER
    incidents: IncidentPolicy = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "incidents", IncidentPolicy.from_settings(self.rules, self.window))


class CustomerState:
    """Window + incidents + last known identity of one customer."""

    __slots__ = (
        "handle",
        "incidents",
        "influence",
        "is_brand",
        "last_alert_id",
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
        self.incidents = IncidentState()
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
            if watermark > self.watermark:
                self.watermark = watermark
            out.extend(self.advance(watermark, policy, detected_at))
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
            return list(self.on_post(post, policy, detected_at, watermark))
        if isinstance(record, InfluenceRise):
            return list(self.on_influence(record, policy, detected_at))
        if isinstance(record, Withdrawal):
            self.view_dirty |= self.on_withdrawal(record)
            return []
        # AccountPurge: forget everything known about the account, here and in Redis (an open
        # incident resolves first; the incident counter is kept).
        fresh, closing = self.purged(
            customer_id, record.created_at.timestamp(), policy, detected_at
        )
        for name in self.__slots__:
            if name not in ("pending", "waiting", "watermark"):
                setattr(self, name, getattr(fresh, name))
        return [*closing, CustomerGone(customer_id)]

    # ------------------------------------------------------------------ decisions

    def on_post(
        self,
        post: ScoredPost,
        policy: CustomerPolicy,
        detected_at: datetime,
        watermark: float = _NO_WATERMARK,
    ) -> list[AlertRecord]:
        """Add a scored post; return the lifecycle events it causes (resolutions due before
        it, then a firing or a recovery).

        The customer's view changes with every placed post; the caller writes it once per batch
        (`view()`), since only the latest one matters.
        """
        self.handle = post.handle or self.handle
        self.platform = post.platform
        self.influence = post.influence
        self.is_brand = post.is_brand
        ts = post.created_at.timestamp()
        out = self.advance(ts, policy, detected_at)
        self.view_dirty = True
        if post.sentiment is None:
            # About the business, but VADER cannot read it: the customer is known, the window
            # is not changed (an unknown sentiment is neither happy nor unhappy). It still
            # keeps an open incident from going quiet.
            self.unscored_posts += 1
            self.incidents.posted(ts, scored=False)
            return out
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
        if placed is Placement.LATE:
            self.late_posts += 1
            return out
        self.incidents.posted(ts)
        out.extend(
            self._check(post.customer_id, post.event_id, post.created_at, policy, detected_at)
        )
        return out

    def on_influence(
        self, rise: InfluenceRise, policy: CustomerPolicy, detected_at: datetime
    ) -> list[AlertRecord]:
        """The customer's reach grew: alert now if they are already unhappy."""
        self.influence = rise.influence
        if self.window.is_empty():
            return []
        ts = rise.created_at.timestamp()
        out = self.advance(ts, policy, detected_at)
        self.view_dirty = True
        out.extend(
            self._check(rise.customer_id, rise.event_id, rise.created_at, policy, detected_at)
        )
        return out

    def _check(
        self,
        customer_id: str,
        trigger_event_id: str,
        event_time: datetime,
        policy: CustomerPolicy,
        detected_at: datetime,
    ) -> list[AlertRecord]:
        """Evaluate the rule after a change: a firing event, a recovery, or nothing."""
        if self.is_brand or self.influence is None:
            return []
        event_ts = event_time.timestamp()
        summary = self.window.summary(policy.window)
        decision = evaluate(summary, self.influence, policy.rules)
        if decision.fires and decision.severity is not None:
            if (
                self.incidents.transition(decision.severity, self.window.now, policy.incidents)
                is None
            ):
                return []  # within the cooldown of the open incident
            evidence = select_evidence(self.window.current(), policy.rules)
            routing = policy.router.route(
                RoutingFacts(
                    tuple(p.text for p in evidence),
                    decision.severity,
                    self.platform,
                    self.influence.followers,
                )
            )
            # Cooldowns run on the customer's event clock so that replays decide the same way.
            firing = self.incidents.fire(
                customer_id,
                decision.severity,
                routing,
                event_ts,
                self.window.now,
                policy.incidents,
            )
            if firing is None:
                return []
            subject = Subject(
                customer_id,
                self.platform,
                self.handle,
                trigger_event_id,
                event_time,
                self.influence,
            )
            return [self._firing_record(subject, summary, decision, firing, policy, detected_at)]
        if self.incidents.open is None:
            return []
        resolution = self.incidents.check(summary, event_ts, policy.incidents)
        if resolution is None:
            return []
        return [
            self._resolution_record(customer_id, resolution, trigger_event_id, policy, detected_at)
        ]

    def _firing_record(
        self,
        subject: Subject,
        summary: WindowSummary,
        decision: Decision,
        firing: Firing,
        policy: CustomerPolicy,
        detected_at: datetime,
    ) -> AlertRecord:
        customer_id = subject.customer_id
        aid, envelope = build_alert(
            subject,
            summary,
            decision,
            self.window.current(),
            policy.rules,
            policy.alert_source,
            detected_at,
            listen_scope=policy.listen_scope,
            lifecycle=firing_lifecycle(firing),
        )
        # An incident's severity never drops while it is open: a repeat at "warning" of a
        # "critical" incident still says critical.
        envelope["data"]["severity"] = firing.incident.severity
        self.last_alert_id = aid
        update = firing_update(envelope, firing, self._who(customer_id))
        return AlertRecord(
            aid, customer_id, dumps(envelope), self.view(customer_id, policy), update
        )

    def _resolution_record(
        self,
        customer_id: str,
        resolution: Resolution,
        trigger_event_id: str | None,
        policy: CustomerPolicy,
        detected_at: datetime,
    ) -> AlertRecord:
        envelope, update = build_resolution(
            resolution,
            self._who(customer_id),
            self.window.summary(policy.window),
            trigger_event_id,
            policy.alert_source,
            detected_at,
        )
        return AlertRecord(
            envelope["id"], customer_id, dumps(envelope), self.view(customer_id, policy), update
        )

    def _who(self, customer_id: str) -> Who:
        return Who(customer_id, self.platform, self.handle)

    def on_withdrawal(self, withdrawal: Withdrawal) -> bool:
        """Take a deleted post out of the window; True if it was there (the view changed)."""
        return self.window.remove(withdrawal.event_id)

    def advance(
        self, now_ts: float, policy: CustomerPolicy, detected_at: datetime
    ) -> list[AlertRecord]:
        """Advance the customer's event clock (the event-time watermark, or their own next
        event) and resolve an open incident that recovered or went quiet on the way.

        The incident is checked at each instant the window changes (a post leaving it) and at
        its quiet deadline, so a resolution does not depend on how far the clock jumps at once.
        """
        out: list[AlertRecord] = []
        window = self.window
        if self.incidents.open is not None and now_ts > window.now:
            ip = policy.incidents
            deadline = self.incidents.quiet_deadline(ip)
            post_times = [p.ts for p in window.posts]
            for instant in check_instants(post_times, window.now, now_ts, ip, deadline):
                window.advance(instant, policy.window)
                resolution = self.incidents.check(window.summary(policy.window), instant, ip)
                if resolution is not None:
                    cid = resolution.incident.customer_id
                    out.append(self._resolution_record(cid, resolution, None, policy, detected_at))
                    break
        before = len(window.posts)
        window.advance(now_ts, policy.window)
        if len(window.posts) != before:
            self.view_dirty = True
        return out

    def catch_up(
        self, watermark: float, policy: CustomerPolicy, detected_at: datetime
    ) -> list[AlertRecord]:
        """Advance an idle-looking customer to a watermark that other customers' records
        brought (nothing of this customer's carried it): never past a record of this customer
        that waits for its post, which must be applied at its own watermark. Otherwise the
        wall-clock moment of the look would decide, e.g. whether that post lands before or
        after a quiet resolution."""
        if self.waiting:
            watermark = min(watermark, self.waiting[0][0])
        return self.advance(watermark, policy, detected_at)

    def purged(
        self, customer_id: str, at_ts: float, policy: CustomerPolicy, detected_at: datetime
    ) -> tuple[CustomerState, list[AlertRecord]]:
        """The account went away: a fresh state that keeps only the incident counter (so a
        returning account never reuses an incident id), and the quiet resolution of an open
        incident."""
        out: list[AlertRecord] = []
        resolution = self.incidents.close_quietly(at_ts)
        if resolution is not None:
            out.append(self._resolution_record(customer_id, resolution, None, policy, detected_at))
        fresh = CustomerState()
        fresh.incidents.seq = self.incidents.seq
        return fresh, out

    def is_idle(self, policy: CustomerPolicy) -> bool:
        """Nothing left worth keeping: no posts in the window, nothing waiting to be paired, and
        no incident ever opened.

        A customer who had an incident keeps this small state for good: its incident counter
        makes the next incident's id new (alerted customers are few). The cooldown no longer
        matters here: it only runs while an incident is open."""
        return (
            self.window.is_empty()
            and not self.pending
            and not self.waiting
            and self.incidents.seq == 0
        )

    def idle_at(self, policy: CustomerPolicy) -> float:
        """The watermark at which this state may be idle if nothing else arrives."""
        at = max((p.ts for p in self.window.posts), default=_NO_WATERMARK)
        return at + policy.window.length_seconds

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
