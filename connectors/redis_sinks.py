"""Bytewax sinks delivering lifecycle events, customer views and dead letters to Redis.

Delivery is at-least-once from Bytewax (a recovered flow replays the items since its last
snapshot) and made effectively-once for lifecycle events here: each is written by one Lua script
(`ALERT_SCRIPT`) that checks the type of every key it touches first, then writes, and sets the
delivered marker `{prefix}alert-id:{id}` last. A WRONGTYPE therefore fails the event before
anything is written (and names the key), and a replay of a delivered event is counted as a
duplicate and only rewrites the view, as long as it comes within `alert_id_ttl_seconds`. Views
are plain HSETs, idempotent by nature. A dead letter has a deterministic id (a hash of its source,
reason and raw input) remembered in `{prefix}dlq:ids`, so a replay appends it once.

The same script applies silences (a silenced customer's event gets `data.silenced_by` and is not
published on team channels) and reconciles the dataflow with people's actions on the incident
record (later events of an incident a person resolved are suppressed; an escalation reopens it).
`queue_lifecycle` is shared with `sense-respond incidents ack|resolve`.

Keys (`prefix` is `RedisSettings.prefix`; incident keys in `connectors/incident_keys.py`):

* `{prefix}alerts` — stream of lifecycle events, fields `alert` (CloudEvents JSON) and `id`,
  trimmed to about `alerts_maxlen`; the pub/sub channel of the same name carries the same JSON,
  and `{prefix}alerts:team:{team}` too for each of the incident's teams unless silenced.
* `{prefix}customer:{customer_id}` — hash of the latest view, plus `last_alert`,
  `last_alert_id` and `incident` (JSON); expires `view_ttl_seconds` after its last write.
* `{prefix}incident:{id}`, `{prefix}customer:{customer_id}:incidents`, `{prefix}incidents`,
  `{prefix}incidents:open` — the incident record, the customer's history, the index, the open set.
* `{prefix}alert-id:{alert_id}` — delivered-event marker, expires after `alert_id_ttl_seconds`.
* `{prefix}dlq` — stream of dead letters (`reason`, `raw`, `at`, `source`), ~`dlq_maxlen`.
* `{prefix}dlq:ids` — sorted set of the ids of the last ~`dlq_maxlen` dead letters (by time).

Each batch is one non-transactional pipeline (one round trip), run by `connectors.redis_retry`:
while Redis is away the batch is retried (and the flow waits, which is its back-pressure) for up to
`redis.outage_budget_seconds`; a non-transient error or a spent budget stops the run without
marking anything undelivered as delivered. The types of the fixed keys are checked at start.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config.settings import RedisSettings
from connectors.incident_keys import (
    HISTORY_CAP,
    INCIDENT_TTL_SECONDS,
    INDEX_CAP,
    customer_incidents_key,
    customer_silences_key,
    incident_key,
    incidents_index_key,
    open_incidents_key,
    team_channel_prefix,
)
from connectors.redis_client import (
    alert_id_key,
    alerts_key,
    customer_key,
    dlq_ids_key,
    dlq_key,
    make_client,
    redacted_url,
)
from connectors.redis_retry import RedisRetry, check_key_types, load_scripts
from operators.events import DeadLetter
from operators.records import AlertRecord, CustomerGone, CustomerView
from sense_respond.metrics import ALERTS, observe_event_to_alert

log = logging.getLogger(__name__)

# One lifecycle event (firing, acknowledged, resolved), delivered atomically. Redis does not roll
# a script back, so the script first checks every key's type and fails before writing anything;
# after that no command can fail (a write script over maxmemory is refused before it starts).
# The delivered marker is set LAST: a failure leaves nothing marked and a replay delivers once.
#
# KEYS: 1 marker (string), 2 alerts stream, 3 customer view (hash), 4 incident record (hash),
#       5 customer's incident history (zset), 6 incident index (zset), 7 open incidents (set),
#       8 the customer's silences (hash id -> JSON). All are declared for cluster routing; on a
#       cluster they would need one hash tag.
# ARGV: 1 event id, 2 payload, 3 marker ttl, 4 stream maxlen, 5 view ttl, 6 main channel,
#       7 status ('' for a bare alert without incident), 8 incident id, 9 incident ttl,
#       10 opened score, 11 history cap, 12 index cap, 13 activity JSON, 14 note JSON,
#       15 escalation '1'/'0', 16 team channel prefix, 17 team count N, 18..17+N teams,
#       then the record field count M, M record field/value pairs, then view field/value pairs.
# Returns {outcome, silenced}: outcome 1 delivered, 0 duplicate (marker set), 2 suppressed (the
# incident is resolved already: a person resolved it, or a replay after its resolution).
ALERT_SCRIPT = """
local expected = {'string', 'stream', 'hash', 'hash', 'zset', 'zset', 'set', 'hash'}
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= expected[i] then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a '
      .. expected[i] .. ': lifecycle event ' .. ARGV[1] .. ' not delivered, nothing written')
  end
