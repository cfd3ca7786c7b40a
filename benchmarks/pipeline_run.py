"""One whole-pipeline run of a JSONL file into Redis, timed, for the listening benchmarks."""

from __future__ import annotations

import gc
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from bytewax.testing import run_main

from config.settings import Settings
from connectors.redis_client import make_client
from flows.pipeline import build_flow


@dataclass(frozen=True)
class RunResult:
    seconds: float
    alerts: list[dict]
    customer_views: int


def run_pipeline(path: Path, url: str, **settings: object) -> RunResult:
    """`sense-respond run` on `path` in this process (one worker), under a fresh key prefix that
    is deleted afterwards; the alerts and the number of customer views it left in Redis."""
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
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
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.unlink(*keys[i : i + 500])
    finally:
        client.close()
    return RunResult(elapsed, alerts, views)
