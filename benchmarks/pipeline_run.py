"""Whole-pipeline runs of a JSONL file into Redis, for the benchmarks: one run in this process,
timed, and what a run as a child process needs (its config, command line and environment), with
the cleanup of a run's keys either way."""

from __future__ import annotations

import gc
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis
from bytewax.testing import run_main

from config.runtime import RedisSettings
from config.settings import Settings
from connectors.redis_client import make_client
from flows.pipeline import build_flow


@dataclass(frozen=True)
class RunResult:
    seconds: float
    alerts: list[dict]
    customer_views: int


def fresh_prefix() -> str:
    """A key prefix of its own for one run, so that its keys can be read and deleted alone."""
    return f"bench:{uuid.uuid4().hex[:8]}:"


def delete_keys(client: redis.Redis, prefix: str) -> None:
    """Every key under `prefix`."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.unlink(*keys[i : i + 500])


def drop_run(url: str, prefix: str) -> None:
    """Every key a finished run left under `prefix` in the Redis at `url`."""
    # A run at scale leaves millions of keys: one batch may outlast a usual command's timeout.
    client = make_client(url, RedisSettings(), socket_timeout=10)
    try:
        delete_keys(client, prefix)
    finally:
        client.close()


def write_config(path: Path, brands: list[str]) -> Path:
    """A config file for a child run that listens for `brands` (none: every post scored)."""
    path.write_bytes(b"brand_accounts = " + orjson.dumps(brands) + b"\n")
    return path


def run_command(config: Path, source: str, url: str, prefix: str) -> list[str]:
    """The command line of `sense-respond run` with `config` on the input `source`, into Redis
    at `url` under `prefix`."""
    return [sys.executable, "-m", "sense_respond", "run", "--config", str(config),
            "--input", source, "--redis-url", url, "--prefix", prefix]  # fmt: skip


def child_env() -> dict[str, str]:
    """This process's environment without its SR_ settings: a child run is configured by its
    config file and command line alone."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SR_")}


def run_pipeline(path: Path, url: str, **settings: object) -> RunResult:
    """`sense-respond run` on `path` in this process (one worker), under a fresh key prefix that
    is deleted afterwards; the alerts and the number of customer views it left in Redis."""
    prefix = fresh_prefix()
    s = Settings(input=f"jsonl:{path}", **settings).with_redis_url(url)  # type: ignore[arg-type]
    s = s.model_copy(update={"redis": s.redis.model_copy(update={"prefix": prefix})})
    flow = build_flow(s)
    gc.collect()
    start = time.perf_counter()
    run_main(flow)
    elapsed = time.perf_counter() - start
    client = make_client(url, s.redis)
    try:
        alerts = [orjson.loads(f[b"alert"]) for _, f in client.xrange(f"{prefix}alerts")]
        views = sum(1 for _ in client.scan_iter(match=f"{prefix}customer:*", count=1000))
        delete_keys(client, prefix)
    finally:
        client.close()
    return RunResult(elapsed, alerts, views)
