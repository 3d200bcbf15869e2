-- Put one job. A no-op if the id exists, so a retried put (redis-py resends a command after
-- a dropped connection) never stores the job twice.
-- KEYS: 1 seq, 2 ready, 3 delayed, 4 body, 5 meta, 6 wake
-- ARGV: 1 id, 2 body, 3 priority, 4 delay ms, 5 ttr ms
-- Returns 1 if stored, 0 if the id was already there.
local id = ARGV[1]
local seq = take_seqs(KEYS[1], 1)[1]
local pri = tonumber(ARGV[3])
-- HSETNX both checks for the id and stores its meta (a resent put only wastes a seq number).
if redis.call('HSETNX', KEYS[5], id, fmt(pri) .. ' ' .. seq .. ' ' .. ARGV[5] .. ' 0') == 0 then
  return 0
end
local member = seq .. ':' .. id
local delay = tonumber(ARGV[4])
redis.call('HSET', KEYS[4], id, ARGV[2])
if delay > 0 then
  redis.call('ZADD', KEYS[3], fmt(now_ms() + delay), member)
else
  redis.call('ZADD', KEYS[2], fmt(pri), member)
end
-- A delayed job wakes reservers too: one blocked with a later bound must learn the new one.
wake(KEYS[6], 1)
return 1
