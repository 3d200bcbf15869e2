-- Delete a reserved job, then reserve the next one, in one round trip (a worker's hot path).
-- KEYS: 1-8 the deleted job's queue: ready, delayed, reserved, buried, body, meta, wake, seq;
--       then per queue to reserve from, six keys: ready, delayed, reserved, body, meta, wake
-- ARGV: 1 id, 2 receipt
-- Returns {-1, 0, -1 or -2} if the delete failed (not held / ttr ran out / no such job;
-- nothing reserved),
-- else what reserve.lua returns.
local now = now_ms()
local deleted = delete_job(0, ARGV[1], ARGV[2], now)
if deleted ~= 1 then
  return {-1, deleted}
end
return reserve_job(9, now)
