-- Helpers shared by every kue script; kue_redis.scripts puts this file in front of each one.
--
-- A job's member in the ready, delayed and reserved sorted sets and the buried list is
-- "<seq:19 digits>:<id>", so members of equal score sort by seq, the order jobs were put in.
-- meta holds "<priority> <seq> <ttr ms> <attempts>" per job id.
--
-- Numbers are formatted with %d before they reach redis.call: Lua would otherwise turn
-- large ones into "%.14g" text and lose digits.

local SEQ_WIDTH = 19
local WAKE_CAP = 1000

local function fmt(n)
  return string.format('%d', n)
end

-- The server's clock in milliseconds, so every client agrees on due times and deadlines.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Take n sequence numbers for new jobs of one queue: "<server time in us, 16 digits><counter,
-- 3 digits>", each above the queue's last (kept in seq_key), so put order within a queue is
-- exact even if the clock steps back, and across queues it follows the clock to the
-- microsecond without a counter shared by every queue (which Redis Cluster would forbid).
-- Returns the list of seqs, as strings of equal width that sort as the numbers do.
local function take_seqs(seq_key, n)
  local t = redis.call('TIME')
  local us, count = tonumber(t[1]) * 1000000 + tonumber(t[2]), 0
  local last = redis.call('GET', seq_key)
  if last then
    local last_us = tonumber(string.sub(last, 1, 16))
    if last_us >= us then
      us, count = last_us, tonumber(string.sub(last, 17)) + 1
    end
  end
  local seqs = {}
  for i = 1, n do
    if count > 999 then
      us, count = us + 1, 0
    end
    seqs[i] = string.format('%016d%03d', us, count)
    count = count + 1
  end
  redis.call('SET', seq_key, seqs[n])
  return seqs
end

local function member_id(member)
  return string.sub(member, SEQ_WIDTH + 2)
end

local function get_meta(meta_key, id)
  local m = redis.call('HGET', meta_key, id)
  if not m then
    return nil
  end
  local pri, seq, ttr, att = string.match(m, '^(%d+) (%d+) (%d+) (%d+)$')
  return {pri = tonumber(pri), seq = seq, ttr = tonumber(ttr), att = tonumber(att)}
end

local function set_meta(meta_key, id, j)
  redis.call('HSET', meta_key, id, fmt(j.pri) .. ' ' .. j.seq .. ' ' .. fmt(j.ttr) .. ' ' .. fmt(j.att))
end

-- Push up to n tokens on a queue's wake-up list, so up to n blocked reservers wake; the
-- list is capped because tokens are only hints (a reserve that finds nothing deletes them).
local function wake(key, n)
  if n <= 0 then
    return
  end
  if n > WAKE_CAP then
    n = WAKE_CAP
  end
  local tokens = {}
  for i = 1, n do
    tokens[i] = '1'
  end
  -- Trim only once the list is twice the cap, so a put with no reserver waiting costs one
  -- LPUSH, not an LPUSH and an LTRIM every time.
  if redis.call('LPUSH', key, unpack(tokens)) > 2 * WAKE_CAP then
    redis.call('LTRIM', key, 0, WAKE_CAP - 1)
  end
end

-- Store one new job: its meta, body, and its place in ready (or delayed, with delay ms > 0),
-- and wake one reserver (a delayed job wakes reservers too: one blocked with a later bound
-- must learn the new one). The put keys (seq, ready, delayed, body, meta, wake) follow
-- KEYS[k]. A no-op if the id exists, so a resent put never stores the job twice; returns
-- whether it stored the job. pri is a number, ttr ms as the client sent it.
local function store_job(k, id, body, pri, delay, ttr)
  local seq = take_seqs(KEYS[k + 1], 1)[1]
  -- HSETNX both checks for the id and stores its meta (a resent put only wastes a seq number).
  if redis.call('HSETNX', KEYS[k + 5], id, fmt(pri) .. ' ' .. seq .. ' ' .. ttr .. ' 0') == 0 then
    return false
  end
  local member = seq .. ':' .. id
  redis.call('HSET', KEYS[k + 4], id, body)
  if delay > 0 then
    redis.call('ZADD', KEYS[k + 3], fmt(now_ms() + delay), member)
  else
    redis.call('ZADD', KEYS[k + 2], fmt(pri), member)
  end
  wake(KEYS[k + 6], 1)
  return true
