"""The notifier's pure policies: retry verdicts, Retry-After, backoff budget, token bucket,
destination settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from config.notify import DestinationSettings, NotifySettings
from connectors.notify.policy import RetryPolicy, classify, parse_retry_after
from connectors.rate_limit import TokenBucket

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (None, "retry"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (599, "retry"),
        (400, "reject"),
        (401, "reject"),
        (403, "reject"),
        (404, "reject"),
        (410, "reject"),
        (413, "reject"),
        (301, "reject"),
        (302, "reject"),
        (100, "reject"),
    ],
)
def test_classify(status: int | None, verdict: str) -> None:
    assert classify(status) == verdict


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("nan", None),
        ("soon", None),
        ("Tue, 01 Dec 2026 10:00:30 GMT", 30.0),
        ("Tue, 01 Dec 2026 09:59:00 GMT", 0.0),
        ("Tuesday, 01-Dec-26 10:01:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


POLICY = RetryPolicy(max_attempts=8, max_retry_seconds=600, initial_seconds=1, max_seconds=60)


@pytest.mark.parametrize(
    ("attempt", "jitter", "delay"),
    [
        (1, 0.0, 0.5),
        (1, 0.999, 0.9995),
        (2, 0.0, 1.0),
        (3, 0.5, 3.0),
        (6, 0.0, 16.0),
        (7, 0.0, 30.0),  # 64 capped at 60, halved
        (7, 1.0, 60.0),
    ],
)
def test_backoff_is_capped_exponential_with_equal_jitter(
    attempt: int, jitter: float, delay: float
) -> None:
    assert POLICY.backoff(attempt, jitter) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("attempt", "elapsed", "retry_after", "delay"),
    [
        (1, 0, None, 0.5),
        (1, 0, 5.0, 5.0),  # Retry-After longer than the backoff wins
        (3, 0, 0.1, 2.0),  # shorter: the backoff stands
        (8, 0, None, None),  # max_attempts reached
        (7, 0, None, 30.0),
        (2, 599.5, None, None),  # past max_retry_seconds
        (2, 590, 30.0, None),  # a Retry-After beyond the budget: give up now
        (2, 590, None, 1.0),
    ],
)
def test_next_delay_budget(
    attempt: int, elapsed: float, retry_after: float | None, delay: float | None
) -> None:
    assert POLICY.next_delay(attempt, elapsed, retry_after, jitter=0.0) == delay


def test_token_bucket_schedule_one_per_second() -> None:
    """Requests asked for at these times get these waits: at most 1 per second, no burst."""
    bucket = TokenBucket(rate=1.0, now=0.0)
    asked = [0.0, 0.0, 0.0, 5.0, 5.2, 7.0]
    waits = [0.0, 1.0, 2.0, 0.0, 0.8, 0.0]
    assert [bucket.reserve(t) for t in asked] == pytest.approx(waits)


def test_token_bucket_rate_and_burst() -> None:
    bucket = TokenBucket(rate=4.0, burst=2, now=0.0)
    waits = [bucket.reserve(0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75])


def test_token_bucket_wait_time_does_not_take() -> None:
    bucket = TokenBucket(rate=2.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.wait_time(0.1) == pytest.approx(0.4)
    assert bucket.wait_time(0.1) == pytest.approx(0.4)
    assert bucket.wait_time(0.6) == 0.0


def test_token_bucket_pause_until_retry_after() -> None:
    bucket = TokenBucket(rate=1.0, now=0.0)
    bucket.reserve(0.0)
    bucket.pause_until(10.0)  # a 429 said "Retry-After: 10" at t=0
    assert bucket.wait_time(3.0) == pytest.approx(7.0)
    assert bucket.reserve(10.0) == pytest.approx(0.0)
    assert bucket.reserve(10.0) == pytest.approx(1.0)


SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"type": "pagerduty", "url": "https://events.pagerduty.com/v2/enqueue"}, "routing_key"),
        (
            {"type": "pagerduty", "url": "https://e.example/v2/enqueue", "routing_key": " "},
            "routing_key",
        ),
        ({"type": "webhook", "url": "https://crm.example/hook"}, "needs secret"),
        ({"type": "webhook", "url": "https://crm.example/hook", "secret": "abc"}, "whsec_"),
        (
            {"type": "webhook", "url": "https://crm.example/hook", "secret": "whsec_!!notb64"},
            "base64",
        ),
        (
            {"type": "webhook", "url": "https://crm.example/hook", "secret": "whsec_YWJj"},
            "16 bytes",
        ),
        ({"type": "slack", "url": "ftp://hooks.slack.com/x"}, "http"),
        ({"type": "slack", "url": "hooks.slack.com/services/T/B/X"}, "http"),
        ({"type": "slack", "url": "https://h/x", "routing_key": "k"}, "pagerduty only"),
        ({"type": "slack", "url": "https://h/x", "secret": SECRET}, "webhook only"),
        ({"type": "slack", "url": "https://h/x", "max_per_second": 0}, "greater than 0"),
        ({"type": "email", "url": "https://h/x"}, "type"),
        ({"type": "slack", "url": "https://h/x", "min_severity": "info"}, "min_severity"),
        ({"type": "slack", "url": "https://h/x", "channel": "#x"}, "Extra inputs"),
    ],
)
def test_destination_validation(fields: dict, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        DestinationSettings(name="d", **fields)


def test_destination_errors_never_echo_the_secret_url() -> None:
    with pytest.raises(ValidationError) as info:
        DestinationSettings(name="d", type="slack", url="ftp://hooks.slack.com/T0/B0/SECRETTOKEN")
    assert "SECRETTOKEN" not in str(info.value)


def test_destination_defaults() -> None:
    slack = DestinationSettings(name="chat", type="slack", url="https://hooks.slack.com/s/T/B/X")
    assert slack.max_per_second == 1.0
    hook = DestinationSettings(
        name="crm", type="webhook", url="https://crm.example/h", secret=SECRET
    )
    assert hook.max_per_second is None and hook.teams == [] and hook.min_severity == "warning"
    assert "whsec" not in repr(hook) and "crm.example" not in repr(hook)


def test_destination_names_unique_and_safe() -> None:
    d = {"type": "slack", "url": "https://h/x"}
    with pytest.raises(ValidationError, match="unique"):
        NotifySettings(destinations=[{"name": "a", **d}, {"name": "a", **d}])
    with pytest.raises(ValidationError, match="pattern"):
        DestinationSettings(name="a b:c", **d)


def test_settings_errors_never_echo_destination_secrets() -> None:
    from config.settings import Settings

    bad = [
        {"name": "d", "type": "pagerduty", "url": "https://e.example/SECRETPATH"},
        {"name": "w", "type": "webhook", "url": "ftp://SECRETHOST", "secret": "whsec_SECRETKEY"},
    ]
    for destination in bad:
        with pytest.raises(ValidationError) as info:
            Settings(notify={"destinations": [destination]})
        assert "SECRET" not in str(info.value)
