-- Ack finished jobs, give back unstarted ones, then reserve up to n jobs: one round trip
-- (kue.BatchBackend.settle_many; reserve_many is this with no acks and no give-backs).
-- KEYS: per ack, eleven keys: its queue's ready, delayed, reserved, buried, body, meta,
--       wake, seq, then its record, waiters, changed; per give-back, its queue's eight
--       (ready ... seq); then per queue to reserve from, six keys: ready, delayed,
--       reserved, body, meta, wake
-- ARGV: 1 acks, 2 give-backs, 3 n; then per ack: id, receipt, ttl ms (-2: delete only, no
--       record and nothing more; -1: a record that never expires), the fields as one JSON
--       object (see write_packed); then per give-back: id, receipt
-- Returns {lost, jobs, wait}: lost a flat list of (ack number, code) for each ack that failed
-- (codes as delete_job's: 0 not held, -1 ttr ran out, -2 no such job); jobs a list of what
-- reserve.lua returns for a job, most urgent first; wait reserve.lua's "nothing ready" reply
-- ({0, ms or -1}) if fewer than n were ready, else {1}.
local ATTEMPT_SPAN = 4294967296
local now = now_ms()
local n_acks, n_give, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a, k = 4, 0
local lost = {}

for i = 1, n_acks do
  local id, receipt, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local done = delete_job(k, id, receipt, now)
  local recorded = ttl ~= '-2'
  if done ~= 1 then
    lost[#lost + 1] = i
    lost[#lost + 1] = done
  elseif recorded then
    write_packed(k + 9, ttl, ARGV[a + 3])
  end
  if recorded then
    a = a + 4
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
    -- Due jobs and lapsed leases move to ready once: the clock stands still in a script.
    local found = reserve_job(k + 1, now, #jobs > 0)
    if tonumber(found[1]) == 0 then
      wait = found
      break
    end
    jobs[#jobs + 1] = found
  end
end
return {lost, jobs, wait}
