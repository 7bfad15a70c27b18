"""The Lua scripts: what must be atomic across instances runs inside Redis, one script per operation.

Lua numbers are doubles: every amount stays below 2**53 (micro-cents arrive split into whole cents and a
sub-cent part) and is written back with ``I`` (``%d``), never through Lua's ``tostring`` (14 digits).
Times arrive as the caller's decimal strings and are written as given.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

PRELUDE = """
local function I(n) return string.format('%d', n) end
"""

HOLDS = """
-- A hold's entry in the deadline set (KEYS[4]): everything the sweep needs to give it back without its
-- caller (hold key, cents, wallet key, spend key or ''), rebuilt the same by every hold script.
local function member(cents, has_key)
  local spend = ''
  if has_key == '1' then spend = KEYS[3] end
  return KEYS[1] .. '\\n' .. cents .. '\\n' .. KEYS[2] .. '\\n' .. spend
end
"""

RESERVE = (
    HOLDS
    + """
-- KEYS: hold, wallet, spend, holds due; ARGV: cents, has key (1/0), hold lifetime (real ms)
if redis.call('EXISTS', KEYS[1]) == 1 then return {'held'} end
local cents = tonumber(ARGV[1])
local w = redis.call('HMGET', KEYS[2], 'balance', 'held', 'carry')
local k = {false, false, false}
if ARGV[2] == '1' then k = redis.call('HMGET', KEYS[3], 'limit', 'spent', 'held') end
local view = {w[1] or '', w[2] or '0', w[3] or '0', k[1] or '', k[2] or '0', k[3] or '0'}
if tonumber(w[1] or '0') - tonumber(w[2] or '0') < cents then
  return {'wallet', unpack(view)}
end
if k[1] then
  local room = tonumber(k[1]) - tonumber(k[2] or '0') - tonumber(k[3] or '0')
  if room < 0 then room = 0 end
  if cents > room then return {'key', unpack(view)} end
end
redis.call('HINCRBY', KEYS[2], 'held', ARGV[1])
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[3], 'held', ARGV[1]) end
redis.call('SET', KEYS[1], 'open')
-- The deadline on Redis's own clock: real time every instance agrees on (not the mock's clock).
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
redis.call('ZADD', KEYS[4], I(deadline), member(ARGV[1], ARGV[2]))
return {'ok'}
"""
)

SETTLE = (
    HOLDS
    + """
-- KEYS: hold, wallet, spend, holds due; ARGV: hold cents, whole cents, sub-cent micro-cents, has key,
-- tombstone s
if redis.call('GET', KEYS[1]) ~= 'open' then return false end
local sub = tonumber(ARGV[3]) + tonumber(redis.call('HGET', KEYS[2], 'carry') or '0')
local extra = math.floor(sub / 1000000)
local settled = tonumber(ARGV[2]) + extra
local cents = tonumber(ARGV[1])
redis.call('HSET', KEYS[2], 'carry', I(sub - extra * 1000000))
redis.call('HINCRBY', KEYS[2], 'held', I(-cents))
redis.call('HINCRBY', KEYS[2], 'balance', I(-settled))
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[3], 'held', I(-cents))
  redis.call('HINCRBY', KEYS[3], 'spent', I(settled))
end
redis.call('SET', KEYS[1], 'settled', 'EX', ARGV[5])
redis.call('ZREM', KEYS[4], member(ARGV[1], ARGV[4]))
return settled
"""
)

RELEASE = (
    HOLDS
    + """
-- KEYS: hold, wallet, spend, holds due; ARGV: hold cents, has key, tombstone s, only if on its deadline
-- (1: a retried release leaves a hold kept for a job alone: its job settles it)
if redis.call('GET', KEYS[1]) ~= 'open' then return 0 end
if ARGV[4] == '1' and not redis.call('ZSCORE', KEYS[4], member(ARGV[1], ARGV[2])) then return 0 end
local cents = tonumber(ARGV[1])
redis.call('HINCRBY', KEYS[2], 'held', I(-cents))
if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[3], 'held', I(-cents)) end
redis.call('SET', KEYS[1], 'released', 'EX', ARGV[3])
redis.call('ZREM', KEYS[4], member(ARGV[1], ARGV[2]))
return 1
"""
)

KEEP_HOLD = (
    HOLDS
    + """
