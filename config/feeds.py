"""Settings of the live social-feed sources (Bluesky Jetstream, Mastodon streaming)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from config.section import Section

DEFAULT_JETSTREAM_COLLECTIONS = (
    "app.bsky.feed.post",
    "app.bsky.feed.repost",
    "app.bsky.feed.like",
    "app.bsky.graph.follow",
)
"""The collections the Jetstream source maps; Jetstream filters on them server-side."""


class _FeedSection(Section):
    """What every live feed shares: reconnect policy, buffering and an optional bounded lifetime."""

    reconnect_initial_seconds: float = Field(
        default=0.5, gt=0, description="First reconnect delay; doubles per failed attempt."
    )
    reconnect_max_seconds: float = Field(
        default=30.0, gt=0, description="Cap of the reconnect delay (jitter applies below it)."
    )
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Frames buffered between the network thread and the dataflow; when full the "
        "reader stops reading (TCP backpressure) instead of growing memory.",
    )
    poll_interval_ms: int = Field(
        default=5,
        ge=1,
        le=100,
        description="How long the dataflow waits before polling an empty buffer again.",
    )
    max_events: int | None = Field(
        default=None,
        ge=1,
        description="Stop the source after handing this many items to the flow (tests, demos).",
    )
    user_agent: str = Field(default="sense-respond/0.1", min_length=1)
    stall_seconds: float = Field(
        default=90.0,
        gt=0,
        description="Reconnect (with the cursor) when only heartbeats or pings came for this long.",
    )
    idle_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Stop the source when nothing arrived for this long (tests, demos).",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> _FeedSection:
        if self.reconnect_max_seconds < self.reconnect_initial_seconds:
            raise ValueError("reconnect_max_seconds must be >= reconnect_initial_seconds")
        return self


class JetstreamSettings(_FeedSection):
    """Bluesky Jetstream input (`--input jetstream:WSS_URL`)."""

    wanted_collections: list[str] = Field(
        default_factory=lambda: list(DEFAULT_JETSTREAM_COLLECTIONS),
        description="`wantedCollections` sent to Jetstream unless the URL already names some.",
    )
    wanted_dids: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="`wantedDids`: only these repositories (empty: everyone).",
    )
    rewind_seconds: float = Field(
        default=5.0,
        ge=0,
        description="On resume and reconnect, ask for events from this long before the cursor "
        "(Jetstream's time_us is not strictly ordered; the flow drops the duplicates).",
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, description="Largest WebSocket message accepted."
    )
    max_future_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        description="A record `createdAt` further than this ahead of Jetstream's time_us is not "
        "trusted; time_us is used instead.",
    )
    profiles_enabled: bool = Field(
        default=False, description="Fill author followers from app.bsky.actor.getProfiles."
    )
    profiles_url: str = Field(
        default="https://public.api.bsky.app",
        description="AppView base URL serving /xrpc/app.bsky.actor.getProfiles.",
    )
    profiles_kinds: list[str] = Field(
        default_factory=lambda: ["post", "reply", "quote"],
        description="Event kinds whose authors are looked up (likes are most of the firehose).",
    )
    profiles_batch_size: int = Field(default=25, ge=1, le=25, description="Actors per request.")
    profiles_batch_wait_ms: int = Field(
        default=50, ge=0, le=1_000, description="How long to gather actors before a lookup."
    )
    profiles_hold_ms: int = Field(
        default=250,
        ge=0,
        le=1_000,
        description="Longest an event waits for its author's profile; then it flows on without.",
    )
    profiles_cache_ttl_seconds: int = Field(default=6 * 3600, ge=1)
    profiles_failure_ttl_seconds: int = Field(
        default=60, ge=1, description="Actors whose lookup failed are not retried for this long."
    )
    profiles_cache_size: int = Field(default=200_000, ge=1)
    profiles_requests_per_second: float = Field(
        default=5.0, gt=0, description="Rate limit of profile lookups (token bucket)."
    )
    profiles_timeout_seconds: float = Field(default=2.0, gt=0)


class MastodonSettings(_FeedSection):
    """Mastodon streaming input (`--input mastodon:URL`)."""

    access_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (scope read:statuses, plus read:notifications for the "
        "user/notification stream). Never logged.",
    )
    read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Reconnect when nothing, not even a heartbeat, arrived for this long.",
    )
    notification_types: list[str] = Field(
        default_factory=lambda: ["mention", "quote", "reblog", "favourite"],
        description="Notification types mapped to events (mention/quote: the status; "
        "reblog/favourite: a repost/like of the brand's status).",
    )
    include_private: bool = Field(
        default=False, description="Also take `direct` and `private` statuses (off: skipped)."
    )
    status_memory: int = Field(
        default=100_000,
        ge=1,
        description="Status ids remembered with their author, so a `delete` (which carries only "
        "the id) can withdraw the post from its author's window.",
    )
