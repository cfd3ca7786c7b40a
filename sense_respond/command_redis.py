"""What the commands that talk to Redis start from: their settings and a Redis they can use.

Settings come from the flags (`--config`, `--redis-url`, `--prefix`, `--input`) over the
environment and the config file; `usable_redis` checks the configured Redis answers before
anything runs against it, or starts an embedded one when none is configured. `say` and
`say_error` print the status lines a command reports on (to stderr; JSON with `--log-format
json`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from config.settings import Settings, load_settings
from sense_respond import logs

log = logging.getLogger("sense_respond")


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """The command's settings: its flags (and `extra`) over the environment over `--config`."""
    redis: dict[str, Any] = {}
    if getattr(args, "redis_url", None):
        warn_if_password(args.redis_url)
        redis["url"] = args.redis_url
    if getattr(args, "prefix", None):
        redis["prefix"] = args.prefix
    overrides: dict[str, Any] = {"input": getattr(args, "input", None), **extra}
    if redis:
        overrides["redis"] = redis
    return load_settings(getattr(args, "config", None), overrides)


def warn_if_password(url: str) -> None:
    """A password on the command line is visible to every local user (`ps`, /proc/PID/cmdline)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        has_password = parts.password is not None or "password=" in parts.query.lower()
    except ValueError:
        has_password = "@" in url
    if has_password:
        log.warning(
            "--redis-url holds a password, which other local users can read in `ps`: put the URL"
            " in SR_REDIS__URL, or in a file named by SR_REDIS__URL_FILE, instead"
        )


@contextlib.contextmanager
def usable_redis(settings: Settings, quiet: bool = False) -> Iterator[Settings]:
    """Settings with a usable Redis URL: the configured one, else an embedded server."""
    from connectors.embedded_redis import resolve_redis_url
    from connectors.redis_client import redacted_url

    configured = settings.redis.url.get_secret_value() if settings.redis.url else None
    url, embedded = resolve_redis_url(configured)
    try:
        if embedded is None:
            _check_reachable(url, settings)
        if embedded is not None and not quiet:
            say(
                "no Redis URL configured: started an embedded Redis at"
                f" {redacted_url(url)} for this run (password-protected, this run only)"
            )
        elif not quiet:
            say(f"Redis: {redacted_url(url)}  prefix: {settings.redis.prefix}")
        yield settings.with_redis_url(url)
    finally:
        if embedded is not None:
            embedded.stop()


class RedisUnavailable(RuntimeError):
    """The configured Redis does not answer (reported without a traceback)."""


def _check_reachable(url: str, settings: Settings) -> None:
    """Fail fast, with the reason, before any flow starts against a Redis that is not there."""
    from redis.exceptions import RedisError

    from connectors.redis_client import make_client, redacted_url

    client = make_client(url, settings.redis.model_copy(update={"retries": 0}))
    try:
        client.ping()
    except RedisError as exc:
        raise RedisUnavailable(f"cannot use Redis at {redacted_url(url)}: {exc}") from None
    finally:
        client.close()


def say(message: str) -> None:
    """A status line for whoever runs the command."""
    logs.status(message)


def say_error(message: str) -> None:
    """The line a failed run ends with (level ERROR in JSON logs)."""
    logs.status(message, logging.ERROR)


def open_client(settings: Settings) -> Any:
    """A Redis client for the settings' URL (which the caller has resolved)."""
    from connectors.redis_client import make_client

    assert settings.redis.url is not None
    return make_client(settings.redis.url.get_secret_value(), settings.redis)