end
local payload = ARGV[2]
local eid, status, iid = ARGV[1], ARGV[7], ARGV[8]
local has_incident = status ~= ''
local n_teams = tonumber(ARGV[17])
local teams = {}
for i = 1, n_teams do teams[i] = ARGV[17 + i] end
local pos = 18 + n_teams
local n_rec = tonumber(ARGV[pos])
pos = pos + 1
local rec = {}
for i = pos, pos + 2 * n_rec - 1 do rec[#rec + 1] = ARGV[i] end
pos = pos + 2 * n_rec
local view = {}
for i = pos, #ARGV do view[#view + 1] = ARGV[i] end

local outcome = 1
if redis.call('EXISTS', KEYS[1]) == 1 then outcome = 0 end
local prior = false
local reopen = false
if has_incident then
  prior = redis.call('HGET', KEYS[4], 'status')
  if outcome == 1 and prior == 'resolved' then
    if status == 'firing' and ARGV[15] == '1'
        and redis.call('HGET', KEYS[4], 'resolved_reason') == 'manual' then
      reopen = true  -- resolved by hand, and now worse than then: it is open again
    else
      outcome = 2
    end
  end
end

local sid, silence = false, false
if outcome == 1 then
  local now = tonumber(redis.call('TIME')[1])
  local best = -1
  local entries = redis.call('HGETALL', KEYS[8])
  for i = 1, #entries, 2 do
    local ok, s = pcall(cjson.decode, entries[i + 1])
    if ok and type(s) == 'table' then
      local ends = tonumber(s['ends_ts']) or 0
      if ends > now and (tonumber(s['starts_ts']) or 0) <= now and ends > best then
        best, sid, silence = ends, entries[i], entries[i + 1]
      end
    end
  end
  -- The end of an incident people were paged for is always pushed: no page stays open.
  if sid and has_incident and status ~= 'firing'
      and tonumber(redis.call('HGET', KEYS[4], 'pushed') or '0') > 0 then
    sid, silence = false, false
  end
  if sid and string.sub(payload, -2) ~= '}}' then
    -- Still before any write: an event the silence cannot be added to is refused whole.
    return redis.error_reply('event ' .. eid .. ' does not end with its data object')
  end
  if sid then
    payload = string.sub(payload, 1, -3) .. ',"silenced_by":' .. cjson.encode(sid)
      .. ',"silence":' .. silence .. '}}'
  end
end

local function append(field, item)
  if item == '' then return end
  local cur = redis.call('HGET', KEYS[4], field)
  if (not cur) or cur == '[]' then
    cur = '[' .. item .. ']'
  else
    cur = string.sub(cur, 1, -2) .. ',' .. item .. ']'
  end
  redis.call('HSET', KEYS[4], field, cur)
end

if outcome == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'alert', payload, 'id', eid)
  redis.call('PUBLISH', ARGV[6], payload)
  if not sid then
    for _, team in ipairs(teams) do redis.call('PUBLISH', ARGV[16] .. team, payload) end
  end
  if has_incident then
    if reopen then
      redis.call('HDEL', KEYS[4], 'resolved_at', 'resolved_reason', 'resolved_by',
        'acknowledged_by', 'acknowledged_at')
      redis.call('HINCRBY', KEYS[4], 'reopened', 1)
    end
    if #rec > 0 then redis.call('HSET', KEYS[4], unpack(rec)) end
    local new_status = status
    if status == 'firing' and prior == 'acknowledged' then new_status = 'acknowledged' end
    redis.call('HSET', KEYS[4], 'status', new_status)
    redis.call('HINCRBY', KEYS[4], 'events', 1)
    if status == 'firing' then redis.call('HINCRBY', KEYS[4], 'firings', 1) end
    if sid then
      redis.call('HSET', KEYS[4], 'silenced_by', sid)
    else
      redis.call('HINCRBY', KEYS[4], 'pushed', 1)
    end
    append('activity', ARGV[13])
    append('notes', ARGV[14])
    redis.call('EXPIRE', KEYS[4], ARGV[9])
    redis.call('ZADD', KEYS[5], ARGV[10], iid)
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(tonumber(ARGV[11]) + 1))
    redis.call('EXPIRE', KEYS[5], ARGV[9])
    redis.call('ZADD', KEYS[6], ARGV[10], iid)
    redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -(tonumber(ARGV[12]) + 1))
    if new_status == 'resolved' then
      redis.call('SREM', KEYS[7], iid)
    else
      redis.call('SADD', KEYS[7], iid)
    end
  end
