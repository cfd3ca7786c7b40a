"""The notifier's Redis: its consumer group on `{prefix}alerts`, delivered markers, dead letters.

Keys (all under the run's prefix):
- `{prefix}alerts`, group `notify.group`: one entry per lifecycle event, XACKed once every
  destination is done with it (delivered, dead-lettered or not its business).
- `{prefix}notify:delivered:{destination}:{event_id}`: "sent" after a 2xx, "dead" when the event
  went to the dead letters; expires after `notify.delivered_ttl_seconds`. A redelivered entry
  whose marker exists is not sent again.
- `{prefix}notify:dlq`: dead letters, fields destination, event, status, reason (+ event_id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ResponseError

from connectors.redis_client import alerts_key, key

log = logging.getLogger(__name__)

PENDING_PAGE = 1_000
HEARTBEAT_CHUNK = 500

# KEYS: 1 alerts stream. ARGV: 1 group, 2 consumer, 3.. entry ids.
# Resets the idle time of the entries still owned by this consumer (XCLAIM ... JUSTID does not
# count a delivery) and returns them; an entry another consumer took over is left alone, so a
# notifier that was paused past claim_idle_seconds never steals its work back.
_HEARTBEAT = """
local mine = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    mine[#mine + 1] = ARGV[i]
  end
end
if #mine > 0 then
  local args = {KEYS[1], ARGV[1], ARGV[2], 0}
  for _, id in ipairs(mine) do args[#args + 1] = id end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return mine
"""


# Alerts trimmed from the stream before the group read them (0 nearly always; -1: some, Redis
# cannot say how many). Trimming drops the oldest entries: when the first entry left is newer
# than the last one the group was given, everything between was never read; of what was ever
# added the group read `entries-read` and the stream holds `length`, all of them unread then.
# Redis does not move `entries-read` over such a gap, so it is moved here (XGROUP SETID ...
# ENTRIESREAD): a gap is counted once, by one notifier, and the group's lag is known. Redis 7
# and newer: before it streams keep no such counts, and nothing is said.
_TRIMMED_UNREAD = """
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
if not ok then return 0 end
local stream = {}
for i = 1, #info, 2 do stream[info[i]] = info[i + 1] end
local group
for _, row in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = {}
  for i = 1, #row, 2 do g[row[i]] = row[i + 1] end
  if g['name'] == ARGV[1] then group = g end
end
if not group then return 0 end
local function not_after(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq <= bseq)
end
local delivered = group['last-delivered-id']
local first = stream['first-entry']
if first then
  if not_after(first[1], delivered) then return 0 end
elseif not_after(stream['last-generated-id'], delivered) then
  return 0
end
if not stream['entries-added'] then return 0 end  -- Redis 6 keeps no counts: cannot tell
local read = group['entries-read']
if not read and delivered ~= '0-0' then return -1 end
read = read or 0
local lost = stream['entries-added'] - read - stream['length']
if lost <= 0 then return 0 end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], delivered, 'ENTRIESREAD', read + lost)
return lost
"""


# The group at the stream's end, its read counter at what was ever added (one script: no entry
# can be added between the count and the creation).
_CREATE_AT_END = """
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
local added = 0
if ok then
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
  end
end
return redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM', 'ENTRIESREAD', added)
"""


def delivered_key(prefix: str, destination: str, event_id: str) -> str:
    """The marker saying `destination` is done with event `event_id`."""
    return key(prefix, "notify", "delivered", destination, event_id)


def notify_dlq_key(prefix: str) -> str:
    """The notifier's dead-letter stream."""
    return key(prefix, "notify", "dlq")


def _entries(reply: Any) -> list[tuple[str, Any]]:
    """An XREADGROUP reply's entries of its one stream, ids as text."""
    return [
        (entry_id.decode(), fields) for _, entries in reply or [] for entry_id, fields in entries
    ]


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (stream order)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Pending:
    entry_id: str
    consumer: str


