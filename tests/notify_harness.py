"""Running a notifier for tests: settings with fast retries, in a thread or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from config.settings import Settings
from connectors.notify.service import Notifier, make_notifier_client
from tests.notify_fixtures import WEBHOOK_SECRET

FAST: dict[str, Any] = {
    "retry_initial_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "claim_idle_seconds": 0.5,
    "timeout_seconds": 5.0,
}


def pagerduty(name: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "pagerduty", "url": url, "routing_key": "R0UTINGKEY", **kw}


def slack(name: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "slack", "url": url, "max_per_second": 50.0, **kw}


def webhook(name: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "webhook", "url": url, "secret": WEBHOOK_SECRET, **kw}


def notify_settings(
    redis_url: str, prefix: str, destinations: list[dict[str, Any]], **notify: Any
) -> Settings:
    return Settings(
        redis={"url": redis_url, "prefix": prefix},
        notify={**FAST, **notify, "destinations": destinations},
    )


@contextlib.contextmanager
def running(settings: Settings, block_ms: int = 200) -> Iterator[Notifier]:
    """A notifier in a thread of this process; stopped (cleanly) at the end."""
    client = make_notifier_client(settings)
    notifier = Notifier(settings, client, block_ms=block_ms)
    errors: list[BaseException] = []

    def main() -> None:
        try:
            notifier.run()
        except BaseException as exc:  # surfaced in the test
            errors.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield notifier
    finally:
        notifier.stop()
        thread.join(30)
        client.close()
    assert not thread.is_alive(), "notifier did not stop"
    assert not errors, errors


def pending_count(client: redis.Redis, prefix: str, group: str = "notifier") -> int:
    """Entries of the group not yet acknowledged; -1 while the group does not exist."""
    try:
        return client.xpending(f"{prefix}alerts", group)["pending"]
    except redis.ResponseError:
        return -1


def drained(client: redis.Redis, prefix: str, group: str = "notifier") -> bool:
    """The group has read every entry of the stream and acknowledged all of them."""
    try:
        groups = client.xinfo_groups(f"{prefix}alerts")
    except redis.ResponseError:
        return False
    for info in groups:
        if info["name"].decode() == group:
            return info["pending"] == 0 and info.get("lag") == 0
    return False


def dead_letters(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    rows = client.xrange(f"{prefix}notify:dlq")
    return [{k.decode(): v for k, v in fields.items()} for _, fields in rows]


def write_config(
    path: Path, redis_url: str, prefix: str, destinations: list[dict[str, Any]], **notify: Any
) -> Path:
    """A TOML file for `sense-respond notify --config`."""
    lines = ["[redis]", f'url = "{redis_url}"', f'prefix = "{prefix}"', "", "[notify]"]
    for key, value in {**FAST, **notify}.items():
        lines.append(f"{key} = {_toml(value)}")
    for dest in destinations:
        lines += ["", "[[notify.destinations]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in dest.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def spawn_notifier(config: Path, crash: str | None = None, *extra: str) -> subprocess.Popen:
    """`sense-respond notify --config FILE` as a subprocess (stderr to a file next to config)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SR_")}
    env.pop("SENSE_RESPOND_NOTIFY_CRASH", None)
    if crash:
        env["SENSE_RESPOND_NOTIFY_CRASH"] = crash
    log = open(config.with_suffix(f".{len(list(config.parent.glob('*.log')))}.log"), "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "sense_respond", "notify", "--config", str(config), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