elseif outcome == 2 then
  redis.call('HINCRBY', KEYS[4], 'suppressed', 1)
  redis.call('HSET', KEYS[4], 'last_suppressed_id', eid)
end

local function incident_json()
  local h = redis.call('HGETALL', KEYS[4])
  local m = {}
  for i = 1, #h, 2 do m[h[i]] = h[i + 1] end
  local parts = {}
  for _, f in ipairs({'id', 'status', 'team', 'severity', 'opened_at', 'updated_at',
      'acknowledged_by', 'acknowledged_at', 'resolved_at', 'resolved_reason', 'resolved_by',
      'silenced_by'}) do
    local v = m[f]
    if v then v = cjson.encode(v) else v = 'null' end
    parts[#parts + 1] = '"' .. f .. '":' .. v
  end
  for _, f in ipairs({'teams', 'notes', 'activity'}) do
    parts[#parts + 1] = '"' .. f .. '":' .. (m[f] or '[]')
  end
  for _, f in ipairs({'firings', 'suppressed', 'reopened'}) do
    parts[#parts + 1] = '"' .. f .. '":' .. tostring(tonumber(m[f] or '0') or 0)
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

if has_incident and redis.call('EXISTS', KEYS[4]) == 1 then
  -- The view shows the customer's newest incident; an older one's late event leaves it alone.
  local newest = redis.call('ZREVRANGE', KEYS[5], 0, 0)[1]
  if (not newest) or newest == iid then
    view[#view + 1] = 'incident'
    view[#view + 1] = incident_json()
  end
end
if status == 'firing' or not has_incident then
  view[#view + 1] = 'last_alert_id'
  view[#view + 1] = eid
  if outcome == 1 then
    view[#view + 1] = 'last_alert'
    view[#view + 1] = payload
  end
end
-- The view is written even for a replayed event: views replayed before it (after a recovery
-- resume) rolled the hash back, and this one is the customer's view at the event's moment.
if #view > 0 then
  redis.call('HSET', KEYS[3], unpack(view))
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
if outcome ~= 0 then
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
end
if sid then return {outcome, 1} end
return {outcome, 0}
"""
ALERT_SCRIPT_SHA = hashlib.sha1(ALERT_SCRIPT.encode()).hexdigest()

# A dead letter is appended once per id: the ids of the last ~maxlen letters are a sorted set (by
# the entry's time), trimmed with the stream, so the memory of ids is as bounded as the stream.
# Key types are checked before any write and the id is recorded last: a failure writes nothing.
# KEYS: 1 dlq stream, 2 ids. ARGV: 1 id, 2 maxlen, 3.. field/value pairs.
DEAD_LETTER_SCRIPT = """
local kinds = {'stream', 'zset'}
for i = 1, 2 do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. found .. ', not a ' .. kinds[i])
  end
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
redis.call('ZADD', KEYS[2], tonumber(string.match(entry, '^(%d+)')), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return 1
"""
DEAD_LETTER_SCRIPT_SHA = hashlib.sha1(DEAD_LETTER_SCRIPT.encode()).hexdigest()

SCRIPTS = {"alert": ALERT_SCRIPT}
"""The alert sink's scripts by name (loaded at start and again after NOSCRIPT)."""
DEAD_LETTER_SCRIPTS = {"dead-letter": DEAD_LETTER_SCRIPT}


def dead_letter_id(letter: DeadLetter) -> str:
    """A dead letter's deterministic id: the same bad input from the same source (with its
    position, where the source names one) always gets the same id, so replays append it once."""
    digest = hashlib.sha256()
    for part in (letter.source.encode(), letter.reason.encode(), letter.raw):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


@dataclass
class DeliveryStats:
    """Counters of what a sink (or one batch) delivered."""

    alerts_new: int = 0
    alerts_duplicate: int = 0
    alerts_suppressed: int = 0
    """Events of incidents already resolved (by a person): recorded on the incident only."""
    alerts_silenced: int = 0
    """Delivered events of silenced customers (recorded, not pushed to teams)."""
    views_written: int = 0
    views_deleted: int = 0
    dead_letters: int = 0
    dead_letters_duplicate: int = 0
    batches: int = 0

    def add(self, other: DeliveryStats) -> None:
        """Add `other`'s counts to these."""
        self.alerts_new += other.alerts_new
        self.alerts_duplicate += other.alerts_duplicate
        self.alerts_suppressed += other.alerts_suppressed
        self.alerts_silenced += other.alerts_silenced
        self.views_written += other.views_written
        self.views_deleted += other.views_deleted
        self.dead_letters += other.dead_letters
        self.dead_letters_duplicate += other.dead_letters_duplicate
        self.batches += other.batches


class _SharedStats:
    """Totals over all partitions of one sink in this process (workers are threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = DeliveryStats()

    def add(self, batch: DeliveryStats) -> None:
        with self._lock:
            self._totals.add(batch)

    def snapshot(self) -> DeliveryStats:
        with self._lock:
            copy = DeliveryStats()
            copy.add(self._totals)
            return copy


def _client_name(kind: str, step_id: str, worker_index: int) -> str:
    # CLIENT SETNAME refuses spaces and newlines.
    return re.sub(r"[^\w.:-]", "_", f"sense-respond:{kind}:{step_id}:{worker_index}")


Delivery = AlertRecord | CustomerView | CustomerGone


def _plan(items: Sequence[Delivery]) -> list[Delivery]:
    """The writes of a batch in order, consecutive views of a customer merged into one.

    Merging the field dicts of views with no alert of that customer in between gives exactly the
    hash that applying the HSETs one by one would, so "the last view wins" field by field.
    """
    ops: list[Delivery] = []
    pending: dict[str, dict[str, bytes]] = {}
    for item in items:
        if isinstance(item, CustomerGone):
            pending.pop(item.customer_id, None)  # views before the deletion are moot
            ops.append(item)
        elif isinstance(item, AlertRecord):
            fields = pending.pop(item.customer_id, None)
            if fields:
                ops.append(CustomerView(item.customer_id, fields))
            ops.append(item)
        elif isinstance(item, CustomerView):
            pending.setdefault(item.customer_id, {}).update(item.fields)
        else:
            raise TypeError(f"AlertSink cannot deliver a {type(item).__name__}")
    ops.extend(CustomerView(cid, fields) for cid, fields in pending.items() if fields)
    return ops


def queue_lifecycle(pipe: Any, event: AlertRecord, settings: RedisSettings) -> None:
    """Queue the delivery script for one lifecycle event on `pipe` (see `ALERT_SCRIPT`).

    The dataflow's sink and the people's commands (`sense-respond incidents ack|resolve`)
    deliver through this one path, so both get the same checks, records and channels.
    """
    prefix = settings.prefix
    inc = event.incident
    iid = inc.incident_id if inc is not None else ""
    argv: list[str | bytes | int | float] = [
        event.alert_id,
        event.payload,
        settings.alert_id_ttl_seconds,
        settings.alerts_maxlen,
        settings.view_ttl_seconds,
        alerts_key(prefix),
        inc.status if inc is not None else "",
        iid,
        INCIDENT_TTL_SECONDS,
        repr(inc.opened_ts) if inc is not None else "0",
        HISTORY_CAP,
        INDEX_CAP,
        (inc.activity or b"") if inc is not None else b"",
        (inc.note or b"") if inc is not None else b"",
        "1" if inc is not None and inc.escalation else "0",
        team_channel_prefix(prefix),
    ]
    teams = inc.teams if inc is not None else ()
    argv.append(len(teams))
    argv.extend(teams)
    record = inc.fields if inc is not None else {}
    argv.append(len(record))
    for name, value in record.items():
        argv.extend((name, value))
    for name, value in event.view.fields.items():
        argv.extend((name, value))
    pipe.evalsha(
        ALERT_SCRIPT_SHA,
        8,
        alert_id_key(prefix, event.alert_id),
        alerts_key(prefix),
        customer_key(prefix, event.customer_id),
        incident_key(prefix, iid or event.alert_id),
        customer_incidents_key(prefix, event.customer_id),
        incidents_index_key(prefix),
        open_incidents_key(prefix),
        customer_silences_key(prefix, event.customer_id),
        *argv,
    )


DELIVERED, DUPLICATE, SUPPRESSED = 1, 0, 2
"""Outcomes of the delivery script."""


def load_script(client: redis.Redis) -> None:
    """SCRIPT LOAD the delivery script (checked against its expected SHA)."""
    sha = client.script_load(ALERT_SCRIPT)
    sha = sha.decode() if isinstance(sha, bytes) else sha
    if sha != ALERT_SCRIPT_SHA:
        raise RuntimeError(f"SCRIPT LOAD returned {sha}, expected {ALERT_SCRIPT_SHA}")


class AlertSinkPartition(StatelessSinkPartition[Delivery]):
    """One worker's connection delivering alerts and views (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        settings: RedisSettings,
        shared: _SharedStats | None = None,
        retry: RedisRetry | None = None,
    ) -> None:
        """Wrap `client` (owned: closed by `close`), check the stream's type, load the script."""
        self._client = client
        self._settings = settings
        self._stream = alerts_key(settings.prefix)
        self._shared = shared
        self._retry = retry or RedisRetry.from_settings(settings.outage_budget_seconds)
        self.stats = DeliveryStats()
        """Totals of this partition since it was built."""
        check_key_types(
            self._retry,
            client,
            {
                self._stream: "stream",
                incidents_index_key(settings.prefix): "zset",
                open_incidents_key(settings.prefix): "set",
            },
        )
        load_scripts(self._retry, client, SCRIPTS)

    def _queue_alert(self, pipe: Any, alert: AlertRecord) -> None:
        queue_lifecycle(pipe, alert, self._settings)

    def _queue(self, pipe: Any, ops: list[Delivery]) -> None:
        prefix, view_ttl = self._settings.prefix, self._settings.view_ttl_seconds
        for op in ops:
            if isinstance(op, AlertRecord):
                self._queue_alert(pipe, op)
            elif isinstance(op, CustomerGone):
                pipe.delete(customer_key(prefix, op.customer_id))
            else:
                key = customer_key(prefix, op.customer_id)
                pipe.hset(key, mapping=op.fields)
                pipe.expire(key, view_ttl)

    def _execute(self, ops: list[Delivery]) -> list[Any]:
        """Run `ops` in one pipeline, through Redis outages; one reply per op."""
        results = self._retry.pipeline(
            self._client, lambda pipe: self._queue(pipe, ops), "alert delivery", SCRIPTS
        )
        replies: list[Any] = []
        it = iter(results)
        for op in ops:
            if isinstance(op, AlertRecord | CustomerGone):
                replies.append(next(it))
            else:
                _hset, expire = next(it), next(it)
                replies.append(expire)
        return replies

    def deliver(self, items: Sequence[Delivery]) -> DeliveryStats:
        """Write one batch in one pipeline; returns what it delivered.

        Blocks while Redis is away (within the outage budget); raises `RedisFailure` when the
        batch cannot be delivered.
        """
        batch = DeliveryStats(batches=1)
        ops = _plan(items)
        if not ops:
            return batch
        replies = self._execute(ops)
        written_ns = time.time_ns()
        for op, reply in zip(ops, replies, strict=True):
            if isinstance(op, AlertRecord):
                outcome, silenced = (int(x) for x in reply)
                if outcome == DELIVERED:
                    batch.alerts_new += 1
                    batch.alerts_silenced += silenced
                    if op.incident is not None and op.incident.status == "firing":
                        ALERTS.labels(op.incident.severity).inc()
                        observe_event_to_alert(op.read_ns, written_ns)
                elif outcome == SUPPRESSED:
                    batch.alerts_suppressed += 1
                else:
                    batch.alerts_duplicate += 1
            elif isinstance(op, CustomerGone):
                batch.views_deleted += 1
            else:
                batch.views_written += 1
        return batch

    def write_batch(self, items: list[Delivery]) -> None:
        """Bytewax entry point: deliver the batch and count it."""
        batch = self.deliver(items)
        self.stats.add(batch)
        if self._shared is not None:
            self._shared.add(batch)
        if batch.alerts_duplicate:
            log.info("suppressed %d duplicate alert(s) (replay)", batch.alerts_duplicate)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class _RedisSink:
    """What both sinks share: where to write, and totals over this process's partitions."""

    def __init__(self, url: str, settings: RedisSettings) -> None:
        """Only remember where to write: each worker connects in `build`."""
        self._url = url
        self._settings = settings
        self._stats = _SharedStats()

    @property
    def stats(self) -> DeliveryStats:
        """Totals over this process's partitions (e.g. for the CLI summary)."""
        return self._stats.snapshot()

    def _connect(self, kind: str, step_id: str, worker_index: int) -> redis.Redis:
        log.debug(
            "%s sink %s worker %d -> %s", kind, step_id, worker_index, redacted_url(self._url)
        )
        # No redis-py retries: connectors.redis_retry waits outages out, within their budget.
        return make_client(
            self._url,
            self._settings,
            client_name=_client_name(kind, step_id, worker_index),
            retries=0,
        )


class AlertSink(_RedisSink, DynamicSink[Delivery]):
    """Delivers `AlertRecord`s (idempotently) and `CustomerView`s; one client per worker."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> AlertSinkPartition:
        """Connect this worker's partition."""
        client = self._connect("alerts", step_id, worker_index)
        return AlertSinkPartition(client, self._settings, self._stats)


class DeadLetterSinkPartition(StatelessSinkPartition[DeadLetter]):
    """One worker's connection appending dead letters to `{prefix}dlq`, each id once."""

    def __init__(
        self,
        client: redis.Redis,
        settings: RedisSettings,
        shared: _SharedStats | None = None,
        retry: RedisRetry | None = None,
    ) -> None:
        """Wrap `client` (owned: closed by `close`), check the key types, load the script."""
        self._client = client
        self._settings = settings
        self._stream = dlq_key(settings.prefix)
        self._ids = dlq_ids_key(settings.prefix)
        self._shared = shared
        self._retry = retry or RedisRetry.from_settings(settings.outage_budget_seconds)
        self.stats = DeliveryStats()
        check_key_types(self._retry, client, {self._stream: "stream", self._ids: "zset"})
        load_scripts(self._retry, client, DEAD_LETTER_SCRIPTS)

    def _queue(self, pipe: Any, items: list[DeadLetter]) -> None:
        maxlen = self._settings.dlq_maxlen
        for item in items:
            argv: list[str | bytes | int] = [dead_letter_id(item), maxlen]
            for name, value in item.fields().items():
                argv.extend((name, value))
            pipe.evalsha(DEAD_LETTER_SCRIPT_SHA, 2, self._stream, self._ids, *argv)

    def write_batch(self, items: list[DeadLetter]) -> None:
        """Append every new dead letter in one pipeline (blocking through Redis outages)."""
        if not items:
            return
        for item in items:
            if not isinstance(item, DeadLetter):
                raise TypeError(f"DeadLetterSink got a {type(item).__name__}, not a DeadLetter")
        replies = self._retry.pipeline(
            self._client,
            lambda pipe: self._queue(pipe, items),
            "dead-letter delivery",
            DEAD_LETTER_SCRIPTS,
        )
        added = sum(int(r) for r in replies)
        batch = DeliveryStats(dead_letters=added, dead_letters_duplicate=len(items) - added)
        batch.batches = 1
        self.stats.add(batch)
        if self._shared is not None:
            self._shared.add(batch)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


class DeadLetterSink(_RedisSink, DynamicSink[DeadLetter]):
    """Appends `DeadLetter`s to the stream `{prefix}dlq`; one client per worker."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> DeadLetterSinkPartition:
        """Connect this worker's partition."""
        client = self._connect("dlq", step_id, worker_index)
        return DeadLetterSinkPartition(client, self._settings, self._stats)