-- KEYS: hold, wallet, spend, holds due; ARGV: hold cents, has key. Off the deadline set: a job ends it.
if redis.call('GET', KEYS[1]) ~= 'open' then return 0 end
redis.call('ZREM', KEYS[4], member(ARGV[1], ARGV[2]))
return 1
"""
)

SWEEP_HOLDS = """
-- KEYS: holds due; ARGV: limit, tombstone s. Give back (as RELEASE does) open holds past their deadline.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', I(now), 'LIMIT', 0, tonumber(ARGV[1]))
local swept = 0
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local hold, cents, wallet, spend = string.match(m, '^([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)\\n([^\\n]*)$')
  if hold and redis.call('GET', hold) == 'open' then
    redis.call('HINCRBY', wallet, 'held', I(-tonumber(cents)))
    if spend ~= '' then redis.call('HINCRBY', spend, 'held', I(-tonumber(cents))) end
    redis.call('SET', hold, 'released', 'EX', ARGV[2])
    swept = swept + 1
  end
end
return swept
"""

SET_WALLET = """
-- KEYS: accounts, wallet; ARGV: account id, cents ('' = no wallet)
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
if ARGV[2] == '' then redis.call('HDEL', KEYS[2], 'balance')
else redis.call('HSET', KEYS[2], 'balance', ARGV[2]) end
local w = redis.call('HMGET', KEYS[2], 'balance', 'held', 'carry')
return {w[1] or '', w[2] or '0', w[3] or '0'}
"""

ADD_KEY = """
-- KEYS: keys, key ids, key order, accounts, account order, spend
-- ARGV: secret, key id, key JSON, account id, account JSON, limit ('' none), channel
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
if redis.call('HSETNX', KEYS[4], ARGV[4], ARGV[5]) == 1 then redis.call('RPUSH', KEYS[5], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[6], 'limit', ARGV[6]) end
redis.call('PUBLISH', ARGV[7], 'keys')
return 1
"""

UPDATE_KEY = """
-- KEYS: keys, spend; ARGV: secret, JSON read, new JSON, limit ('' none), channel
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] == '' then redis.call('HDEL', KEYS[2], 'limit')
else redis.call('HSET', KEYS[2], 'limit', ARGV[4]) end
redis.call('PUBLISH', ARGV[5], 'keys')
return 1
"""

ADMIT = """
-- KEYS: clock, faults, rate; ARGV: real now, limit, counted (1/0), provider, operation ('' none),
-- fault key prefix. One round trip per request: the window, the first matching fault, the clock offset.
local raw = redis.call('GET', KEYS[1]) or '0'
local out = {raw, '', '', '', '', '', ''}
if ARGV[3] == '1' then
  local window = math.floor((tonumber(ARGV[1]) + tonumber(raw)) / 60) * 60
  local w = redis.call('HMGET', KEYS[3], 'w', 'n')
  local n = 0
  if w[1] and tonumber(w[1]) == window then n = tonumber(w[2]) end
  local exceeded = 1
  if n < tonumber(ARGV[2]) then
    exceeded = 0
    n = n + 1
    redis.call('HSET', KEYS[3], 'w', I(window), 'n', I(n))
    redis.call('EXPIRE', KEYS[3], 180)
  end
  out[2] = I(window); out[3] = I(n); out[4] = I(exceeded)
end
if ARGV[5] ~= '' then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local key = ARGV[6] .. id
    local f = redis.call('HMGET', key, 'p', 'o', 'r', 'j')
    if (f[1] == '' or f[1] == ARGV[4]) and (f[2] == '' or f[2] == ARGV[5]) then
      local left = f[3]
      if left ~= '' then
        local n = redis.call('HINCRBY', key, 'r', -1)
        left = I(n)
        if n <= 0 then
          redis.call('DEL', key)
          redis.call('ZREM', KEYS[2], id)
        end
      end
      out[5] = f[4]; out[6] = left; out[7] = id
      break
    end
  end
