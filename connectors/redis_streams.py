"""Small Redis stream helpers shared by the connectors and the CLI.

* `ensure_group`, `entries_of`, `entry_id`, `id_key`, `items_of`: consumer groups and reply shapes;
* `push_jsonl`: replay a JSONL file into a stream (`sense-respond replay`);
* `AlertReader`: read the alerts stream as a consumer group (`sense-respond alerts tail`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from redis.exceptions import ResponseError

from connectors.redis_client import alerts_key
from operators.events import DeadLetter

log = logging.getLogger(__name__)

EVENT_FIELD = b"event"
ZERO_ID = "0-0"
Entry = tuple[Any, dict[bytes, bytes]]
"""A stream entry as redis-py returns it: (id, fields); fields are empty for a deleted entry."""

PROCESS_TOKEN = secrets.token_hex(3)
"""Random part of this process's consumer names: a reused pid never reuses a name."""


def default_consumer(worker_index: int | None = None) -> str:
    """`{hostname}-{pid}-{random}` (plus `-{worker_index}`): unique per process and worker."""
    base = f"{socket.gethostname()}-{os.getpid()}-{PROCESS_TOKEN}"
    return base if worker_index is None else f"{base}-{worker_index}"


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable (milliseconds, sequence) pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def ensure_group(client: redis.Redis, stream_key: str, group: str, start_id: str = "0") -> bool:
    """Create consumer group `group` on `stream_key` (and the stream) unless it exists.

    Returns whether it was created. `start_id` "0" reads the stream's history, "$" only new ones.
    """
    try:
        client.xgroup_create(stream_key, group, id=start_id, mkstream=True)
        return True
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def entry_id(raw: bytes | str) -> str:
    """A stream id as str."""
    return raw.decode() if isinstance(raw, bytes) else raw


def entries_of(reply: Any) -> list[Entry]:
    """The entries of a single-stream XREADGROUP reply (RESP2 list or RESP3 dict shape)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        value = next(iter(reply.values()), [])
        # Older redis-py RESP3 parsing wraps the entries in a one-element list.
        if value and isinstance(value[0], list):
            value = value[0]
        return list(value)
    return list(reply[0][1])


def items_of(entries: Sequence[Entry], source: str) -> list[bytes | DeadLetter]:
    """The `event` bytes of stream entries, or a `DeadLetter` for an entry without that field.

    A deleted or trimmed entry (no fields: a pending one read again) yields nothing.
    """
    out: list[bytes | DeadLetter] = []
    for raw_id, fields in entries:
        if not fields:
            continue
        event = fields.get(EVENT_FIELD)
        if event is not None:
            out.append(event)
            continue
        eid = entry_id(raw_id)
        names = ", ".join(sorted(k.decode("utf-8", "replace") for k in fields))
        raw = orjson.dumps(
            {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
        )
        reason = f"stream entry {eid} has no 'event' field (fields: {names})"
        out.append(DeadLetter(reason, raw, datetime.now(UTC), f"{source}#{eid}"))
    return out


# -- replay: JSONL file -> stream ------------------------------------------------------------


def push_jsonl(
    client: redis.Redis,
    stream_key: str,
    lines: Iterable[bytes | str],
    rate: float | None = None,
    maxlen: int | None = None,
    *,
    chunk: int = 500,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """XADD each non-blank line as field `event` of `stream_key`; returns how many were added.

    Lines go out in pipelined chunks. With `rate` (events/s) the chunks shrink to about a tenth
    of a second's worth and are paced so the average rate stays at `rate`. `maxlen` trims the
    stream approximately (MAXLEN ~).
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 events/s")
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    size = chunk if rate is None else max(1, min(chunk, int(rate / 10)))
    sent = 0
    start = time.monotonic()
    pipe = client.pipeline(transaction=False)
    queued = 0

    def flush() -> None:
        nonlocal queued, sent
        if queued:
            pipe.execute()
            sent += queued
            queued = 0
        if rate is not None:
            ahead = start + sent / rate - time.monotonic()
            if ahead > 0:
                sleep(ahead)

    for line in lines:
        data = line.encode() if isinstance(line, str) else line
        data = data.rstrip(b"\r\n")
        if not data.strip():
            continue
        if maxlen is None:
            pipe.xadd(stream_key, {EVENT_FIELD: data})
        else:
            pipe.xadd(stream_key, {EVENT_FIELD: data}, maxlen=maxlen, approximate=True)
        queued += 1
        if queued >= size:
            flush()
    if queued:
        pipe.execute()
        sent += queued
    return sent


# -- on-call: read the alerts stream -------------------------------------------------------------


class AlertReader:
    """Reads `{prefix}alerts` as a consumer group (for `sense-respond alerts tail`).

    Each on-call tool instance is a consumer of `group`; alerts are acknowledged by the caller
    once handled, so an alert shown to nobody stays pending. A new group starts at `start_id`
    ("$": only alerts from now on; "0": everything still in the stream). At the first read, this
    consumer's own pending alerts come first, then alerts other consumers left pending for more
    than `claim_idle_ms`, then new ones (blocking up to `block_ms`; keep it below the client's
    socket timeout).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        group: str | None = None,
        consumer: str | None = None,
        block_ms: int = 1000,
        *,
        start_id: str = "$",
        claim_idle_ms: int = 60_000,
    ) -> None:
        """Join (or create) `group` (default "oncall") on the alerts stream."""
        if block_ms <= 0:
            raise ValueError("block_ms must be > 0")
        self._client = client
        self.key = alerts_key(prefix)
        self.group = group or "oncall"
        self.consumer = consumer or default_consumer()
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._pending_cursor: str | None = "0"
        self._claimed = False
        ensure_group(client, self.key, self.group, start_id=start_id)

    def read(self, count: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Up to `count` alerts as (entry id, parsed CloudEvent), oldest first; may be empty."""
        if self._pending_cursor is not None:
            entries = entries_of(
                self._client.xreadgroup(
                    self.group, self.consumer, {self.key: self._pending_cursor}, count=count
                )
            )
            if entries:
                self._pending_cursor = entry_id(entries[-1][0])
                return self._parse(entries)
            self._pending_cursor = None
        if not self._claimed:
            self._claimed = True
            reply = self._client.xautoclaim(
                self.key, self.group, self.consumer, self._claim_idle_ms, count=count
            )
            claimed = [(eid, fields) for eid, fields in reply[1] if eid is not None]
            if claimed:
                return self._parse(claimed)
        entries = entries_of(
            self._client.xreadgroup(
                self.group, self.consumer, {self.key: ">"}, count=count, block=self._block_ms
            )
        )
        return self._parse(entries)

    def _parse(self, entries: Sequence[Entry]) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        junk: list[str] = []
        for raw_id, fields in entries:
            eid = entry_id(raw_id)
            raw = fields.get(b"alert") if fields else None
            try:
                alert = orjson.loads(raw) if raw is not None else None
            except orjson.JSONDecodeError:
                alert = None
            if isinstance(alert, dict):
                out.append((eid, alert))
            else:
                # Nothing to show; acknowledged so it does not come back at every start.
                log.warning("skipping alerts entry %s: no JSON object in field 'alert'", eid)
                junk.append(eid)
        if junk:
            self.ack(junk)
        return out

    def ack(self, entry_ids: Iterable[str]) -> int:
        """Acknowledge handled alerts; returns how many were pending."""
        ids = list(entry_ids)
        if not ids:
            return 0
        return int(self._client.xack(self.key, self.group, *ids))
