-- A job's record: every field and its JSON value (a STRING record: PACKED and its object).
-- KEYS: 1 record
-- ARGV: none
-- Returns {field, value, field, value, ...}, a value "" for a removed field; empty if there
-- is no record.
return record_flat(KEYS[1])