end
return out
"""

ADD_FAULT = """
-- KEYS: fault ids, faults; ARGV: fault key prefix, provider, operation, remaining, JSON, channel
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[1] .. id, 'p', ARGV[2], 'o', ARGV[3], 'r', ARGV[4], 'j', ARGV[5])
redis.call('ZADD', KEYS[2], id, id)
redis.call('PUBLISH', ARGV[6], 'faults')
return id
"""

LIST_FAULTS = """
-- KEYS: faults; ARGV: fault key prefix
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'j', 'r')
  if f[1] then out[#out + 1] = id; out[#out + 1] = f[1]; out[#out + 1] = f[2] end
end
return out
"""

CLEAR_FAULTS = """
-- KEYS: faults; ARGV: fault key prefix, channel
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'faults')
return 1
"""

ADVANCE = """
-- KEYS: clock; ARGV: seconds, channel
local offset = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'clock:' .. offset)
return offset
"""

PUT = """
-- KEYS: data, time, kinds; ARGV: id, JSON, now, expired-by, cap, kind name ('' none), blob prefix ('' none),
-- bytes (stored when ARGV[9] == '1'); for jobs: due set, member prefix, due at ('' finished), channel.
-- Store (a replaced entry starts its time again), then drop the oldest past the TTL or the cap.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[6] ~= '' then redis.call('SADD', KEYS[3], ARGV[6]) end
local blobs = ARGV[7] or ''
if ARGV[9] == '1' then redis.call('SET', blobs .. ARGV[1], ARGV[8]) end
local due = ARGV[10] or ''
if due ~= '' then
  if ARGV[12] == '' then redis.call('ZREM', due, ARGV[11] .. ARGV[1])
  else redis.call('ZADD', due, ARGV[12], ARGV[11] .. ARGV[1]) end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local over = redis.call('ZCARD', KEYS[2]) - #gone - tonumber(ARGV[5])
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4]) end
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #popped, 2 do gone[#gone + 1] = popped[i] end
end
for _, id in ipairs(gone) do
  -- An unfinished job keeps its record until it finishes (its holds get settled), unseen by lookups.
  if due == '' or not redis.call('ZSCORE', due, ARGV[11] .. id) then
    redis.call('HDEL', KEYS[1], id)
    if blobs ~= '' then redis.call('DEL', blobs .. id) end
  end
