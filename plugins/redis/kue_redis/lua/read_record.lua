-- A job's record: every field and its JSON value.
-- KEYS: 1 record
-- ARGV: none
-- Returns {field, value, field, value, ...}, a value "" for a removed field; empty if there
-- is no record.
return redis.call('HGETALL', KEYS[1])
