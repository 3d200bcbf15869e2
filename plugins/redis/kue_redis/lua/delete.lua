-- Delete a reserved job for good.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq
-- ARGV: 1 id, 2 receipt
-- Returns 1 if deleted, 0 if the reservation is not held, -1 if its ttr ran out.
return delete_job(0, ARGV[1], ARGV[2], now_ms())
