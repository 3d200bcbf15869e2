-- Move one buried job, chosen by id, to ready as kick.lua does: with its priority, keeping its
-- member (so its seq, its place in put order among jobs of its priority), and one wake-up
-- token for a blocked reserve.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 id
-- Returns 1 if it moved, 0 (changing nothing) if the queue holds no buried job with this id:
-- no such job, or one in another state.
local id = ARGV[1]
local j = get_meta(KEYS[6], id)
if not j then
  return 0
end
local member = j.seq .. ':' .. id
if redis.call('LREM', KEYS[4], 1, member) == 0 then
  return 0
end
redis.call('ZADD', KEYS[1], fmt(j.pri), member)
wake(KEYS[7], 1)
return 1
