"""Settings of what the pipeline decides on: the customer window, the influence graph, the rules."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from config.section import Section


class WindowSettings(Section):
    """The per-customer event-time window of scored posts."""

    length_seconds: int = Field(default=6 * 3600, gt=0)
    allowed_lateness_seconds: int = Field(
        default=300,
        ge=0,
        description="How far behind the event-time watermark a post may arrive and still count "
        "(placed in its window as if it had come in order); later posts are counted late and "
        "dropped. At most length_seconds.",
    )
    max_posts: int = Field(default=200, ge=2, description="Posts kept per customer at most.")

    @model_validator(mode="after")
    def _lateness_within_window(self) -> WindowSettings:
        if self.allowed_lateness_seconds > self.length_seconds:
            raise ValueError(
                "window.allowed_lateness_seconds must be <= window.length_seconds "
                "(a post later than the window is long could never count)"
            )
        return self


class InfluenceSettings(Section):
    """The decaying interaction graph and the influence ranking."""

    half_life_seconds: int = Field(default=3 * 86_400, gt=0, description="Edge weight half-life.")
    damping: float = Field(default=0.85, gt=0, lt=1)
    refresh_every_events: int = Field(
        default=2_000,
        ge=1,
        description="Re-rank after at least this many changes and half the graph's "
        "size (amortised: the ranking costs O(1) per event)...",
    )
    refresh_every_seconds: int = Field(
        default=600,
        ge=1,
        description="...or after this much watermark time once a quarter of the graph changed.",
    )
    min_accounts_to_rank: int = Field(default=50, ge=1)
    min_inbound_accounts: int = Field(
        default=3,
        ge=1,
        description="Graph influence needs this many distinct non-brand accounts interacting "
        "with the account within reach_horizon_seconds.",
    )
    reach_horizon_seconds: int = Field(
        default=7 * 86_400,
        gt=0,
        description="How far back (event time) reach counts; interactions older than this are "
        "dropped from the graph.",
    )
    percentile_hysteresis: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="An account that rose to rules.influence_percentile stays influential by "
        "rank until its percentile falls below the threshold minus this.",
    )
    kind_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "reply": 1.0,
            "quote": 1.5,
            "repost": 1.5,
            "like": 0.5,
            "follow": 1.0,
            "mention": 1.0,
        }
    )

    @field_validator("kind_weights")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        known = {"reply", "quote", "repost", "like", "follow", "mention"}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown interaction kinds {sorted(unknown)}; known: {sorted(known)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("interaction weights must be >= 0")
        return value


class RuleSettings(Section):
    """When a customer is unhappy, influential, and worth an alert."""

    min_posts: int = Field(default=2, ge=1)
    unhappy_mean_compound: float = Field(default=-0.35, ge=-1, le=1)
    influence_percentile: float = Field(default=0.90, ge=0, le=1)
    followers_threshold: int = Field(default=10_000, ge=0)
    cooldown_seconds: int = Field(default=6 * 3600, ge=0)
    critical_mean_compound: float = Field(default=-0.6, ge=-1, le=1)
    critical_percentile: float = Field(default=0.99, ge=0, le=1)
    critical_followers: int = Field(default=100_000, ge=0)
    evidence_posts: int = Field(default=5, ge=1)
    evidence_text_chars: int = Field(default=280, ge=16)
    resolve_mean_compound: float = Field(
        default=-0.05,
        ge=-1,
        le=1,
        description="An incident resolves when the windowed mean rises to this (a post since).",
    )
    resolve_quiet_seconds: int | None = Field(
        default=None,
        gt=0,
        description="An incident resolves after this long without a post about the business "
        "(event time); unset: the window length.",
    )
