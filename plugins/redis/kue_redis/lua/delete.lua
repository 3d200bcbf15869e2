-- Delete a reserved job for good, and wake whoever waits for its record (its status is then
-- "gone" if it has one). A worker finishing a job calls complete.lua instead, or with records
-- off delete_reserve.lua, which wakes no one: no record means nothing to wait for.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq,
--       9 waiters, 10 changed (of this job)
-- ARGV: 1 id, 2 receipt
-- Returns 1 if deleted, 0 if the reservation is not held, -1 if its ttr ran out, -2 if
-- there is no such job (any more: a resent call finds its first run's work done).
local deleted = delete_job(0, ARGV[1], ARGV[2], now_ms())
if deleted == 1 then
  wake_record_waiters(KEYS[9], KEYS[10])
end
return deleted
