"""Delivering one lifecycle event (firing, acknowledged, resolved) to Redis, atomically.

Bytewax delivers at least once (a recovered flow replays the items since its last snapshot);
this makes lifecycle events effectively-once: each is written by one Lua script (`ALERT_SCRIPT`)
that checks the type of every key it touches first, then writes, and sets the delivered marker
`{prefix}alert-id:{id}` last. A WRONGTYPE therefore fails the event before anything is written
(and names the key), and a replay of a delivered event is counted as a duplicate and only
rewrites the view, as long as it comes within `alert_id_ttl_seconds`.

The same script applies silences (a silenced customer's event gets `data.silenced_by` and is not
published on team channels) and reconciles the dataflow with people's actions on the incident
record (later events of an incident a person resolved are suppressed; an escalation reopens it).
`queue_lifecycle` is shared by the alert sink (`connectors.redis_sinks`) and
`sense-respond incidents ack|resolve` (`connectors.incident_store`).

Keys (`prefix` is `RedisSettings.prefix`; incident keys in `connectors/incident_keys.py`):

* `{prefix}alerts` — stream of lifecycle events, fields `alert` (CloudEvents JSON) and `id`,
  trimmed to about `alerts_maxlen`; the pub/sub channel of the same name carries the same JSON,
  and `{prefix}alerts:team:{team}` too for each of the incident's teams unless silenced.
* `{prefix}customer:{customer_id}` — hash of the latest view, plus `last_alert`,
  `last_alert_id` and `incident` (JSON); expires `view_ttl_seconds` after its last write.
* `{prefix}incident:{id}`, `{prefix}customer:{customer_id}:incidents`, `{prefix}incidents`,
  `{prefix}incidents:open` — the incident record, the customer's history, the index, the open set.
* `{prefix}alert-id:{alert_id}` — delivered-event marker, expires after `alert_id_ttl_seconds`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis

from config.runtime import RedisSettings
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
from connectors.redis_client import alert_id_key, alerts_key, customer_key
from operators.records import AlertRecord

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

ALERT_SCRIPTS = {"alert": ALERT_SCRIPT}
"""The alert sink's scripts by name (loaded at start and again after NOSCRIPT)."""

DELIVERED, DUPLICATE, SUPPRESSED = 1, 0, 2
"""Outcomes of the delivery script."""


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


def load_script(client: redis.Redis) -> None:
    """SCRIPT LOAD the delivery script (checked against its expected SHA)."""
    sha = client.script_load(ALERT_SCRIPT)
    sha = sha.decode() if isinstance(sha, bytes) else sha
    if sha != ALERT_SCRIPT_SHA:
        raise RuntimeError(f"SCRIPT LOAD returned {sha}, expected {ALERT_SCRIPT_SHA}")
