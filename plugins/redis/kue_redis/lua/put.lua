-- Put one job. A no-op if the id exists, so a retried put (redis-py resends a command after
-- a dropped connection) never stores the job twice.
-- KEYS: 1 seq, 2 ready, 3 delayed, 4 body, 5 meta, 6 wake
-- ARGV: 1 id, 2 body, 3 priority, 4 delay ms, 5 ttr ms
-- Returns 1 if stored, 0 if the id was already there.
if store_job(0, ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]) then
  return 1
end
return 0
