-- Move the n jobs buried longest ago, or with none buried the n delayed jobs due soonest,
-- to ready.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 n
-- Returns how many jobs moved.
local now = now_ms()
local n = tonumber(ARGV[1])
if promote(KEYS[1], KEYS[2], KEYS[3], KEYS[6], now) > 0 then
  wake(KEYS[7], 1)
end
local members
if redis.call('LLEN', KEYS[4]) > 0 then
  members = redis.call('LPOP', KEYS[4], n)
else
  members = redis.call('ZRANGE', KEYS[2], 0, n - 1)
end
for _, member in ipairs(members) do
  -- One ZREM per member: unpack() of a long list would overflow Lua's C stack.
  redis.call('ZREM', KEYS[2], member)
  local j = get_meta(KEYS[6], member_id(member))
  redis.call('ZADD', KEYS[1], fmt(j.pri), member)
end
wake(KEYS[7], #members)
return #members
