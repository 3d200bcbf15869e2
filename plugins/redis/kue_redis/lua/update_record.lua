-- Merge fields into a job's record (creating it) and wake whoever waits for it.
-- KEYS: 1 record, 2 waiters, 3 changed (of this job)
-- ARGV: 1 ttl ms (-1: none), then field / JSON value pairs, "" for a field removed
-- Returns 1.
write_record(1, 1)
return 1
