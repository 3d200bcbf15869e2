-- Ack finished jobs, give back unstarted ones, then reserve up to n jobs: one round trip
-- (kue.BatchBackend.settle_many; reserve_many is this with no acks and no give-backs).
-- KEYS: per ack, eleven keys: its queue's ready, delayed, reserved, buried, body, meta,
--       wake, seq, then its record, waiters, changed; per give-back, its queue's eight
--       (ready ... seq); then per queue to reserve from, six keys: ready, delayed,
--       reserved, body, meta, wake
-- ARGV: 1 acks, 2 give-backs, 3 n; then per ack: id, receipt, names (-1: delete only, no
--       record; else how many field names follow the JSON), ttl ms, the fields as one JSON
--       object, then the names (see write_packed); then per give-back: id, receipt
-- Returns {lost, jobs, wait}: lost a flat list of (ack number, code) for each ack that failed
-- (codes as delete_job's: 0 not held, -1 ttr ran out, -2 no such job); jobs a list of what
-- reserve.lua returns for a job, most urgent first; wait reserve.lua's "nothing ready" reply
-- ({0, ms or -1}) if fewer than n were ready, else {1}.
local ATTEMPT_SPAN = 4294967296
local now = now_ms()
local n_acks, n_give, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a, k = 4, 0
local lost = {}

-- write_packed of common.lua with the ttl, JSON and names given, not read from ARGV's tail.
local function pack_record(rk, ttl, doc, first_name, last_name)
  if redis.call('EXISTS', KEYS[rk], KEYS[rk + 1]) == 0 then
    redis.call('HSET', KEYS[rk], PACKED, doc)
    if tonumber(ttl) >= 0 then
      redis.call('PEXPIRE', KEYS[rk], ttl)
    end
    return
  end
  for i = first_name, last_name, 1000 do
    redis.call('HDEL', KEYS[rk], unpack(ARGV, i, math.min(i + 999, last_name)))
  end
  redis.call('HSET', KEYS[rk], PACKED, doc)
  record_written(rk, ttl)
end

for i = 1, n_acks do
  local id, receipt, names = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local done = delete_job(k, id, receipt, now)
  if done ~= 1 then
    lost[#lost + 1] = i
    lost[#lost + 1] = done
  elseif names >= 0 then
    pack_record(k + 9, ARGV[a + 3], ARGV[a + 4], a + 5, a + 4 + names)
  end
  if names >= 0 then
    a = a + 5 + names
  else
    a = a + 3
  end
  k = k + 11
end

for i = 1, n_give do
  local id, receipt = ARGV[a], ARGV[a + 1]
  local j, member = held(KEYS[k + 1], KEYS[k + 3], KEYS[k + 6], KEYS[k + 7], id, receipt, now)
  if j then
    -- The attempt is taken back, and ATTEMPT_SPAN added: att, the receipt, never repeats;
    -- the attempts reported are att modulo ATTEMPT_SPAN (kue_redis.backend).
    j.att = j.att - 1 + ATTEMPT_SPAN
    set_meta(KEYS[k + 6], id, j)
    redis.call('ZREM', KEYS[k + 3], member)
    redis.call('ZADD', KEYS[k + 1], fmt(j.pri), member)
    wake(KEYS[k + 7], 1)
  end
  a = a + 2
  k = k + 8
end

local jobs, wait = {}, {1}
if n > 0 then
  while #jobs < n do
    local found = reserve_job(k + 1, now)
    if tonumber(found[1]) == 0 then
      wait = found
      break
    end
    jobs[#jobs + 1] = found
  end
end
return {lost, jobs, wait}
