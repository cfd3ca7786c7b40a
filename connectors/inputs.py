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
on the same recovery directory continues from those snapshots (each partition looks at
`shutdown.requested()` before every batch).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bytewax.inputs import Source

from config.settings import Settings

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
    if scheme == "jsonl":
        from connectors.files import JsonlSource

        return JsonlSource(rest, batch_size=batch)
    if scheme == "jetstream":
        from connectors.jetstream import JetstreamSource

        return JetstreamSource(rest, settings.jetstream, batch_size=batch)
    from connectors.mastodon import MastodonSource

    return MastodonSource(rest, settings.mastodon, batch_size=batch)
