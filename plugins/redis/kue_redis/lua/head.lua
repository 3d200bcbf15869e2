-- What one queue would hand out next, without reserving it: used to pick among queues that
-- live in different Redis Cluster slots, which no single script may touch together.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 body, 5 meta, 6 wake (the reserve script's six)
-- ARGV: none
-- Returns {1, priority, seq} of the ready job that comes out next, or {0, ms until the
-- earliest due job or lease deadline, or -1 if there is none}.
local now = now_ms()
promote(KEYS[1], KEYS[2], KEYS[3], KEYS[5], now)
local top = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #top > 0 then
  return {1, top[2], string.sub(top[1], 1, SEQ_WIDTH)}
end
-- Nothing ready: tokens on the wake-up list are stale (as in reserve_job).
redis.call('DEL', KEYS[6])
return wait_reply(earliest_due(KEYS[2], KEYS[3], nil), now)
