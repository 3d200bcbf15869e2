-- Put one job. A no-op if the id exists, so a retried put (redis-py resends a command after
-- a dropped connection) never stores the job twice.
-- KEYS: 1 seq (global counter), 2 ready, 3 delayed, 4 body, 5 meta, 6 wake
-- ARGV: 1 id, 2 body, 3 priority, 4 delay ms, 5 ttr ms
-- Returns 1 if stored, 0 if the id was already there.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[5], id) == 1 then
  return 0
end
local seq = string.format('%0' .. SEQ_WIDTH .. 'd', redis.call('INCR', KEYS[1]))
local member = seq .. ':' .. id
local pri = tonumber(ARGV[3])
local delay = tonumber(ARGV[4])
redis.call('HSET', KEYS[4], id, ARGV[2])
set_meta(KEYS[5], id, {pri = pri, seq = seq, ttr = tonumber(ARGV[5]), att = 0})
if delay > 0 then
  redis.call('ZADD', KEYS[3], fmt(now_ms() + delay), member)
else
  redis.call('ZADD', KEYS[2], fmt(pri), member)
end
-- A delayed job wakes reservers too: one blocked with a later bound must learn the new one.
wake(KEYS[6], 1)
return 1
