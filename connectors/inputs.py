"""`--input SPEC` → a Bytewax source.

| spec | source |
| --- | --- |
| `jsonl:PATH` / `jsonl:-` | bounded JSONL file(s) or stdin (`connectors.files`) |
| `redis:STREAM_KEY` | unbounded Redis stream through a consumer group (`connectors.redis_source`) |
| `jetstream:WSS_URL` | Bluesky Jetstream (`connectors.jetstream`) |
| `mastodon:URL` | Mastodon streaming API (`connectors.mastodon`) |

Every source yields raw lines (bytes, validated by the flow's `parse` step) or records already
validated at the edge (`SocialEvent`, `DeadLetter`, `Withdrawal`, `AccountPurge`).

Every source ends its partitions when the process is asked to stop (`connectors.shutdown`,
SIGTERM/SIGINT): the dataflow then drains, closes its last epoch and snapshots it, and a restart
on the same recovery directory continues from those snapshots. The Redis source does this
itself (it must seal its last entries first); the others are wrapped in `Stoppable`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bytewax.inputs import FixedPartitionedSource, Source, StatefulSourcePartition

from config.settings import Settings
from connectors import shutdown

SCHEMES = ("jsonl", "redis", "jetstream", "mastodon")


def split_spec(spec: str) -> tuple[str, str]:
    """`scheme:rest` → (scheme, rest); a bare path means `jsonl:PATH`."""
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        return "jsonl", spec
    if not rest:
        raise ValueError(f"input spec {spec!r} names no {scheme} location")
    return scheme, rest


def input_name(spec: str) -> str:
    """The input spec as dead letters name their source: URLs without credentials or query."""
    scheme, rest = split_spec(spec)
    if scheme in ("jetstream", "mastodon"):
        parts = urlsplit(rest)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{scheme}:{parts.scheme}://{host}{port}{parts.path}"
    return f"{scheme}:{rest}"


class _StoppablePartition(StatefulSourcePartition[Any, Any]):
    """A partition that ends (EOF) once a stop is requested; its snapshot stays its own."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any]) -> None:
        self.inner = inner

    def next_batch(self) -> Any:
        if shutdown.requested():
            raise StopIteration
        return self.inner.next_batch()

    def next_awake(self) -> datetime | None:
        return self.inner.next_awake()

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()


class Stoppable(FixedPartitionedSource[Any, Any]):
    """`source` whose partitions end when the process is asked to stop.

    Attributes other than the source interface are the wrapped source's.
    """

    def __init__(self, source: FixedPartitionedSource[Any, Any]) -> None:
        self.inner = source

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        return _StoppablePartition(self.inner.build_part(step_id, for_part, resume_state))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def make_source(
    spec: str,
    settings: Settings,
    redis_url: str | None,
    *,
    resumable: bool = False,
    workers: int = 1,
) -> Source:
    """Build the source named by an input spec.

    `workers`: workers in the whole run (per process x processes): a Redis stream is read by
    that many consumers, one partition each. `resumable` (Bytewax recovery on) changes nothing
    any more: every source snapshots its position either way.
    """
    del resumable
    scheme, rest = split_spec(spec)
    batch = settings.flow.source_batch_size
    if scheme == "redis":
        from connectors.redis_source import RedisStreamSource

        if redis_url is None:
            raise ValueError("--input redis:KEY needs a Redis URL")
        return RedisStreamSource(
            redis_url,
            rest,
            settings.redis,
            batch_size=batch,
            partitions=workers,
            input_name=input_name(spec),
        )
    source: FixedPartitionedSource[Any, Any]
    if scheme == "jsonl":
        from connectors.files import JsonlSource

        source = JsonlSource(rest, batch_size=batch)
    elif scheme == "jetstream":
        from connectors.jetstream import JetstreamSource

        source = JetstreamSource(rest, settings.jetstream, batch_size=batch)
    else:
        from connectors.mastodon import MastodonSource

        source = MastodonSource(rest, settings.mastodon, batch_size=batch)
    return Stoppable(source)


def bytewax_run_workers(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    """Workers in the whole run that `python -m bytewax.run ARGS` starts (`-w`, `-a`, or
    their `BYTEWAX_` variables)."""
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "-w", "--workers-per-process", type=int,
        default=int(env.get("BYTEWAX_WORKERS_PER_PROCESS") or 1),
    )  # fmt: skip
    parser.add_argument("-a", "--addresses", default=env.get("BYTEWAX_ADDRESSES"))
    known, _ = parser.parse_known_args(argv)
    processes = len(known.addresses.split(";")) if known.addresses else 1
    return max(1, known.workers_per_process) * processes