end

-- Move due delayed jobs and expired reservations back to ready; returns how many moved.
local function promote(ready, delayed, reserved, meta, now)
  local moved = 0
  for _, src in ipairs({delayed, reserved}) do
    local due = redis.call('ZRANGEBYSCORE', src, '-inf', fmt(now))
    if #due > 0 then
      for _, member in ipairs(due) do
        local j = get_meta(meta, member_id(member))
        redis.call('ZADD', ready, fmt(j.pri), member)
      end
      redis.call('ZREMRANGEBYSCORE', src, '-inf', fmt(now))
      moved = moved + #due
    end
  end
  return moved
end

-- Once a queue holds no job at all (its meta hash, which has every job in any state, is gone),
-- delete its wake-up list and seq too, so no key outlives its jobs.
local function forget_if_empty(meta, wake_key, seq_key)
  if redis.call('EXISTS', meta) == 0 then
    redis.call('DEL', wake_key, seq_key)
  end
end

-- The job behind a reservation if that reservation still holds it: returns meta, member.
-- Otherwise nil and a code: 0 not held (reserved again, or in another state), -1 its ttr ran
-- out (the job is made ready again at once, as the reference model does), -2 no such job.
local function held(ready, reserved, meta, wake_key, id, receipt, now)
  local j = get_meta(meta, id)
  if not j then
    return nil, -2
  end
  local member = j.seq .. ':' .. id
  local deadline = redis.call('ZSCORE', reserved, member)
  if not deadline then
    return nil, 0
  end
  if tonumber(deadline) <= now then
    redis.call('ZREM', reserved, member)
    redis.call('ZADD', ready, fmt(j.pri), member)
    wake(wake_key, 1)
    return nil, -1
  end
  if fmt(j.att) ~= receipt then
    return nil, 0
  end
  return j, member
end

-- Delete a reserved job for good. K: the eight per-job keys starting at KEYS[k + 1].
-- Returns 1 if deleted, 0 if the reservation is not held, -1 if its ttr ran out, -2 if
-- there is no such job (any more).
local function delete_job(k, id, receipt, now)
  local j, member = held(KEYS[k + 1], KEYS[k + 3], KEYS[k + 6], KEYS[k + 7], id, receipt, now)
  if not j then
    return member
  end
  redis.call('ZREM', KEYS[k + 3], member)
  redis.call('HDEL', KEYS[k + 5], id)
  redis.call('HDEL', KEYS[k + 6], id)
  forget_if_empty(KEYS[k + 6], KEYS[k + 7], KEYS[k + 8])
  return 1
end

-- The earliest moment a queue's delayed job comes due or its lease runs out (server ms), or
-- ``earliest`` if that is sooner; nil if neither the queue nor ``earliest`` has one.
local function earliest_due(delayed, reserved, earliest)
  for _, src in ipairs({delayed, reserved}) do
    local head = redis.call('ZRANGE', src, 0, 0, 'WITHSCORES')
    if #head > 0 and (earliest == nil or tonumber(head[2]) < earliest) then
      earliest = tonumber(head[2])
    end
  end
  return earliest
end

-- The "nothing ready" reply of reserve and head: {0, ms until ``earliest``, or -1 if none}.
local function wait_reply(earliest, now)
  if earliest == nil then
    return {0, -1}
  end
  return {0, math.max(earliest - now, 0)}
end