class NotifyStore:
    """Every Redis command the notifier issues, one pipeline per batch where there are many."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        group: str,
        consumer: str,
        delivered_ttl_seconds: int,
        dlq_maxlen: int,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.stream = alerts_key(prefix)
        self.group = group
        self.consumer = consumer
        self.ttl = delivered_ttl_seconds
        self.dlq_maxlen = dlq_maxlen
        self._heartbeat = client.register_script(_HEARTBEAT)

    # -- the group ---------------------------------------------------------------------------

    def ensure_group(self, start_from: str) -> bool:
        """Create the group (and the stream) unless it exists; True when it was created.

        "oldest" starts at `0`: alerts written before the first notifier started are delivered.
        "new" starts at `$`. An existing group keeps its position either way.
        """
        try:
            if start_from == "oldest":
                self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            else:
                self._create_at_end()
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise
        return True

    def _create_at_end(self) -> None:
        """The group at `$` with its read counter set (Redis 7): created plainly, Redis leaves
        it unknown until the first read, and a trim before that could not be counted."""
        try:
            self.client.eval(_CREATE_AT_END, 1, self.stream, self.group)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                raise
            # Redis 6 has no ENTRIESREAD (nor counts to keep)
            self.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)

    def own_pending(self) -> list[tuple[str, Any]]:
        """This consumer's own pending entries (a stable consumer name's unfinished work)."""
        return _entries(self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}))

    def read_new(self, count: int | None, block_ms: int) -> tuple[list[tuple[str, Any]], int]:
        """New entries for this consumer, and how many entries the stream's trimming removed
        before the group read them (-1: some, but Redis cannot say how many; 0 nearly always).

        The check (`_TRIMMED_UNREAD`) runs in the read's own round trip, just before it: once
        the read moves the group past the first surviving entry, a gap can no longer be seen.
        """
        pipe = self.client.pipeline(transaction=False)
        # EVAL, not a registered script: redis-py would ask SCRIPT EXISTS before every pipeline
        # (a round trip per read), and a NOSCRIPT after a Redis restart would come after the
        # read had already moved past the gap.
        pipe.eval(_TRIMMED_UNREAD, 1, self.stream, self.group)
        pipe.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        trimmed, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply  # e.g. NOGROUP: the caller creates the group again
        return _entries(reply), trimmed if isinstance(trimmed, int) else 0

    def autoclaim(self, min_idle_ms: int, count: int) -> tuple[list[tuple[str, Any]], list[str]]:
        """Entries other consumers have not touched for `min_idle_ms`, now ours; plus the ids of
        pending entries whose content was trimmed from the stream (Redis drops them)."""
        claimed: list[tuple[str, Any]] = []
        deleted: list[str] = []
        cursor = "0-0"
        while len(claimed) < count:
            reply = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=min_idle_ms,
                start_id=cursor,
                count=count - len(claimed),
            )
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            for entry_id, fields in reply[1]:
                if fields is None:
                    deleted.append(entry_id.decode())
                else:
                    claimed.append((entry_id.decode(), fields))
            if len(reply) > 2:
                deleted.extend(d.decode() for d in reply[2])
            if cursor == "0-0":
                break
        return claimed, deleted

    def heartbeat(self, entry_ids: Sequence[str]) -> set[str]:
        """Keep this consumer's entries from looking dead; returns those still ours."""
        mine: set[str] = set()
        for i in range(0, len(entry_ids), HEARTBEAT_CHUNK):
            chunk = entry_ids[i : i + HEARTBEAT_CHUNK]
            kept = self._heartbeat(
                keys=[self.stream], args=[self.group, self.consumer, *chunk], client=self.client
            )
            mine.update(k.decode() if isinstance(k, bytes) else str(k) for k in kept)
        return mine

    def pending_counts(self) -> tuple[int, int]:
        """The group's pending entries in all, and those other consumers hold (the XPENDING
        summary: one cheap call instead of the whole list)."""
        summary = self.client.xpending(self.stream, self.group)
        others = 0
        for row in summary.get("consumers") or []:
            name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
            if name != self.consumer:
                others += int(row["pending"])
        return int(summary.get("pending") or 0), others

    def pending(self) -> list[Pending]:
        """The group's whole pending list (every consumer), in stream order."""
        out: list[Pending] = []
        start = "-"
        while True:
            page = self.client.xpending_range(
                self.stream, self.group, min=start, max="+", count=PENDING_PAGE
            )
            for row in page:
                out.append(Pending(row["message_id"].decode(), row["consumer"].decode()))
            if len(page) < PENDING_PAGE:
                return out
            start = "(" + out[-1].entry_id

    def fetch(self, entry_ids: Sequence[str]) -> dict[str, Any]:
        """The fields of these entries (missing: trimmed from the stream)."""
        if not entry_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xrange(self.stream, min=entry_id, max=entry_id, count=1)
        out: dict[str, Any] = {}
        for entry_id, rows in zip(entry_ids, pipe.execute(), strict=True):
            if rows:
                out[entry_id] = rows[0][1]
        return out

    def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            self.client.xack(self.stream, self.group, *entry_ids)

    def forget_idle_consumers(self, idle_ms: int) -> list[str]:
        """Delete consumers of the group that hold nothing and were idle for `idle_ms` (every
        notifier start adds a consumer name; dead ones would pile up)."""
        gone: list[str] = []
        for info in self.client.xinfo_consumers(self.stream, self.group):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name != self.consumer and info["pending"] == 0 and info["idle"] >= idle_ms:
                self.client.xgroup_delconsumer(self.stream, self.group, name)
                gone.append(name)
        return gone

    # -- markers and dead letters ------------------------------------------------------------

    def done(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (destination, event_id) pairs have a delivered (or dead-lettered) marker."""
        pairs = list(pairs)
        if not pairs:
            return set()
        values = self.client.mget([delivered_key(self.prefix, d, e) for d, e in pairs])
        return {pair for pair, value in zip(pairs, values, strict=True) if value is not None}

    def mark_delivered(self, destination: str, event_id: str) -> None:
        self.client.set(delivered_key(self.prefix, destination, event_id), b"sent", ex=self.ttl)

    def dead_letter_count(self) -> int:
        """How many dead letters wait in `{prefix}notify:dlq`."""
        return int(self.client.xlen(notify_dlq_key(self.prefix)))

    def dead_letter(
        self,
        destination: str,
        event_id: str,
        event: bytes,
        status: str,
        reason: str,
        ack_entry: str | None = None,
    ) -> None:
        """The dead letter and the destination's done marker (or, for an unreadable entry, its
        ack) atomically (MULTI): a crash between them can neither lose the letter nor write it
        twice on the retry."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            notify_dlq_key(self.prefix),
            {
                "destination": destination,
                "event": event,
                "status": status,
                "reason": reason,
                "event_id": event_id,
            },
            maxlen=self.dlq_maxlen,
            approximate=True,
        )
        if destination != "*":
            pipe.set(delivered_key(self.prefix, destination, event_id), b"dead", ex=self.ttl)
        if ack_entry is not None:
            pipe.xack(self.stream, self.group, ack_entry)
        pipe.execute()
