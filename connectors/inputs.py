"""`--input SPEC` → a Bytewax source.

| spec | source |
| --- | --- |
| `jsonl:PATH` / `jsonl:-` | bounded JSONL file(s) or stdin (`connectors.files`) |
| `redis:STREAM_KEY` | unbounded Redis stream through a consumer group (`connectors.redis_source`) |
| `jetstream:WSS_URL` | Bluesky Jetstream (`connectors.jetstream`) |
| `mastodon:URL` | Mastodon streaming API (`connectors.mastodon`) |

Every source yields raw lines (bytes, validated by the flow's `parse` step) or records already
validated at the edge (`SocialEvent`, `DeadLetter`, `Withdrawal`, `AccountPurge`). With Bytewax
recovery on, a Redis stream is read by one resumable partition (`make_source(resumable=True)`).
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
    spec: str, settings: Settings, redis_url: str | None, *, resumable: bool = False
) -> Source:
    """Build the source named by an input spec.

    `resumable`: the run has Bytewax recovery on. A Redis stream is then read by one
    snapshotted partition (`ResumableRedisStreamSource`) so a resumed run re-reads what followed
    the restored snapshot; without it every worker is a consumer of the group. The other
    sources are the same either way.
    """
    scheme, rest = split_spec(spec)
    batch = settings.flow.source_batch_size
    if scheme == "jsonl":
        from connectors.files import JsonlSource

        return JsonlSource(rest, batch_size=batch)
    if scheme == "redis":
        from connectors.redis_source import RedisStreamSource, ResumableRedisStreamSource

        if redis_url is None:
            raise ValueError("--input redis:KEY needs a Redis URL")
        if resumable:
            return ResumableRedisStreamSource(redis_url, rest, settings.redis, batch_size=batch)
        return RedisStreamSource(redis_url, rest, settings.redis, batch_size=batch)
    if scheme == "jetstream":
        from connectors.jetstream import JetstreamSource

        return JetstreamSource(rest, settings.jetstream, batch_size=batch)
    from connectors.mastodon import MastodonSource

    return MastodonSource(rest, settings.mastodon, batch_size=batch)
