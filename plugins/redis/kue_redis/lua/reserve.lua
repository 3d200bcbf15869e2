-- Reserve the most urgent ready job across several queues (see reserve_job in common.lua).
-- KEYS: per queue, six keys: ready, delayed, reserved, body, meta, wake
-- ARGV: none
-- Returns {queue index, id, body, priority, attempts, ttr ms} or {0, ms to wait or -1}.
return reserve_job(1, now_ms())
