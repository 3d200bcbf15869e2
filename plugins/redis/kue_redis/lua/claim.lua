-- Compare and set one claim key (kue.records.ClaimStore.claim).
-- KEYS: 1 claim key
-- ARGV: 1 value, 2 ttl ms, 3 expected value ("" with 4 = 0: the key must be free),
--       4 1 if a value is expected, else 0
-- Returns nil if the key was set, else its live value ("" if free).
local current = redis.call('GET', KEYS[1])
if ARGV[4] == '0' then
  if current then
    return current
  end
elseif current ~= ARGV[3] then
  return current or ''
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return nil
