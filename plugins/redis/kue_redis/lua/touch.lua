-- Give a reserved job its full ttr again, counted from now.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 id, 2 receipt
-- Returns 1 if renewed, 0 if the reservation is not held, -1 if its ttr ran out,
-- -2 if there is no such job.
local now = now_ms()
local j, member = held(KEYS[1], KEYS[3], KEYS[6], KEYS[7], ARGV[1], ARGV[2], now)
if not j then
  return member
end
redis.call('ZADD', KEYS[3], 'XX', fmt(now + j.ttr), member)
return 1
