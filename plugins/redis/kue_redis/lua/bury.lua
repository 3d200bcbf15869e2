-- Set a reserved job aside until kicked, at the tail of the buried list, and wake whoever
-- waits for its record: the worker writes the record (with the error) before it buries, so a
-- waiter woken by that write still saw the job reserved.
-- KEYS: 1 ready, 2 delayed, 3 reserved, 4 buried, 5 body, 6 meta, 7 wake, 8 seq,
--       9 waiters, 10 changed (of this job)
-- ARGV: 1 id, 2 receipt, 3 new priority or "" to keep the job's own
-- Returns 1 if buried, 0 if the reservation is not held, -1 if its ttr ran out,
-- -2 if there is no such job.
local now = now_ms()
local id = ARGV[1]
local j, member = held(KEYS[1], KEYS[3], KEYS[6], KEYS[7], id, ARGV[2], now)
if not j then
  return member
end
if ARGV[3] ~= '' then
  j.pri = tonumber(ARGV[3])
  set_meta(KEYS[6], id, j)
end
redis.call('ZREM', KEYS[3], member)
redis.call('RPUSH', KEYS[4], member)
wake_record_waiters(KEYS[9], KEYS[10])
return 1
