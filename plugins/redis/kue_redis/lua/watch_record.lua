-- Register a wait_record caller as a waiter for a job's record, unless the job or its record
-- already differs from what the caller last saw: then it should read again, not wait.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 meta, 5 record, 6 waiters, 7 changed (of this job)
-- ARGV: 1 id, 2 the job's state the caller last saw ("" unknown), 3 the digest of the record
--       it last saw ("" unknown), 4 ms the registration must last at least
-- Returns 1 if something changed (nothing registered), 0 once registered.
if ARGV[2] ~= '' then
  local state = job_state(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], now_ms())
  if state ~= ARGV[2] then
    return 1
  end
end
if ARGV[3] ~= '' and record_digest(KEYS[5]) ~= ARGV[3] then
  return 1
end
redis.call('INCR', KEYS[6])
-- Never shorten a registration another waiter needs for longer.
if redis.call('PTTL', KEYS[6]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[6], ARGV[4])
end
return 0
