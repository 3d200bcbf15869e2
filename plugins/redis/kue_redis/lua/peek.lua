-- A copy of the job that would leave a state next; nothing is reserved.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 state: "ready", "delayed" or "buried"
-- Returns {id, body, priority, attempts}, or nil if the state holds no job.
local now = now_ms()
if promote(KEYS[1], KEYS[2], KEYS[3], KEYS[6], now) > 0 then
  wake(KEYS[7], 1)
end
local member
if ARGV[1] == 'ready' then
  member = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
elseif ARGV[1] == 'delayed' then
  member = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
elseif ARGV[1] == 'buried' then
  member = redis.call('LINDEX', KEYS[4], 0)
else
  return redis.error_reply('peek takes ready, delayed or buried, not ' .. ARGV[1])
end
if not member then
  return nil
end
local id = member_id(member)
local j = get_meta(KEYS[6], id)
return {id, redis.call('HGET', KEYS[5], id), fmt(j.pri), j.att}
