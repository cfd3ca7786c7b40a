"""The small value types that travel between the flow's steps.

They are slotted, frozen dataclasses: cheap to build on the hot path and cheap to pickle when
Bytewax moves them between workers or snapshots them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sentiment:
    """VADER's polarity scores of one text, exactly as `vaderSentiment` returns them."""

    compound: float
    pos: float
    neu: float
    neg: float


@dataclass(frozen=True, slots=True)
class Influence:
    """How far an account's word carries, at one moment of event time.

    `percentile` is the fraction of ranked accounts whose influence score is strictly lower, or
    None while fewer accounts are known than the ranking needs.
    """

    score: float
    percentile: float | None
    followers: int
    pagerank: float
    inbound_accounts: int
    ranked_accounts: int


@dataclass(frozen=True, slots=True)
class ScoredPost:
    """A scored post, reply or quote, with its author's influence when it was seen."""

    event_id: str
    customer_id: str
    platform: str
    handle: str | None
    created_at: datetime
    text: str
    sentiment: Sentiment
    influence: Influence
    is_brand: bool = False


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
class AlertRecord:
    """A fired alert: its deterministic id, its CloudEvents JSON and the customer's view."""

    alert_id: str
    customer_id: str
    payload: bytes
    view: CustomerView
