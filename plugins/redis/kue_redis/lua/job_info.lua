-- A live job in whatever state, without changing anything (see job_state in common.lua).
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 id
-- Returns {state, body, priority, attempts, ms until due or lease end (-1: none)}, or nil
-- if the queue holds no job with this id.
local id = ARGV[1]
local state, j, left = job_state(KEYS[1], KEYS[2], KEYS[3], KEYS[6], id, now_ms())
if not j then
  return nil
end
return {state, redis.call('HGET', KEYS[5], id), fmt(j.pri), j.att, left}
