"""make_client, redacted_url, ping_url and the key helpers."""

from __future__ import annotations

import pytest

from config.runtime import RedisSettings
from connectors.redis_client import (
    alert_id_key,
    alerts_key,
    customer_key,
    dlq_key,
    key,
    make_client,
    ping_url,
    redacted_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://alice:s3cret@host:6380/2", "rediss://alice:***@host:6380/2"),
        ("redis://s3cret@host/0", "redis://***@host/0"),
        ("redis://host/0?password=s3cret&db=1", "redis://host/0?password=***&db=1"),
        ("unix:///tmp/r.sock?db=0&password=s3cret", "unix:///tmp/r.sock?db=0&password=***"),
    ],
)
def test_redacted_url_hides_passwords(url: str, expected: str) -> None:
    assert redacted_url(url) == expected
    assert "s3cret" not in redacted_url(url)


def test_ping_url(redis_url: str) -> None:
    assert ping_url(redis_url)
    assert not ping_url("redis://127.0.0.1:1/0", timeout=0.2)
    assert not ping_url("not a url")


def test_make_client_is_explicit(redis_url: str, redis_prefix: str) -> None:
    settings = RedisSettings(socket_timeout_seconds=3.0, connect_timeout_seconds=1.5, retries=4)
    client = make_client(redis_url, settings, socket_timeout=7.0)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 7.0
        assert kwargs["socket_connect_timeout"] == 1.5
        assert kwargs["decode_responses"] is False
        assert kwargs["protocol"] == 2
        assert kwargs["health_check_interval"] > 0
        assert kwargs["retry"].get_retries() == 4
        client.set(f"{redis_prefix}k", b"\xff")
        assert client.get(f"{redis_prefix}k") == b"\xff"  # bytes in, bytes out
    finally:
        client.close()


def test_key_names() -> None:
    assert key("sr:", "a", "b") == "sr:a:b"
    assert alerts_key("sr:") == "sr:alerts"
    assert dlq_key("sr:") == "sr:dlq"
    assert customer_key("sr:", "mastodon:42") == "sr:customer:mastodon:42"
    assert alert_id_key("sr:", "abc") == "sr:alert-id:abc"
