-- Copies of a queue's buried jobs, the most recently buried first; nothing changes.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 start, 2 stop: LRANGE indexes of the buried list counted from its tail (-1 is the
--       job buried last), -(offset + limit) and -(offset + 1); the list has the longest
--       buried at its head (bury.lua RPUSHes)
-- Returns {id, body, priority, attempts} per job, newest buried first; {} past the end.
local members = redis.call('LRANGE', KEYS[4], ARGV[1], ARGV[2])
local jobs = {}
for i = #members, 1, -1 do
  local id = member_id(members[i])
  local j = get_meta(KEYS[6], id)
  if j then
    jobs[#jobs + 1] = {id, redis.call('HGET', KEYS[5], id), fmt(j.pri), j.att}
  end
end
return jobs
