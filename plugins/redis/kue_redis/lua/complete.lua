-- Delete a reserved job and write its record, in one step: a finished job's ack.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq,
--       9 record, 10 waiters, 11 changed (of this job)
-- ARGV: 1 id, 2 receipt, 3 ttl ms (-1: none), 4 the fields as one JSON object (see
--       write_packed)
-- Returns 1 if done, 0 if the reservation is not held, -1 if its ttr ran out, -2 if there
-- is no such job (any more); in those cases the record is left as it was.
local deleted = delete_job(0, ARGV[1], ARGV[2], now_ms())
if deleted ~= 1 then
  return deleted
end
write_packed(9, ARGV[3], ARGV[4])
return 1
