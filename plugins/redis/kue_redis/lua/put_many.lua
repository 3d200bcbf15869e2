-- Put a batch of jobs on one queue in one call: per job the same effects as put.lua
-- (idempotent on its id, a seq of its own, body, meta, ready or delayed), but the batch's
-- seqs taken at once, its bodies and sorted-set entries written with one command each, and
-- one wake-up push for the batch.
-- KEYS: 1 seq, 2 ready, 3 delayed, 4 body, 5 meta, 6 wake
-- ARGV: five per job: id, body, priority, delay ms, ttr ms
-- Returns how many jobs were stored (a resent batch stores none twice).
local n = #ARGV / 5
local seqs = take_seqs(KEYS[1], n)
local now = nil
-- Field/value and score/member pairs, flat, for one HSET and one ZADD per key: each
-- redis.call costs about as much as the work it does for one job.
local bodies, ready, delayed = {}, {}, {}
for i = 0, n - 1 do
  local id = ARGV[i * 5 + 1]
  local seq = seqs[i + 1]
  -- The client sends whole numbers (kue_redis.backend), already as fmt would write them.
  local pri = ARGV[i * 5 + 3]
  -- HSETNX both checks for the id and stores its meta, as in put.lua.
  if redis.call('HSETNX', KEYS[5], id, pri .. ' ' .. seq .. ' ' .. ARGV[i * 5 + 5] .. ' 0') == 1 then
    bodies[#bodies + 1] = id
    bodies[#bodies + 1] = ARGV[i * 5 + 2]
    local member = seq .. ':' .. id
    local delay = tonumber(ARGV[i * 5 + 4])
    if delay > 0 then
      now = now or now_ms()
      delayed[#delayed + 1] = fmt(now + delay)
      delayed[#delayed + 1] = member
    else
      ready[#ready + 1] = pri
      ready[#ready + 1] = member
    end
  end
end
-- At most MAX_BATCH (1,000) jobs a call: 2,001 arguments, well inside unpack's limit.
if #bodies > 0 then
  redis.call('HSET', KEYS[4], unpack(bodies))
end
if #ready > 0 then
  redis.call('ZADD', KEYS[2], unpack(ready))
end
if #delayed > 0 then
  redis.call('ZADD', KEYS[3], unpack(delayed))
end
local stored = #bodies / 2
if stored > 0 then
  wake(KEYS[6], stored)
end
return stored
