-- Put one job under a unique key, unless a live job holds the key: check and put in one
-- step, so of any number of clients putting with one key, one stores a job.
-- KEYS: 1 seq, 2 ready, 3 delayed, 4 body, 5 meta, 6 wake, 7 reserved, 8 unique key
-- ARGV: 1 id, 2 body, 3 priority, 4 delay ms, 5 ttr ms, 6 key ttl ms, 7 until_done (0 or 1)
-- The unique key holds "<id> <until_done>" and expires after the key ttl; with until_done the
-- key is also free once its job is gone (done or deleted) or buried.
-- Returns {1, id} if stored, {0, holder's id} if the key was held.
local held = redis.call('GET', KEYS[8])
if held then
  local holder, until_done = string.match(held, '^(.*) ([01])$')
  if holder == ARGV[1] then
    return {1, holder}  -- a resent call (redis-py retries after a dropped connection)
  end
  if until_done == '0' then
    return {0, holder}
  end
  local state = job_state(KEYS[2], KEYS[3], KEYS[7], KEYS[5], holder, now_ms())
  if state ~= 'none' and state ~= 'buried' then
    return {0, holder}
  end
end
-- The id is fresh (the client chose it for this call), so the job is stored.
store_job(0, ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
redis.call('SET', KEYS[8], ARGV[1] .. ' ' .. ARGV[7], 'PX', ARGV[6])
return {1, ARGV[1]}
