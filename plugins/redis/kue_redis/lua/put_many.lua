-- Put a batch of jobs on one queue in one call: per job the same effects as put.lua
-- (idempotent on its id, a seq of its own, body, meta, ready or delayed), but the batch's
-- seqs taken at once and one wake-up push for the batch.
-- KEYS: 1 seq, 2 ready, 3 delayed, 4 body, 5 meta, 6 wake
-- ARGV: five per job: id, body, priority, delay ms, ttr ms
-- Returns how many jobs were stored (a resent batch stores none twice).
local n = #ARGV / 5
local seqs = take_seqs(KEYS[1], n)
local now = nil
local stored = 0
for i = 0, n - 1 do
  local id = ARGV[i * 5 + 1]
  if redis.call('HEXISTS', KEYS[5], id) == 0 then
    local seq = seqs[i + 1]
    local member = seq .. ':' .. id
    local pri = tonumber(ARGV[i * 5 + 3])
    local delay = tonumber(ARGV[i * 5 + 4])
    redis.call('HSET', KEYS[4], id, ARGV[i * 5 + 2])
    set_meta(KEYS[5], id, {pri = pri, seq = seq, ttr = tonumber(ARGV[i * 5 + 5]), att = 0})
    if delay > 0 then
      now = now or now_ms()
      redis.call('ZADD', KEYS[3], fmt(now + delay), member)
    else
      redis.call('ZADD', KEYS[2], fmt(pri), member)
    end
    stored = stored + 1
  end
end
if stored > 0 then
  wake(KEYS[6], stored)
end
return stored