end
if due ~= '' then redis.call('PUBLISH', ARGV[13], 'jobs') end
return #gone
"""

CLAIM_JOBS = """
-- KEYS: due; ARGV: now, lease ms, limit, lease prefix, job key prefix, instance
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  if #out >= tonumber(ARGV[3]) then break end
  if redis.call('SET', ARGV[4] .. member, ARGV[6], 'NX', 'PX', ARGV[2]) then
    local sep = string.find(member, ':', 1, true)
    local json = redis.call('HGET', ARGV[5] .. string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
    if json then out[#out + 1] = json
    else
      redis.call('ZREM', KEYS[1], member)
      redis.call('DEL', ARGV[4] .. member)
    end
  end
end
return out
"""

CLAIM_JOB = """
-- KEYS: due, lease; ARGV: member, lease ms, instance, now
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[4]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

NEXT_DUE = """
-- KEYS: due; ARGV: lease prefix. The earliest due time nobody holds a lease on (a leased entry is the
-- claimer's until it is put back or its lease lapses), as a string; false when none.
local start = 0
while true do
  local page = redis.call('ZRANGE', KEYS[1], start, start + 99, 'WITHSCORES')
  if #page == 0 then return false end
  for i = 1, #page, 2 do
    if redis.call('EXISTS', ARGV[1] .. page[i]) == 0 then return page[i + 1] end
  end
  start = start + 100
end
"""

FINISH_JOB = """
-- KEYS: data, time, due, lease; ARGV: id, JSON, member, channel
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[4])
redis.call('PUBLISH', ARGV[4], 'jobs')
return 1
"""

PUT_DELIVERY = """
-- KEYS: data, order, due, done, lease; ARGV: id, JSON, created at, next attempt ('' none), final (1/0),
-- finished kept, channel
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
redis.call('DEL', KEYS[5])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
else redis.call('ZREM', KEYS[3], ARGV[1]) end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[1])
  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[4], over)
    for i = 1, #popped, 2 do
      redis.call('HDEL', KEYS[1], popped[i])
      redis.call('ZREM', KEYS[2], popped[i])
      redis.call('ZREM', KEYS[3], popped[i])
    end
  end
else
  redis.call('ZREM', KEYS[4], ARGV[1])
end
redis.call('PUBLISH', ARGV[7], 'deliveries')
return 1
"""

CLAIM_DELIVERY = """
-- KEYS: data, due; ARGV: now, lease ms, lease prefix, instance
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])) do
  if redis.call('SET', ARGV[3] .. id, ARGV[4], 'NX', 'PX', ARGV[2]) then
    local json = redis.call('HGET', KEYS[1], id)
    if json then return json end
    redis.call('ZREM', KEYS[2], id)
    redis.call('DEL', ARGV[3] .. id)
  end
end
return false
"""

JOURNAL_ADD = """
-- KEYS: journal, bytes; ARGV: max entries, max bytes, then (id, cost, member) per row
local added = 0
for i = 3, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 2])
  added = added + tonumber(ARGV[i + 1])
end
local bytes = redis.call('INCRBY', KEYS[2], added)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
local maxb = tonumber(ARGV[2])
while over > 0 or bytes > maxb do
  local n = over
  if n < 1 then n = 1 end
  local popped = redis.call('ZPOPMIN', KEYS[1], n)
  if #popped == 0 then break end
  local freed = 0
  for i = 1, #popped, 2 do freed = freed + tonumber(string.match(popped[i], '^(%d+)|')) end
  bytes = redis.call('DECRBY', KEYS[2], freed)
  over = over - #popped / 2
end
return bytes
"""

SEED = """
-- KEYS: seeded; ARGV: mode (join/reset), key pattern, ops JSON, channel, notice, then the keys a reset
-- keeps (the first: the reset count).
-- Join: seed only an empty prefix. Reset: delete every key of the prefix (but the kept ones), then seed.
-- One script, so no instance ever sees a half-seeded or half-deleted prefix.
if ARGV[1] == 'join' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[1] == 'reset' then
  local keep = {}
  for i = 6, #ARGV do keep[ARGV[i]] = true end
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
    cursor = page[1]
    for _, k in ipairs(page[2]) do
      if not keep[k] then redis.call('UNLINK', k) end
    end
  until cursor == '0'
end
for _, op in ipairs(cjson.decode(ARGV[3])) do redis.call(unpack(op)) end
redis.call('SET', KEYS[1], '1')
if ARGV[1] == 'reset' then
  -- The reset count is kept: an instance that missed the notice (a lost connection) finds it changed.
  local count = redis.call('INCR', ARGV[6])
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. ':' .. count)
  return count
end
return 1
"""


class Scripts:
    """Every script registered on one client (EVALSHA, loaded again by the client after a restart)."""

    def __init__(self, redis: Redis) -> None:
        def script(body: str) -> Any:
            return redis.register_script(PRELUDE + body)

        self.reserve = script(RESERVE)
        self.settle = script(SETTLE)
        self.release = script(RELEASE)
        self.keep_hold = script(KEEP_HOLD)
        self.sweep_holds = script(SWEEP_HOLDS)
        self.set_wallet = script(SET_WALLET)
        self.add_key = script(ADD_KEY)
        self.update_key = script(UPDATE_KEY)
        self.admit = script(ADMIT)
        self.add_fault = script(ADD_FAULT)
        self.list_faults = script(LIST_FAULTS)
        self.clear_faults = script(CLEAR_FAULTS)
        self.advance = script(ADVANCE)
        self.put = script(PUT)
        self.claim_jobs = script(CLAIM_JOBS)
        self.claim_job = script(CLAIM_JOB)
        self.finish_job = script(FINISH_JOB)
        self.next_due = script(NEXT_DUE)
        self.put_delivery = script(PUT_DELIVERY)
        self.claim_delivery = script(CLAIM_DELIVERY)
        self.journal_add = script(JOURNAL_ADD)
        self.seed = script(SEED)
