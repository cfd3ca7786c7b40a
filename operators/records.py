"""The small value types that travel between the flow's steps.

They are slotted, frozen dataclasses: cheap to build on the hot path and cheap to pickle when
Bytewax moves them between workers or snapshots them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime | None) -> int | None:
    """An aware datetime as exact integer microseconds since the epoch (None stays None).

    Records cross Bytewax workers pickled, and pickling an aware datetime costs ~7 µs (its
    tzinfo is pickled by reference each time); an int costs nothing and round-trips exactly.
    """
    return None if moment is None else (moment - EPOCH) // _MICROSECOND


def from_micros(micros: int | None) -> datetime | None:
    """The inverse of `to_micros`: an aware UTC datetime."""
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, slots=True)
class Sentiment:
    """VADER's polarity scores of one text, exactly as `vaderSentiment` returns them."""

    compound: float
    pos: float
    neu: float
    neg: float

    def __reduce__(self) -> tuple:
        # Plain-tuple pickling: a slotted dataclass's default path is several times slower.
        return (Sentiment, (self.compound, self.pos, self.neu, self.neg))


@dataclass(frozen=True, slots=True)
class Influence:
    """How far an account's word carries, at one moment of event time.

    `percentile` is the fraction of ranked accounts (those with evidence) with a strictly lower
    PageRank, 0 without `min_inbound_accounts` of reach, or None while fewer accounts are ranked
    than the ranking needs. `inbound_accounts` is exactly the number of distinct non-brand
    accounts that interacted with this one within the reach horizon. `by_rank` is the graph
    stage's verdict with hysteresis (None: judge by `percentile` alone).
    """

    score: float
    percentile: float | None
    followers: int
    pagerank: float
    inbound_accounts: int
    ranked_accounts: int
    by_rank: bool | None = None

    def __reduce__(self) -> tuple:
        return (
            Influence,
            (
                self.score,
                self.percentile,
                self.followers,
                self.pagerank,
                self.inbound_accounts,
                self.ranked_accounts,
                self.by_rank,
            ),
        )


@dataclass(frozen=True, slots=True)
class Assessment:
    """A post about the business, before it meets the graph: its sentiment and why it counts.

    `sentiment` is None when it cannot be scored (a language VADER does not know); `matched`
    names the keywords and brand accounts that made it relevant (empty: no listening rule set).
    """

    sentiment: Sentiment | None
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoredPost:
    """A post, reply or quote about the business, with its author's influence when it was seen.

    `sentiment` is None when it is about the business but could not be scored (not English):
    it makes its author a customer but does not enter the window.
    """

    event_id: str
    customer_id: str
    platform: str
    handle: str | None
    created_at: datetime
    text: str
    sentiment: Sentiment | None
    influence: Influence
    is_brand: bool = False
    matched: tuple[str, ...] = ()
    url: str | None = None
    read_ns: int = field(default=0, compare=False)
    """When the flow shell read the event (wall clock, ns; 0: unknown): measures latency only."""

    def __reduce__(self) -> tuple:
        return (
            _scored_post,
            (
                self.event_id,
                self.customer_id,
                self.platform,
                self.handle,
                to_micros(self.created_at),
                self.text,
                self.sentiment,
                self.influence,
                self.is_brand,
                self.matched,
                self.url,
                self.read_ns,
            ),
        )


@dataclass(frozen=True, slots=True)
class InfluenceRise:
    """An account rose to the alerting influence percentile, on the event `event_id`.

    Sent to the account's customer state so that a customer who is already unhappy is alerted
    when their reach grows (their complaint is being shared), without waiting for another post.
    """

    customer_id: str
    influence: Influence
    event_id: str
    created_at: datetime
    read_ns: int = field(default=0, compare=False)
    """When the flow shell read the event (wall clock, ns; 0: unknown): measures latency only."""


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A post taken back (deleted) by its author: it stops counting in the author's window."""

    event_id: str
    customer_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccountPurge:
    """An account that went away (deactivated, deleted): all its state is dropped."""

    customer_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerView:
    """The latest per-customer view, written to the hash `{prefix}customer:{customer_id}`."""

    customer_id: str
    fields: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class CustomerGone:
    """The customer's account went away: its view `{prefix}customer:{customer_id}` is deleted."""

    customer_id: str


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """What a lifecycle event changes in the incident's records in Redis.

    The sink applies it atomically with the event (see `connectors/lifecycle_delivery.py`):
    `fields` are set on the incident hash `{prefix}incident:{incident_id}` (the sink sets
    `status` from `status`, keeping "acknowledged" through later firings), `activity` and `note`
    are JSON objects appended to its `activity` and `notes` arrays, `opened_ts` orders the
    incident in the customer's history and the incident index.
    """

    incident_id: str
    status: str
    """firing | acknowledged | resolved"""
    severity: str
    teams: tuple[str, ...]
    opened_ts: float
    fields: dict[str, bytes]
    activity: bytes | None = None
    note: bytes | None = None
    escalation: bool = False
    """A firing that raised the severity: it reopens an incident someone resolved by hand."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A lifecycle event: its deterministic id, its CloudEvents JSON and the customer's view.

    `incident` is None only for bare alerts without an incident (older callers, tests).
    """

    alert_id: str
    customer_id: str
    payload: bytes
    view: CustomerView
    incident: IncidentUpdate | None = None
    read_ns: int = field(default=0, compare=False)
    """When the flow shell read the triggering event (wall clock, ns; 0: unknown), for the
    event-to-alert latency metric; set by the flow shell, never read by a decision."""


def _scored_post(
    event_id: str,
    customer_id: str,
    platform: str,
    handle: str | None,
    created_micros: int,
    text: str,
    sentiment: Sentiment | None,
    influence: Influence,
    is_brand: bool,
    matched: tuple[str, ...] = (),
    url: str | None = None,
    read_ns: int = 0,
) -> ScoredPost:
    created_at = EPOCH + timedelta(microseconds=created_micros)
    return ScoredPost(
        event_id,
        customer_id,
        platform,
        handle,
        created_at,
        text,
        sentiment,
        influence,
        is_brand,
        matched,
        url,
        read_ns,
    )
