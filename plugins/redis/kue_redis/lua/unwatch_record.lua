-- Take back a waiter's registration (watch_record.lua) after its wait timed out.
-- KEYS: 1 waiters, 2 changed (of this job)
-- ARGV: none
-- Returns 0 if no write came meanwhile, 1 if one did: it pushed a token for this waiter,
-- which is taken off the changed list here so that no later waiter wakes for nothing.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  if n == 1 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('DECR', KEYS[1])
  end
  return 0
end
redis.call('LPOP', KEYS[2])
return 1
