-- complete.lua, then reserve the next job, in one round trip (the worker's hot path with
-- records on; delete_reserve.lua is the same without the record).
-- KEYS: 1-8 the finished job's queue: ready, delayed, reserved, buried, body, meta, wake,
--       seq; 9-11 its record, waiters, changed; then per queue to reserve from, six keys:
--       ready, delayed, reserved, body, meta, wake
-- ARGV: 1 id, 2 receipt, 3 ttl ms (-1: none), 4 the fields as one JSON object (see
--       write_packed)
-- Returns {-1, 0, -1 or -2} if the delete failed (not held / ttr ran out / no such job;
-- nothing written and
-- nothing reserved), else what reserve.lua returns.
local now = now_ms()
local deleted = delete_job(0, ARGV[1], ARGV[2], now)
if deleted ~= 1 then
  return {-1, deleted}
end
write_packed(9, ARGV[3], ARGV[4])
return reserve_job(12, now)
