"""Settings of where and how the pipeline runs: its Redis, and Bytewax execution."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from config.section import Section


class RedisSettings(Section):
    """Where and how to talk to Redis."""

    url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL (may hold a password); unset: embedded Redis.",
    )
    prefix: str = Field(default="sr:", min_length=1, description="Prefix of every key and channel.")
    socket_timeout_seconds: float = Field(default=5.0, gt=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    retries: int = Field(
        default=3,
        ge=0,
        description="redis-py retries of a failed command in the on-call tools (alerts tail, "
        "replay); the run itself retries through outages within outage_budget_seconds.",
    )
    alerts_maxlen: int = Field(default=100_000, ge=1, description="Approximate MAXLEN of alerts.")
    dlq_maxlen: int = Field(default=100_000, ge=1, description="Approximate MAXLEN of the DLQ.")
    view_ttl_seconds: int = Field(default=7 * 86_400, ge=60, description="TTL of customer views.")
    alert_id_ttl_seconds: int = Field(
        default=7 * 86_400, ge=60, description="How long a delivered alert id is remembered."
    )
    input_group: str = Field(default="sense-respond", min_length=1)
    consumer: str | None = Field(
        default=None, description="Consumer name (-worker appended); default host-pid-random."
    )
    block_ms: int = Field(default=100, ge=1, le=5_000, description="XREADGROUP block time.")
    read_count: int = Field(default=500, ge=1, description="Entries per XREADGROUP.")
    claim_idle_ms: int = Field(
        default=60_000, ge=1_000, description="Take over the entries of a consumer idle this long."
    )
    outage_budget_seconds: float = Field(
        default=300,
        gt=0,
        description="How long one Redis outage (transient errors: refused, reset, timeouts, "
        "LOADING, BUSY, READONLY, TRYAGAIN, MASTERDOWN) is waited out, all retries included; "
        "the flow pauses meanwhile, and past it the run exits 75.",
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="An input entry delivered this often goes to the DLQ."
    )
    ssl_ca_certs: str | None = Field(
        default=None,
        description="CA bundle (PEM) that verifies the server of a rediss:// URL; unset: the"
        " system's CAs.",
    )
    input_idle_exit_seconds: float | None = Field(
        default=None,
        gt=0,
        description="End a --input redis:KEY run once the stream is idle this long (backfills).",
    )

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> RedisSettings:
        if self.ssl_ca_certs is None:
            return self
        if not Path(self.ssl_ca_certs).is_file():
            raise ValueError(f"redis.ssl_ca_certs: no such file: {self.ssl_ca_certs}")
        if self.url is not None and not self.url.get_secret_value().lower().startswith("rediss://"):
            raise ValueError("redis.ssl_ca_certs is set but redis.url is not rediss:// (TLS)")
        return self


class FlowSettings(Section):
    """Bytewax execution."""

    epoch_interval_seconds: float = Field(default=2.0, gt=0)
    source_batch_size: int = Field(default=500, ge=1)
    dedupe_seconds: int = Field(
        default=300,
        ge=1,
        description="How long (event time) event ids are remembered to drop duplicates. "
        "Re-deliveries (feed reconnects, at-least-once replays) come within seconds; a post "
        "repeated later still replaces itself in its window, only a late repeated interaction "
        "counts twice. Memory: ~250 bytes per id, e.g. 75 MB at 1,000 events/s.",
    )
    shared_files: bool = Field(
        default=False,
        description="In a cluster, every process sees the same JSONL files under the same "
        "names (one machine, or shared storage): the process that hosts the graph stage then "
        "reads none of them and the others read them all. Off: each process reads the files "
        "it finds, as hosts with files of their own must. Network inputs (Redis streams, "
        "Jetstream, Mastodon) are always kept off the graph's process.",
    )
