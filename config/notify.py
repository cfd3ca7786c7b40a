"""Responding: incident routing ([[routes]]) and the notifier's destinations ([notify])."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Severity = Literal["warning", "critical"]


class RouteSettings(_Section):
    """One routing rule: checked in order, the first match wins unless `continue` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(default=None, description="Shown in data.routing.route.")
    team: str = Field(min_length=1)
    any_words: list[str] = Field(default_factory=list, description="Any of these in the evidence.")
    regex: str | None = Field(default=None, description="A regular expression over the evidence.")
    severity: list[Severity] = Field(default_factory=list, description="Empty: any severity.")
    platforms: list[str] = Field(default_factory=list, description="Empty: any platform.")
    min_followers: int | None = Field(default=None, ge=0)
    continue_: bool = Field(default=False, alias="continue")


class DestinationSettings(_Section):
    """Where the notifier pushes lifecycle events."""

    name: str = Field(min_length=1, description="Unique among destinations.")
    type: Literal["pagerduty", "slack", "webhook"]
    url: SecretStr
    routing_key: SecretStr | None = Field(default=None, description="PagerDuty integration key.")
    secret: SecretStr | None = Field(default=None, description="Standard Webhooks secret whsec_...")
    teams: list[str] = Field(default_factory=list, description="Empty: every team.")
    min_severity: Severity = "warning"
    max_per_second: float | None = Field(default=None, gt=0)


class NotifySettings(_Section):
    """The notifier process (`sense-respond notify`)."""

    group: str = Field(default="notifier", min_length=1)
    default_team: str = Field(default="service", min_length=1)
    max_attempts: int = Field(default=8, ge=1)
    max_retry_seconds: float = Field(default=600, gt=0)
    start_from: Literal["oldest", "new"] = "oldest"
    destinations: list[DestinationSettings] = Field(default_factory=list)
