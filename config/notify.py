"""Responding: incident routing ([[routes]]) and the notifier's destinations ([notify])."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from config.section import Section

Severity = Literal["warning", "critical"]


TEAM_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Team names end up in channel names (`{prefix}alerts:team:{team}`) and metric labels."""


class RouteSettings(Section):
    """One routing rule: checked in order, the first match wins unless `continue` is set.

    Every condition given must hold (none given: the route matches everything). See
    `operators/routing.py` for the exact semantics.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(
        default=None, max_length=100, description="Shown in data.routing.route."
    )
    team: str = Field(pattern=TEAM_PATTERN, description="Letters, digits, _ . - only.")
    any_words: list[str] = Field(
        default_factory=list,
        description="Any of these words or phrases in the evidence (whole words, any case).",
    )
    regex: str | None = Field(
        default=None, description="A Python regular expression searched in the evidence texts."
    )
    severity: list[Severity] = Field(default_factory=list, description="Empty: any severity.")
    platforms: list[str] = Field(default_factory=list, description="Empty: any platform.")
    min_followers: int | None = Field(default=None, ge=0)
    continue_: bool = Field(
        default=False,
        alias="continue",
        description="On a match, also keep checking the routes after this one (more teams).",
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"routes: regex {value!r} is not a valid regular expression ({exc}); it uses"
                r" Python `re` syntax: escape special characters (\( \. \+) or use"
                " any_words for plain words"
            ) from None
        return value

    @field_validator("any_words")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        if any(not w.strip() for w in value):
            raise ValueError("routes: any_words must not contain empty words")
        return value


SLACK_DEFAULT_MAX_PER_SECOND = 1.0
"""Slack's documented rate for incoming webhooks: about one message per second per channel."""

WEBHOOK_SECRET_PREFIX = "whsec_"


class DestinationSettings(Section):
    """Where the notifier pushes lifecycle events.

    `url` is a secret for every type (a Slack webhook URL is a credential, others may carry
    tokens). PagerDuty needs `routing_key`, a webhook needs `secret` (Standard Webhooks:
    `whsec_` + base64 key). `max_per_second` is a token-bucket rate, Slack's default 1.0.
    """

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique among destinations; part of Redis keys and metric labels.",
    )
    type: Literal["pagerduty", "slack", "webhook"]
    url: SecretStr
    routing_key: SecretStr | None = Field(default=None, description="PagerDuty integration key.")
    secret: SecretStr | None = Field(default=None, description="Standard Webhooks secret whsec_...")
    teams: list[str] = Field(default_factory=list, description="Empty: every team.")
    min_severity: Severity = "warning"
    max_per_second: float | None = Field(
        default=None, gt=0, description="Requests per second at most (slack: default 1.0)."
    )

    # A rejected value is never echoed: url, routing_key and secret are credentials.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _slack_rate(cls, data: Any) -> Any:
        slack = isinstance(data, dict) and data.get("type") == "slack"
        if slack and data.get("max_per_second") is None:
            return {**data, "max_per_second": SLACK_DEFAULT_MAX_PER_SECOND}
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The URL itself is never echoed: it may be a credential.
            raise ValueError("url must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _per_type(self) -> DestinationSettings:
        if self.type == "pagerduty":
            if self.routing_key is None or not self.routing_key.get_secret_value().strip():
                raise ValueError(f"destination {self.name!r}: pagerduty needs routing_key")
        elif self.routing_key is not None:
            raise ValueError(f"destination {self.name!r}: routing_key is for pagerduty only")
        if self.type == "webhook":
            if self.secret is None:
                raise ValueError(f"destination {self.name!r}: webhook needs secret (whsec_...)")
            webhook_key(self.secret)  # raises on a malformed secret
        elif self.secret is not None:
            raise ValueError(f"destination {self.name!r}: secret is for webhook only")
        return self


def webhook_key(secret: SecretStr) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`, decoded."""
    raw = secret.get_secret_value()
    if not raw.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError("webhook secret must start with whsec_")
    try:
        key = base64.b64decode(raw[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret after whsec_ must be base64") from None
    if len(key) < 16:
        raise ValueError("webhook secret must decode to at least 16 bytes")
    return key


class NotifySettings(Section):
    """The notifier process (`sense-respond notify`)."""

    group: str = Field(default="notifier", min_length=1)
    default_team: str = Field(default="service", min_length=1)
    max_attempts: int = Field(default=8, ge=1)
    max_retry_seconds: float = Field(default=600, gt=0)
    start_from: Literal["oldest", "new"] = "oldest"
    destinations: list[DestinationSettings] = Field(default_factory=list)
    consumer: str | None = Field(
        default=None,
        description="This process's consumer name in the group; default host-pid-random "
        "(must be unique per process).",
    )
    claim_idle_seconds: float = Field(
        default=60,
        ge=0.5,
        description="Entries a consumer has not touched for this long are taken over "
        "(XAUTOCLAIM): a crashed notifier's in-flight events are delivered by another or by "
        "the restarted one.",
    )
    read_count: int = Field(default=100, ge=1, description="Entries per XREADGROUP.")
    max_in_flight: int = Field(
        default=1_000, ge=1, description="Entries held unacknowledged before reading pauses."
    )
    retry_initial_seconds: float = Field(
        default=1.0, gt=0, description="First retry delay; doubles per attempt (jittered)."
    )
    retry_max_seconds: float = Field(default=60.0, gt=0, description="Cap of one retry delay.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="HTTP timeout per request.")
    max_response_bytes: int = Field(
        default=65_536, ge=1_024, description="Response bodies are read up to this size."
    )
    delivered_ttl_seconds: int = Field(
        default=7 * 86_400, ge=60, description="How long delivered markers are remembered."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> NotifySettings:
        names = [d.name for d in self.destinations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"notify.destinations names must be unique: {dupes}")
        if self.retry_initial_seconds > self.retry_max_seconds:
            raise ValueError("notify.retry_initial_seconds must be <= notify.retry_max_seconds")
        return self
