"""Appending one dead letter to Redis, once per id.

A dead letter has a deterministic id (`dead_letter_id`: a hash of its source, reason and raw
input), and the script `DEAD_LETTER_SCRIPT` appends it only if that id is not among the last
~`dlq_maxlen` ids, so a replayed dead letter (after a recovery or a retried pipeline) is
appended once.

Keys (`prefix` is `RedisSettings.prefix`):

* `{prefix}dlq` — stream of dead letters (`reason`, `raw`, `at`, `source`), ~`dlq_maxlen`.
* `{prefix}dlq:ids` — sorted set of the ids of the last ~`dlq_maxlen` dead letters (by time).
"""

from __future__ import annotations

import hashlib
from typing import Any

from config.runtime import RedisSettings
from connectors.redis_client import dlq_ids_key, dlq_key
from operators.events import DeadLetter

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

DEAD_LETTER_SCRIPTS = {"dead-letter": DEAD_LETTER_SCRIPT}
"""The dead-letter sink's scripts by name (loaded at start and again after NOSCRIPT)."""


def dead_letter_id(letter: DeadLetter) -> str:
    """A dead letter's deterministic id: the same bad input from the same source (with its
    position, where the source names one) always gets the same id, so replays append it once."""
    digest = hashlib.sha256()
    for part in (letter.source.encode(), letter.reason.encode(), letter.raw):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:32]


def queue_dead_letter(pipe: Any, letter: DeadLetter, settings: RedisSettings) -> None:
    """Queue the append script for one dead letter on `pipe` (see `DEAD_LETTER_SCRIPT`)."""
    argv: list[str | bytes | int] = [dead_letter_id(letter), settings.dlq_maxlen]
    for name, value in letter.fields().items():
        argv.extend((name, value))
    pipe.evalsha(
        DEAD_LETTER_SCRIPT_SHA, 2, dlq_key(settings.prefix), dlq_ids_key(settings.prefix), *argv
    )