-- Reserve the most urgent ready job across the queues whose six keys each (ready, delayed,
-- reserved, body, meta, wake) follow KEYS[first]: lowest priority, then lowest seq.
-- Returns {queue index (1-based), id, body, priority, attempts, ttr ms} for a job, or
-- {0, ms until the earliest due job or lease deadline, or -1 if there is none}.
-- ``promoted``: due jobs were already moved to ready at ``now`` (a batch's later reserves).
local function reserve_job(first, now, promoted)
  local nq = (#KEYS - first + 1) / 6
  local best, best_member, best_pri, best_seq, best_more = nil, nil, nil, nil, false
  for q = 0, nq - 1 do
    local k = first - 1 + q * 6
    if not promoted then
      promote(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 5], now)
    end
    -- Two members: the second tells whether the ready set stays non-empty.
    local top = redis.call('ZRANGE', KEYS[k + 1], 0, 1, 'WITHSCORES')
    if #top > 0 then
      local pri = tonumber(top[2])
      -- Compared as text: 19 digits are past a Lua number's exact range, and equal-width
      -- digit strings sort as their numbers do.
      local seq = string.sub(top[1], 1, SEQ_WIDTH)
      if best == nil or pri < best_pri or (pri == best_pri and seq < best_seq) then
        best, best_member, best_pri, best_seq, best_more = q, top[1], pri, seq, #top > 2
      end
    end
  end

  if best ~= nil then
    local k = first - 1 + best * 6
    local id = member_id(best_member)
    local j = get_meta(KEYS[k + 5], id)
    j.att = j.att + 1
    set_meta(KEYS[k + 5], id, j)
    redis.call('ZREM', KEYS[k + 1], best_member)
    redis.call('ZADD', KEYS[k + 3], fmt(now + j.ttr), best_member)
    if not best_more then
      redis.call('DEL', KEYS[k + 6])
    end
    return {best + 1, id, redis.call('HGET', KEYS[k + 4], id), fmt(j.pri), j.att, j.ttr}
  end

  -- Nothing ready anywhere: tokens on the wake-up lists are stale, and the caller's blocking
  -- wait must end by the earliest moment a delayed job comes due or a lease runs out.
  local earliest = nil
  for q = 0, nq - 1 do
    local k = first - 1 + q * 6
    redis.call('DEL', KEYS[k + 6])
    earliest = earliest_due(KEYS[k + 2], KEYS[k + 3], earliest)
  end
  return wait_reply(earliest, now)
end

-- Job records (kue.records): per job either a HASH of field -> JSON value ("" for a removed
-- field) plus what complete wrote as one JSON object (PACKED), or, where complete found no
-- record and no waiter, a STRING that is that JSON object alone: one SET with its expiry,
-- the write nearly every finished job makes. Readers take both (record_flat). For
-- wait_record, a count of waiters and a list of wake-up tokens per job (see kue_redis.keys).

-- How long a wake-up token for a record's waiters outlives the write that pushed it, in ms:
-- only a waiter that registered but has not yet blocked needs it to stay at all.
local CHANGED_TTL_MS = 10000

-- Wake every waiter registered for a job's record: one token each on its changed list,
-- and the count starts again from 0 (a waiter registers anew for the next change).
local function wake_record_waiters(waiters, changed)
  local n = redis.call('GET', waiters)
  if not n then
    return
  end
  redis.call('DEL', waiters)
  n = math.min(tonumber(n), WAKE_CAP)
  if n <= 0 then
    return
  end
  local tokens = {}
  for i = 1, n do
    tokens[i] = '1'
  end
  redis.call('LPUSH', changed, unpack(tokens))
  redis.call('PEXPIRE', changed, CHANGED_TTL_MS)
end

-- Set a record's expiry (ttl in ms; -1: none) and wake its waiters.
local function record_written(k, ttl)
  if tonumber(ttl) >= 0 then
    redis.call('PEXPIRE', KEYS[k], ttl)
  else
    redis.call('PERSIST', KEYS[k])
  end
  wake_record_waiters(KEYS[k + 1], KEYS[k + 2])
end

-- The hash field that holds the fields a finished job's complete wrote, as one JSON object.
local PACKED = '\0packed'

-- A record as HGETALL lists a hash's fields, whichever shape it has: {} for none, and for a
-- STRING record {PACKED, its JSON object}.
local function record_flat(record)
  local doc = redis.call('TYPE', record).ok
  if doc == 'string' then
    return {PACKED, redis.call('GET', record)}
  end
  return redis.call('HGETALL', record)
end

-- Make a STRING record a HASH (its object in PACKED), for a write that merges fields into it;
-- the expiry is the writer's to set again (record_written).
local function record_as_hash(record)
  if redis.call('TYPE', record).ok == 'string' then
    local doc = redis.call('GET', record)
    redis.call('DEL', record)
    redis.call('HSET', record, PACKED, doc)
  end
end

-- Merge fields into a job's record one hash field each, with one HSET: a removed field (a
-- None value) is written as "" (never a JSON text), which readers skip, so a merge costs no
-- HDEL. KEYS[k] record, KEYS[k + 1] waiters, KEYS[k + 2] changed. ARGV[a] ttl in ms (-1: no
-- expiry), then field / JSON value pairs up to the last ARGV.
local function write_record(k, a)
  record_as_hash(KEYS[k])
  -- Chunks of 1,000 pairs: unpack() of a very long list would overflow Lua's C stack.
  for i = a + 1, #ARGV, 2000 do
    redis.call('HSET', KEYS[k], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
  end
  record_written(k, ARGV[a])
end

-- Merge a finished job's fields into its record as one JSON object. With no record yet and no
-- one waiting for one (one EXISTS tells both), the record is that object alone, a STRING:
-- one SET with its expiry, the doc stored as it came, never parsed here. Otherwise it goes
-- into the PACKED field of the record's hash, and fields written one by one (write_record)
-- override it, so those of the same names written before are removed here; those written
-- later win. A job completes once, so a record holds one such object at most (job ids are
-- uuid4s, never reused).
-- KEYS[k] record, KEYS[k + 1] waiters, KEYS[k + 2] changed; ttl in ms (-1: no expiry), doc
-- the fields as one JSON object (null: removed).
local function write_packed(k, ttl, doc)
  if redis.call('EXISTS', KEYS[k], KEYS[k + 1]) == 0 then
    local ms = tonumber(ttl)
    if ms > 0 then
      redis.call('SET', KEYS[k], doc, 'PX', ttl)
    elseif ms < 0 then
      redis.call('SET', KEYS[k], doc)
    end
    return
  end
  -- A record written before (progress, an earlier attempt's error): the doc's own field
  -- names, read from it only now, give way.
  record_as_hash(KEYS[k])
  local names = {}
  for name in pairs(cjson.decode(doc)) do
    names[#names + 1] = name
  end
  for i = 1, #names, 1000 do
    redis.call('HDEL', KEYS[k], unpack(names, i, math.min(i + 999, #names)))
  end
  redis.call('HSET', KEYS[k], PACKED, doc)
  record_written(k, ttl)
end

-- Where a job is, as a reserve would find it now: a delayed job whose time came and a
-- reservation whose lease ran out are ready. Returns the state ("ready", "delayed",
-- "reserved", "buried", or "none" for no such job), its meta (nil for none), and the ms until
-- it is due or its lease ends (-1 in other states).
local function job_state(ready, delayed, reserved, meta, id, now)
  local j = get_meta(meta, id)
  if not j then
    return 'none', nil, -1
  end
  local member = j.seq .. ':' .. id
  if redis.call('ZSCORE', ready, member) then
    return 'ready', j, -1
  end
  for _, timed in ipairs({{'delayed', delayed}, {'reserved', reserved}}) do
    local score = redis.call('ZSCORE', timed[2], member)
    if score then
      local left = tonumber(score) - now
      if left > 0 then
        return timed[1], j, left
      end
      return 'ready', j, -1
    end
  end
  return 'buried', j, -1
end

-- Byte order of two strings (Lua's < compares with strcoll, which follows the server's locale).
local function bytes_less(x, y)
  for i = 1, math.min(#x, #y) do
    local a, b = string.byte(x, i), string.byte(y, i)
    if a ~= b then
      return a < b
    end
  end
  return #x < #y
end

-- A digest of a record's fields and values that kue_redis.backend computes the same way from
-- the record it read: the sha1 of the sha1s of "<len>:<field><len>:<value>" per field, in
-- byte order (so the order HGETALL lists fields in does not matter).
local function record_digest(record)
  local flat = record_flat(record)
  local sums = {}
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    sums[#sums + 1] = redis.sha1hex(#f .. ':' .. f .. #v .. ':' .. v)
  end
  table.sort(sums, bytes_less)
  return redis.sha1hex(table.concat(sums))
end
