-- Counts of jobs per state, after due jobs and expired leases have moved to ready.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: none
-- Returns {ready, delayed, reserved, buried}.
local now = now_ms()
if promote(KEYS[1], KEYS[2], KEYS[3], KEYS[6], now) > 0 then
  wake(KEYS[7], 1)
end
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('LLEN', KEYS[4]),
}
