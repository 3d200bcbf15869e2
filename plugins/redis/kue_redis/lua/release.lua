-- Give a reserved job back with a new priority, ready now or after a delay.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 id, 2 receipt, 3 priority, 4 delay ms
-- Returns 1 if released, 0 if the reservation is not held, -1 if its ttr ran out,
-- -2 if there is no such job.
local now = now_ms()
local id = ARGV[1]
local j, member = held(KEYS[1], KEYS[3], KEYS[6], KEYS[7], id, ARGV[2], now)
if not j then
  return member
end
local delay = tonumber(ARGV[4])
j.pri = tonumber(ARGV[3])
set_meta(KEYS[6], id, j)
redis.call('ZREM', KEYS[3], member)
if delay > 0 then
  redis.call('ZADD', KEYS[2], fmt(now + delay), member)
else
  redis.call('ZADD', KEYS[1], fmt(j.pri), member)
end
wake(KEYS[7], 1)
return 1
