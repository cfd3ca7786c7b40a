"""What the graph stage takes in: its policy (derived from the settings, never state) and the
compact `Touch` record of one event; see `operators.influence` for the graph itself."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from config.settings import Settings


@dataclass(frozen=True, slots=True)
class GraphPolicy:
    """The settings the graph needs, derived once per flow (never stored in the state)."""

    lam: float
    horizon: float
    min_inbound: int
    damping: float
    min_accounts: int
    refresh_floor: int
    refresh_seconds: float
    kind_weights: dict[str, float] = field(hash=False)
    mention_weight: float
    threshold: float
    hysteresis: float
    watch_compound: float
    watch_seconds: float
    dedupe_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphPolicy:
        """The policy of these settings."""
        inf = settings.influence
        defaults = type(inf)().kind_weights
        weights = {**defaults, **inf.kind_weights}
        return cls(
            lam=math.log(2.0) / inf.half_life_seconds,
            horizon=float(inf.reach_horizon_seconds),
            min_inbound=inf.min_inbound_accounts,
            damping=inf.damping,
            min_accounts=inf.min_accounts_to_rank,
            refresh_floor=inf.refresh_every_events,
            refresh_seconds=float(inf.refresh_every_seconds),
            kind_weights=weights,
            mention_weight=weights.get("mention", 0.0),
            threshold=settings.rules.influence_percentile,
            hysteresis=inf.percentile_hysteresis,
            watch_compound=settings.rules.unhappy_mean_compound,
            watch_seconds=float(
                settings.window.length_seconds + settings.window.allowed_lateness_seconds
            ),
            dedupe_seconds=float(settings.flow.dedupe_seconds),
        )


class Touch(NamedTuple):
    """What the graph stage needs of one event: a compact record, no text.

    `author`, `target` and `mentions` are customer ids (`platform:id`). `compound` is the
    sentiment of the event's scored post (None when it has none); `post` says that a scored post
    of this event went to the author's customer stage and waits for its influence.

    A named tuple, not a frozen dataclass: one is built for every event, and a frozen dataclass's
    `__init__` (a guarded `setattr` per field) was most of what building one cost. It pickles as
    a plain tuple when it crosses workers.
    """

    key: str
    event_id: str
    ts: float
    kind: str
    author: str
    handle: str | None
    followers: int | None
    target: str | None = None
    target_followers: int | None = None
    mentions: tuple[str, ...] = ()
    compound: float | None = None
    post: bool = False
    edit: bool = False
    read_ns: int = 0
    """When the flow shell read the event (wall clock, ns): measures latency only."""


def event_hash(key: str) -> int:
    """A stable 32-bit hash of an event's de-duplication key (the same in every process)."""
    return zlib.crc32(key.encode())
