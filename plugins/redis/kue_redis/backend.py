"""The Redis backend: each state change is one atomic Lua script; reserve blocks on the server.

The key layout is in :mod:`kue_redis.keys`, the scripts in ``kue_redis/lua/``.

Round trips: ``put`` is one EVALSHA; ``put_many`` one pipeline per batch of up to
``capabilities.max_batch`` jobs; ``reserve`` one EVALSHA when a job is ready, and ``delete``
one more, or ``delete_and_reserve`` one for both (``capabilities.delete_and_reserve``).
A reserve that finds nothing blocks in BLPOP on the queues' wake-up lists, which put, release
and kick push a token onto, for no longer than the script said the earliest delayed job comes
due or lease runs out, so it also wakes in time for those. Redis checks blocking timeouts once
per cron tick, so a delayed job or an expired lease is seen up to 1/hz late (100 ms at the
default ``hz 10``); a put, release or kick wakes a blocked reserve at once.

Redis Cluster (``?cluster=true``): every script touches one queue's keys, which share a hash
tag, so each queue works on a cluster. A reserve over several queues runs one script and one
BLPOP when their keys share a slot (a backend opened with ``slot=NAME`` puts all its queues in
one, see :mod:`kue_redis.keys`); over queues in different slots it asks each queue for its next job
(one ``head`` script each), reserves from the most urgent, and while none is ready blocks in
BLPOP on one queue's wake-up list after another, ``_SPREAD_SLICE`` seconds each, so a put to
one of those queues is seen within about that slice times the number of queues.

Records (``capabilities.records``, :class:`kue.records.RecordingBackend`): a job's record is
one key per job beside its queue's keys (same hash tag, so the same cluster slot; see
:mod:`kue_redis.keys`): a hash, field -> JSON value, or a string. ``complete`` deletes a
finished job and writes its record in one script, ``complete_and_reserve`` also reserves the
next job, in the same round trip as ``delete_and_reserve``; both write the finished job's
fields as one JSON object: for a job with no record yet and no one waiting for one (one
EXISTS tells both), that object is the whole record, a string set with its expiry in one SET;
otherwise it goes into one field of the record's hash. Either costs the worker less than a
field each (bench/README.md, "Job records"), and a string record less memory than a hash.
``wait_record`` blocks in BLPOP on a per-job list that every write to the record (and a bury
or delete of the job) pushes one token onto per registered waiter; a waiter registers in a
script that first checks that neither the job's state nor its record changed since this
thread last read them (``job_info``, ``read_record``), so a write between a caller's read and
its wait is not missed.

Admin listing (:mod:`kue.listing`): ``list_queues`` SCANs (never KEYS) for the queues' ``meta``
hashes under the backend's prefix, on every primary of a cluster (see :mod:`kue_redis.keys`
for how it tells them from other keys); ``buried`` is one script reading the tail of a
queue's buried list, ``kick_job`` one script that moves one buried job to ready as ``kick``
does.

Durability: ``durable=False``. Whether jobs survive a restart depends on the server's
``appendonly``/``save`` settings, which the backend neither controls nor can trust to stay as
read (CONFIG may be disabled or changed later); operators who run Redis with
``appendfsync always`` get durable queues, but kue does not promise it.

Connections: one redis-py ConnectionPool per backend object, safe to share between threads;
redis-py's pool notices a fork (it compares pids) and a child opens its own connections.
Scripts go through a :class:`~kue_redis.lane.ScriptLane` over that pool, which sends and reads
each EVALSHA on a pooled connection itself (redis-py's per-command layers cost as much client
time as the round trip); a blocking BLPOP waits on the same connection, pipelines go through
the redis-py client.
redis-py resends a command after a dropped connection, so a put may reach the server twice:
the client picks the job id (uuid4) and the put script does nothing for an id that exists.
An ack may reach it twice too: a delete (or complete) whose reply was lost is sent again and
then finds no such job, its own first send having deleted it; a resent ack that finds no such
job counts as done (off a cluster, where the script lane sees the resend; a fused call then
reserves with a second call, and the job its first send reserved, if any, comes back after
its ttr). A resent release, bury or touch that finds its work done raises ReservationLost,
and the job is where the first send put it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError
from redis.retry import Retry

from kue.spi import (
    Ack,
    BackendUnavailable,
    BatchReply,
    Capabilities,
    ConfigError,
    DoneRecord,
    EncodedFields,
    JobInfo,
    JobState,
    JobTooBig,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
    check_reserve_n,
)
from kue_redis.keys import QueueKeys, meta_pattern, queue_of_meta, slot_tag
from kue_redis.lane import ScriptLane
from kue_redis.scripts import Client, ScriptArg, load_scripts, run_pipelined
from kue_redis.settings import RedisSettings, parse_settings

__all__ = [
    "MAX_BATCH", "PACKED_FIELD", "RedisBackend", "packed_args", "packed_json", "parse_record",
    "record_args", "record_digest",
]

#: Jobs per put_many pipeline: one round trip each, small enough not to stall the server.
MAX_BATCH = 1000
#: Longest single BLPOP, as a share of the socket timeout that must outlast it.
_BLOCK_SHARE = 0.5
#: Longest single BLPOP in seconds, whatever the socket timeout.
_BLOCK_CAP = 10.0
#: Shortest BLPOP in ms: Redis reads a timeout that truncates to 0 ms as "for ever".
_MIN_BLOCK_MS = 2

#: Longest BLPOP on one queue's wake-up list when a reserve spans cluster slots, in seconds.
_SPREAD_SLICE = 0.05

#: How much longer than its wait a wait_record registration lasts, in ms: a waiter that dies
#: stops counting after this.
_WATCH_MARGIN_MS = 5000

#: Keys per SCAN call of list_queues: few round trips, each short on the server.
_SCAN_COUNT = 1000

#: Largest offset or limit ``buried`` passes on: list indexes must fit a signed 64-bit integer.
_MAX_INDEX = 2**62

#: Queues whose key names are kept ready; past this the cache starts over.
_KEY_CACHE_SIZE = 4096
#: The most jobs one kick moves: Lua's numbers are doubles, exact to 2**53, and a kick of
#: more than the ids a queue could hold moves them all anyway.
MAX_KICK = 2**32 - 1
#: A give-back (settle_many.lua) adds this to a job's reservation count less the attempt it
#: took back: the count, a reservation's receipt, never repeats; attempts are it modulo this.
ATTEMPT_SPAN = 2**32
#: A script's answer for an ack that found no such job (see ``held`` in lua/common.lua).
_NO_SUCH_JOB = -2

# A replica answers writes with READONLY after a failover demoted the server we reached, and
# a cluster answers CLUSTERDOWN while it has no primary for a slot: for kue those are servers
# it cannot use right now, like a dropped connection. RedisClusterException is what redis-py
# raises when no startup node answers.
_CONNECTION_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.RedisClusterException,
)
# What a plain client gets from a node of a cluster for a key another node serves.
_CLUSTER_REPLIES = (redis.exceptions.MovedError, redis.exceptions.AskError)


def _ms(seconds: float) -> int:
    """Whole milliseconds, rounded up so a delay or ttr is never shorter than asked."""
    return math.ceil(round(seconds * 1000, 6))


#: ``_ms`` of the delays and ttrs a batch of puts repeats (most jobs of a batch share both).
_batch_ms = functools.lru_cache(maxsize=256)(_ms)

#: put_many draws its ids this many at a time.
_ID_CHUNK = 64


@functools.lru_cache(maxsize=4)
def _id_masks(n: int) -> tuple[int, int]:
    """The bits to keep and to set in ``n`` random 16-byte ids to make each a version 4 UUID."""
    keep = int.from_bytes(bytes.fromhex("ffffffffffff0fff3fffffffffffffff") * n, "big")
    put = int.from_bytes(bytes.fromhex("00000000000040008000000000000000") * n, "big")
    return keep, put


def _new_ids(n: int) -> list[str]:
    """``n`` job ids, each what ``uuid.uuid4().hex`` makes (version 4, RFC 4122 variant).

    One ``os.urandom`` call and one pass of integer masks per 64 ids: ``uuid4()`` per id cost
    about 1 to 2 µs each, a third of put_many's client CPU per job.
    """
    ids: list[str] = []
    for start in range(0, n, _ID_CHUNK):
        k = min(_ID_CHUNK, n - start)
        keep, put = _id_masks(k)
        digits = ((int.from_bytes(os.urandom(16 * k), "big") & keep | put)
                  .to_bytes(16 * k, "big").hex())
        ids += [digits[i : i + 32] for i in range(0, 32 * k, 32)]
    return ids


@functools.lru_cache(maxsize=64)
def _ttl_ms(ttl: float | None) -> int:
    """A record's ttl as the scripts take it: ms, or -1 for none.

    Cached: a worker sends the same ttl for every job, and ``_ms`` costs more than a lookup.
    """
    return -1 if ttl is None else max(0, _ms(ttl))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: JSON text of the values a record holds most (json.dumps writes these exactly so), without
#: the encoder's per-call work: a worker encodes a record's fields for every job it finishes.
_FAST_JSON: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: lambda v: float.__repr__(v) if math.isfinite(v) else _dumps(v),
}


def record_args(fields: Mapping[str, Any], ttl: float | None) -> list[ScriptArg]:
    """The ARGV tail of the record scripts (``write_record`` in ``lua/common.lua``).

    ttl in ms (-1: no expiry), then per field its name and JSON text, or "" for a field whose
    value is None: the record keeps it as removed, and read_record leaves it out.
    """
    args: list[ScriptArg] = [_ttl_ms(ttl)]
    fast = _FAST_JSON
    for name, value in fields.items():
        if value is None:
            args += (name, "")
        else:
            encode = fast.get(type(value))
            args += (name, _dumps(value) if encode is None else encode(value))
    return args


#: The record hash field that holds what ``complete`` wrote, as one JSON object (see
#: ``write_packed`` in ``lua/common.lua``; a string record is that object alone, and reads as
#: this one field); no JSON key of kue's starts with a NUL.
PACKED_FIELD = b"\x00packed"


def packed_args(fields: Mapping[str, Any], ttl: float | None) -> list[ScriptArg]:
    """The ARGV tail of complete and complete_reserve (``write_packed`` in ``lua/common.lua``).

    ttl in ms (-1: no expiry), then the fields as one JSON object (None: removed): one
    encoder call and one hash field for the write every finished job makes. The field names
    are not sent: the script reads them from the object only where a record was there before.
    TypeError or ValueError if a value is not JSON-able.
    """
    return [_ttl_ms(ttl), packed_json(fields)]


def packed_json(fields: Mapping[str, Any]) -> str:
    """``fields`` as one JSON object: the text the worker encoded, or encoded here."""
    if type(fields) is DoneRecord:  # the worker's, every job: cheaper than isinstance
        return fields.json
    if isinstance(fields, DoneRecord | EncodedFields):
        return fields.json
    return _dumps(fields if isinstance(fields, dict) else dict(fields))


#: The ttl of an ack that deletes its job and writes no record (``lua/settle_many.lua``).
_DELETE_ONLY = -2


def _lost_acks(acks: Sequence[Ack], codes: Sequence[Any], resent: bool) -> list[Reservation]:
    """The jobs of the acks ``lua/settle_many.lua`` listed as not done (ack number, code).

    After a ``resent`` call an ack that found no such job is not listed: the first send,
    whose reply the dropped connection lost, deleted it.
    """
    return [acks[int(codes[i]) - 1].job for i in range(0, len(codes), 2)
            if not (resent and int(codes[i + 1]) == _NO_SUCH_JOB)]


def parse_record(flat: Sequence[Any]) -> dict[str, Any]:
    """A record from its hash fields: the PACKED object, and over it the single fields.

    A single field whose value is "" was removed. A string record reads as its PACKED field
    alone (``record_flat`` in ``lua/common.lua``).
    """
    record: dict[str, Any] = {}
    fields: list[tuple[Any, Any]] = []
    for f, v in zip(flat[0::2], flat[1::2], strict=True):
        if _bytes(f) == PACKED_FIELD:
            record = {k: x for k, x in json.loads(v).items() if x is not None}
        else:
            fields.append((f, v))
    for f, v in fields:
        if v:
            record[_text(f)] = json.loads(v)
        else:
            record.pop(_text(f), None)
    return record


def record_digest(flat: Sequence[Any]) -> str:
    """The digest ``record_digest`` in ``lua/common.lua`` computes of the same record."""
    sums = sorted(
        hashlib.sha1(b"%d:%s%d:%s" % (len(f), f, len(v), v), usedforsecurity=False).hexdigest()
        for f, v in zip(map(_bytes, flat[0::2]), map(_bytes, flat[1::2]), strict=True)
    )
    return hashlib.sha1("".join(sums).encode(), usedforsecurity=False).hexdigest()


class RedisBackend:
    """A kue backend on one Redis server (``redis://`` or ``rediss://``)."""

    #: A done record is stored as the worker's text (kue.records.takes_done_records).
    takes_done_records: ClassVar[bool] = True

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        """Prepare a connection pool for ``url``; nothing connects until the first call."""
        self.settings: RedisSettings = parse_settings(url, options)
        s = self.settings
        self.capabilities = Capabilities(
            name="redis",
            priority=True,
            fifo=True,
            delay=True,
            bury=True,
            peek=True,
            durable=False,
            shared=True,
            max_body=s.max_body,
            min_ttr=1.0,
            # Redis ends a blocking BLPOP once per cron tick: 100 ms at the default hz 10.
            timing_tolerance=0.15,
            max_batch=MAX_BATCH,
            delete_and_reserve=True,
            records=True,
            unique_put=True,
            reserve_many=True,
            deferred_acks=True,
        )
        self._retry = Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.5), s.retries)
        self._pool: redis.ConnectionPool | None = None
        self._cluster_lock = threading.Lock()
        # A RedisCluster asks its startup node for the slot map as it is built, so on a
        # cluster the client is built at the first call instead (see client).
        self._client: Client | None = None
        if not s.cluster:
            self._pool = redis.ConnectionPool.from_url(
                s.client_url, retry=self._retry, socket_connect_timeout=5.0, **s.client_kwargs
            )
            self._client = redis.Redis(connection_pool=self._pool)
        # Scripts run on the lane off a cluster; a cluster client routes them itself.
        self._lane: ScriptLane | None = None if self._pool is None else ScriptLane(self._pool)
        self._scripts = load_scripts()
        # Building key names is a measurable share of a put's client time on a hot path.
        self._key_cache: dict[str, QueueKeys] = {}
        # Per set of queue names: do all their keys live in one cluster slot?
        self._one_slot_cache: dict[tuple[str, ...], bool] = {}
        self._block_max = min(_BLOCK_CAP, s.socket_timeout * _BLOCK_SHARE)
        # Per thread, what it last saw of one job: (queue, id, state, record digest), for
        # wait_record to tell whether anything changed since.
        self._seen = threading.local()
        # Per thread, the acks of its last settle_many_deferred and lost acks not yet asked for.
        self._deferred = threading.local()

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The redis-py client: a Redis over this backend's pool, or a RedisCluster."""
        client = self._client
        if client is None:
            with self._guard(), self._cluster_lock:  # one cluster client for every thread
                if self._client is None:
                    self._client = RedisCluster.from_url(
                        self.settings.client_url,
                        retry=self._retry,
                        socket_connect_timeout=5.0,
                        **self.settings.client_kwargs,
                    )
                client = self._client
        return client

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a refused or dropped connection into BackendUnavailable naming the URL."""
        try:
            yield
        except _CLUSTER_REPLIES as exc:
            raise ConfigError(
                f"{self.settings.masked_url} is a node of a Redis Cluster (it answered "
                f"{str(exc)!r}): add cluster=true to the URL"
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise BackendUnavailable(self.settings.masked_url, str(exc) or repr(exc)) from exc

    def _run(self, name: str, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        with self._guard():
            return self._scripts[name].run(self._lane or self.client, keys, args)

    def _one_slot(self, names: Sequence[str]) -> bool:
        """Whether one script may touch every key of these queues (always, off a cluster)."""
        if not self.settings.cluster:
            return True
        key = tuple(names)
        one = self._one_slot_cache.get(key)
        if one is None:
            if len(self._one_slot_cache) >= _KEY_CACHE_SIZE:
                self._one_slot_cache.clear()
            one = len({key_slot(self._keys(q).ready.encode()) for q in names}) == 1
            self._one_slot_cache[key] = one
        return one

    def _keys(self, queue: str) -> QueueKeys:
        keys = self._key_cache.get(queue)
        if keys is None:
            if len(self._key_cache) >= _KEY_CACHE_SIZE:
                self._key_cache.clear()
            keys = QueueKeys.of(self.settings.prefix, queue, self.settings.slot)
            self._key_cache[queue] = keys
        return keys

    def _check_body(self, body: bytes) -> None:
        if len(body) > self.capabilities.max_body:
            raise JobTooBig(len(body), self.capabilities.max_body, self.capabilities.name)

    # -- putting -----------------------------------------------------------------------------

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Store a job in one round trip; the id is chosen here, so a resend is harmless."""
        keys = self._keys(queue)
        self._check_body(body)
        job_id = uuid.uuid4().hex
        self._run(
            "put",
            keys.put_keys,
            [job_id, body, priority, _ms(delay), _ms(ttr)],
        )
        return job_id

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Store several jobs: one put_many script per MAX_BATCH jobs, all in one pipeline.

        One script per batch costs the server one INCRBY and one wake-up for the batch instead
        of one each per job (measured 1.1x a raw pipeline of single puts, against 0.4x).
        """
        keys = self._keys(queue).put_keys
        max_body = self.capabilities.max_body
        for item in items:
            if len(item.body) > max_body:
                self._check_body(item.body)
        ids = _new_ids(len(items))
        calls: list[tuple[Sequence[str], Sequence[ScriptArg]]] = []
        for start in range(0, len(items), MAX_BATCH):
            args: list[ScriptArg] = []
            for job_id, i in zip(ids[start : start + MAX_BATCH],
                                 items[start : start + MAX_BATCH], strict=True):
                args += (job_id, i.body, i.priority, _batch_ms(i.delay), _batch_ms(i.ttr))
            calls.append((keys, args))
        with self._guard():
            run_pipelined(self.client, self._scripts["put_many"], calls)
        return ids

    def put_unique(
        self, queue: str, body: bytes, priority: int, delay: float, ttr: float, key: str,
        ttl: float, until_done: bool,
    ) -> tuple[str, bool]:
        """Store a job under ``key`` unless a live job holds it: one script, one round trip."""
        keys = self._keys(queue)
        self._check_body(body)
        found = self._run(
            "put_unique",
            [*keys.put_keys, keys.reserved, keys.unique_key(key)],
            [uuid.uuid4().hex, body, priority, _ms(delay), _ms(ttr), max(1, _ms(ttl)),
             int(until_done)],
        )
        return _text(found[1]), bool(int(found[0]))

    def claim(self, namespace: str, key: str, value: str, ttl: float,
              expect: str | None) -> str | None:
        """Set ``key`` to ``value`` for ``ttl`` s if it holds ``expect`` (kue.ClaimStore)."""
        found = self._run(
            "claim", [self._keys(namespace).claim_key(key)],
            [value, max(1, _ms(ttl)), expect or "", 0 if expect is None else 1],
        )
        return None if found is None else _text(found)

    # -- reserving ---------------------------------------------------------------------------

    def _reserve_keys(self, queues: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        """Queue names without repeats, the reserve script's KEYS, and the wake-up lists."""
        names = list(dict.fromkeys(queues))
        if not names:
            raise ValueError("reserve needs at least one queue name")
        all_keys = [self._keys(q) for q in names]
        return names, [k for qk in all_keys for k in qk.reserve_keys], [qk.wake for qk in all_keys]

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Reserve the most urgent ready job of ``queues``, blocking in BLPOP while none is."""
        names, script_keys, wake_keys = self._reserve_keys(queues)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._one_slot(names):
            return self._reserve_spread(names, deadline)
        found = self._run("reserve", script_keys, [])
        return self._wait_for_job(names, script_keys, wake_keys, deadline, found)

    def delete_and_reserve(
        self, job: Reservation, queues: Sequence[str], timeout: float | None
    ) -> Reservation | None:
        """Delete ``job``, then reserve the next job of ``queues``: one round trip if one is ready.

        Raises ReservationLost (and reserves nothing) if ``job`` is no longer held.
        """
        names, script_keys, wake_keys = self._reserve_keys(queues)
        if not self._one_slot([job.queue, *names]):
            self.delete(job)
            return self.reserve(names, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        found = self._run(
            "delete_reserve",
            [*self._keys(job.queue).job_keys, *script_keys],
            [job.id, job.receipt],
        )
        if int(found[0]) < 0:
            lost = int(found[1])
            if self._done_before(lost):
                return self.reserve(names, timeout)
            raise ReservationLost(job.queue, job.id, "its ttr ran out" if lost == -1 else "")
        return self._wait_for_job(names, script_keys, wake_keys, deadline, found)

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs in one script (see kue.BatchBackend)."""
        check_reserve_n(n, self.capabilities)
        return self.settle_many((), (), queues, n, timeout).reserved

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Ack, give back and reserve in one script (see kue.BatchBackend.settle_many).

        On a cluster whose queues of the call span slots, the acks, give-backs and reserve
        are sent one by one instead.
        """
        check_reserve_n(n, self.capabilities, zero=True)
        # Encoded first: a value that is not JSON-able raises before anything is sent.
        docs = [None if a.fields is None else packed_json(a.fields) for a in acks]
        names, script_keys, wake_keys = self._reserve_keys(queues) if n else ([], [], [])
        involved = [*(a.job.queue for a in acks), *(j.queue for j in give_back), *names]
        if not self._one_slot(list(dict.fromkeys(involved))):
            return self._settle_spread(acks, give_back, names, n, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        keys, args = self._settle_call(acks, docs, give_back, n, script_keys)
        lost_codes, found, wait = self._run("settle_many", keys, args)
        lost = _lost_acks(acks, lost_codes, resent=bool(lost_codes) and self._resent())
        reserved = [self._reservation(names[int(f[0]) - 1], f) for f in found]
        if not reserved and n and timeout != 0:
            first = self._wait_for_job(names, script_keys, wake_keys, deadline, list(wait))
            if first is not None:
                reserved = [first]
                if n > 1:
                    reserved += self.settle_many((), (), names, n - 1, 0).reserved
        return BatchReply(reserved, lost)

    def _settle_call(
        self, acks: Sequence[Ack], docs: Sequence[str | None], give_back: Sequence[Reservation],
        n: int, script_keys: Sequence[str],
    ) -> tuple[list[str], list[ScriptArg]]:
        """KEYS and ARGV of ``lua/settle_many.lua``: acks, give-backs, a reserve of ``n``.

        ``docs`` holds each ack's record as JSON text (None: delete only).
        """
        keys: list[str] = []
        args: list[ScriptArg] = [len(acks), len(give_back), n]
        for ack, doc in zip(acks, docs, strict=True):
            job = ack.job
            qk = self._keys(job.queue)
            keys += qk.job_keys
            keys += qk.record_keys(job.id)
            if doc is None:
                args += (job.id, job.receipt, _DELETE_ONLY)
            else:
                args += (job.id, job.receipt, _ttl_ms(ack.ttl), doc)
        for job in give_back:
            keys += self._keys(job.queue).job_keys
            args += [job.id, job.receipt]
        keys += script_keys
        return keys, args

    def settle_many_deferred(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int,
    ) -> list[Reservation]:
        """Give back and reserve, returning at once; then ack (kue.spi.DeferredAckBackend).

        Two settle_many scripts on this thread's lane: the first gives back and reserves; once
        its reply is in, the second, which acks, is sent and not waited for. Off a lane (a
        cluster) or across cluster slots this is settle_many, its lost acks kept for
        :meth:`acks_outcome`.
        """
        check_reserve_n(n, self.capabilities, zero=True)
        docs = [None if a.fields is None else packed_json(a.fields) for a in acks]
        deferred = self._deferred
        if getattr(deferred, "acks", None):
            deferred.lost = self.acks_outcome()  # the caller did not ask: kept for it
        names, script_keys, _ = self._reserve_keys(queues) if n else ([], [], [])
        involved = [*(a.job.queue for a in acks), *(j.queue for j in give_back), *names]
        lane = self._lane
        if lane is None or not acks or not self._one_slot(list(dict.fromkeys(involved))):
            reply = self.settle_many(acks, give_back, queues, n, 0)
            deferred.lost = [*getattr(deferred, "lost", ()), *reply.lost]
            return reply.reserved
        first = self._settle_call((), (), give_back, n, script_keys)
        second = self._settle_call(acks, docs, (), 0, ())
        script = self._scripts["settle_many"]
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in
                    (first, second)]
        with self._guard():
            try:
                _, found, _ = lane.execute_deferring(*commands)
            except NoScriptError:  # the acks were not sent
                lane.script_load(script.source)
                _, found, _ = lane.execute_deferring(*commands)
        deferred.acks = list(acks)
        return [self._reservation(names[int(f[0]) - 1], f) for f in found]

    def acks_outcome(self) -> list[Reservation]:
        """The deferred acks of this thread that were not done (see kue.spi.DeferredAckBackend)."""
        deferred = self._deferred
        lost: list[Reservation] = getattr(deferred, "lost", None) or []
        acks: list[Ack] = getattr(deferred, "acks", None) or []
        deferred.lost, deferred.acks = [], []
        if not acks:
            return lost
        assert self._lane is not None, "deferred acks are sent on a lane"
        reply = self._lane.take_deferred()
        if reply is None or reply.error is not None:
            error = reply.error if reply is not None else None
            if error is not None and not isinstance(error, _CONNECTION_ERRORS):
                raise error  # the server refused the acks (not the connection)
            why = str(error) or repr(error) if error is not None else "no reply"
            raise BackendUnavailable(self.settings.masked_url, f"the outcome of {len(acks)} "
                                     f"acks was lost with the connection ({why})")
        # Sent once, after its reserve's reply was in: a job it found gone was not its work.
        return [*lost, *_lost_acks(acks, reply.value[0], resent=False)]

    def _settle_spread(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], names: list[str], n: int,
        timeout: float | None,
    ) -> BatchReply:
        """settle_many one call at a time, for queues in different cluster slots."""
        lost: list[Reservation] = []
        for ack in acks:
            try:
                if ack.fields is None:
                    self.delete(ack.job)
                else:
                    self.complete(ack.job, ack.fields, ack.ttl)
            except ReservationLost:
                lost.append(ack.job)
        for back in give_back:
            self.settle_many((), [back], [], 0, 0)
        reserved: list[Reservation] = []
        while len(reserved) < n:
            job = self.reserve(names, timeout if not reserved else 0)
            if job is None:
                break
            reserved.append(job)
        return BatchReply(reserved, lost)

    def _resent(self) -> bool:
        """Whether this thread's last script call was sent again after a dropped connection."""
        return self._lane is not None and self._lane.resent()

    def _done_before(self, result: int) -> bool:
        """Whether an ack that found no such job was resent: its first send did the work."""
        return result == _NO_SUCH_JOB and self._resent()

    def _wait_for_job(
        self,
        names: list[str],
        script_keys: list[str],
        wake_keys: list[str],
        deadline: float | None,
        found: list[Any],
    ) -> Reservation | None:
        """Given the reserve script's first answer, block and retry until a job or the deadline."""
        dropped = 0
        while True:
            if int(found[0]) > 0:
                return self._reservation(names[int(found[0]) - 1], found)
            wait = self._block_max
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            if int(found[1]) >= 0:
                wait = min(wait, int(found[1]) / 1000)
            wait_ms = max(math.ceil(wait * 1000), _MIN_BLOCK_MS)
            try:
                self._block(wake_keys, wait_ms / 1000)
                dropped = 0
            except _CONNECTION_ERRORS as exc:
                # A connection dropped while blocked: try again (the script tells whether
                # the server is really gone) but give up after as many drops as retries.
                dropped += 1
                if dropped > self.settings.retries:
                    raise BackendUnavailable(self.settings.masked_url, str(exc)) from exc
            found = self._run("reserve", script_keys, [])

    def _block(self, wake_keys: list[str], seconds: float) -> None:
        """BLPOP on wake-up lists; off a cluster on the thread's script connection.

        A thread blocked here runs no script meanwhile, so one connection per thread serves
        both, and a pool sized for N threads needs N connections, not 2N.
        """
        if self._lane is not None:
            self._lane.execute("BLPOP", *wake_keys, seconds)
        else:
            self.client.blpop(wake_keys, timeout=seconds)

    def _reserve_spread(self, names: list[str], deadline: float | None) -> Reservation | None:
        """Reserve across queues in different cluster slots: pick by head, then reserve one.

        Each queue answers for itself (``head``), the most urgent by (priority, seq) is
        reserved with the one-queue script; if another consumer took it meanwhile, ask again.
        With nothing ready, block on one queue's wake-up list after another.
        """
        turn = dropped = 0
        while True:
            best: tuple[int, str, str] | None = None
            wait_ms = -1
            for name in names:
                head = self._run("head", self._keys(name).reserve_keys, [])
                if int(head[0]) == 1:
                    candidate = (int(head[1]), _text(head[2]), name)
                    if best is None or candidate[:2] < best[:2]:
                        best = candidate
                elif int(head[1]) >= 0:
                    wait_ms = int(head[1]) if wait_ms < 0 else min(wait_ms, int(head[1]))
            if best is not None:
                keys = self._keys(best[2])
                found = self._run("reserve", keys.reserve_keys, [])
                if int(found[0]) > 0:
                    return self._reservation(best[2], found)
                continue
            wait = _SPREAD_SLICE
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            if wait_ms >= 0:
                wait = min(wait, wait_ms / 1000)
            wake = self._keys(names[turn % len(names)]).wake
            turn += 1
            try:
                self.client.blpop([wake], timeout=max(math.ceil(wait * 1000), _MIN_BLOCK_MS) / 1000)
                dropped = 0
            except _CONNECTION_ERRORS as exc:
                # As in _wait_for_job: a dropped blocking call is tried again, within limits.
                dropped += 1
                if dropped > self.settings.retries:
                    raise BackendUnavailable(self.settings.masked_url, str(exc)) from exc

    @staticmethod
    def _reservation(queue: str, found: list[Any]) -> Reservation:
        leases = int(found[4])
        return Reservation(
            queue=queue,
            id=_text(found[1]),
            body=bytes(found[2]),
            priority=int(found[3]),
            attempts=leases % ATTEMPT_SPAN,
            ttr=int(found[5]) / 1000,
            receipt=str(leases),
        )

    # -- acting on a reservation -------------------------------------------------------------

    def _act(self, name: str, job: Reservation, *extra: ScriptArg, wakes: bool = False) -> None:
        """Run a script on a reservation; ``wakes``: it also takes the job's waiters keys."""
        keys = self._keys(job.queue)
        script_keys: Sequence[str] = keys.job_keys
        if wakes:
            script_keys = (*script_keys, *keys.record_keys(job.id)[1:])
        result = int(self._run(name, script_keys, [job.id, job.receipt, *extra]))
        if result == 1 or (name == "delete" and self._done_before(result)):
            return
        raise ReservationLost(job.queue, job.id, "its ttr ran out" if result == -1 else "")

    def delete(self, job: Reservation) -> None:
        """Remove a reserved job for good (waking whoever waits for its record)."""
        self._act("delete", job, wakes=True)

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a reserved job back with a new priority, ready now or after ``delay``."""
        self._act("release", job, priority, _ms(delay))

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Set a reserved job aside until kicked; ``priority`` replaces its own if given."""
        self._act("bury", job, "" if priority is None else priority, wakes=True)

    def touch(self, job: Reservation) -> None:
        """Give a reserved job its full ttr again, from now."""
        self._act("touch", job)

    # -- looking and kicking -----------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move the n longest-buried jobs, or if none are buried the n soonest-due delayed."""
        return int(self._run("kick", self._keys(queue).job_keys, [min(n, MAX_KICK)]))

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """A copy of the job that leaves ``state`` next; nothing is reserved."""
        st = JobState(state)
        if st is JobState.RESERVED:
            raise ValueError(f"peek takes ready, delayed or buried, not {st.value!r}")
        found = self._run("peek", self._keys(queue).job_keys, [st.value])
        if found is None:
            return None
        return JobInfo(
            queue=queue,
            id=_text(found[0]),
            body=bytes(found[1]),
            priority=int(found[2]),
            state=st,
            attempts=int(found[3]) % ATTEMPT_SPAN,
        )

    def stats(self, queue: str) -> QueueStats:
        """Counts of jobs per state, after due jobs and expired leases have moved to ready."""
        ready, delayed, reserved, buried = self._run("stats", self._keys(queue).job_keys, [])
        return QueueStats(
            ready=int(ready), delayed=int(delayed), reserved=int(reserved), buried=int(buried)
        )

    # -- records (kue.records.RecordingBackend) ---------------------------------------------

    def complete(self, job: Reservation, fields: Mapping[str, Any], ttl: float) -> None:
        """Delete a held job and merge ``fields`` into its record, in one script.

        The fields go into one hash field as one JSON object, which costs the server and this
        client less than one field each (see ``write_packed`` in ``lua/common.lua``).

        Raises ReservationLost (and writes nothing) if the reservation is no longer held.
        """
        keys = self._keys(job.queue)
        found = int(self._run(
            "complete",
            [*keys.job_keys, *keys.record_keys(job.id)],
            [job.id, job.receipt, *packed_args(fields, ttl)],
        ))
        if found != 1 and not self._done_before(found):
            raise ReservationLost(job.queue, job.id, "its ttr ran out" if found == -1 else "")

    def complete_and_reserve(
        self,
        job: Reservation,
        fields: Mapping[str, Any],
        ttl: float,
        queues: Sequence[str],
        timeout: float | None,
    ) -> Reservation | None:
        """Complete ``job`` and reserve the next job of ``queues``: one round trip if one is ready.

        As :meth:`delete_and_reserve`, with :meth:`complete` for the delete. Raises
        ReservationLost (and writes and reserves nothing) if ``job`` is no longer held.
        """
        names, script_keys, wake_keys = self._reserve_keys(queues)
        if not self._one_slot([job.queue, *names]):
            self.complete(job, fields, ttl)
            return self.reserve(names, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        keys = self._keys(job.queue)
        found = self._run(
            "complete_reserve",
            [*keys.job_keys, *keys.record_keys(job.id), *script_keys],
            [job.id, job.receipt, *packed_args(fields, ttl)],
        )
        if int(found[0]) < 0:
            lost = int(found[1])
            if self._done_before(lost):
                return self.reserve(names, timeout)
            raise ReservationLost(job.queue, job.id, "its ttr ran out" if lost == -1 else "")
        return self._wait_for_job(names, script_keys, wake_keys, deadline, found)

    def update_record(self, queue: str, job_id: str, fields: Mapping[str, Any],
                      ttl: float | None) -> None:
        """Merge ``fields`` into the job's record, which expires ``ttl`` s from now (None: never).

        One hash field per field, a JSON value each; a field whose value is None is removed
        (kept as "", which :meth:`read_record` leaves out).
        Whoever waits for the record wakes.
        """
        self._run("update_record", self._keys(queue).record_keys(job_id), record_args(fields, ttl))

    def read_record(self, queue: str, job_id: str) -> dict[str, Any] | None:
        """The job's record, or None if there is none (never written, or expired)."""
        record = self._keys(queue).record_keys(job_id)[0]
        flat = self._run("read_record", [record], [])
        self._saw(queue, job_id, digest=record_digest(flat))
        return parse_record(flat) if flat else None

    def wait_record(self, queue: str, job_id: str, timeout: float) -> None:
        """Return once the job's record (or its state) may have changed, or after ``timeout`` s.

        Returns at once if the job's state or record already differs from what this thread
        last read of it (``job_info``, ``read_record``); otherwise blocks in BLPOP on the
        job's changed list, which each write to the record, and a bury or delete of the job,
        pushes a token onto per waiter. Early returns are rare but possible (two waiters on
        one job racing for a token, a waiter that died leaving its registration behind).
        """
        if timeout <= 0:
            return
        keys = self._keys(queue)
        record, waiters, changed = keys.record_keys(job_id)
        state, digest = self._last_seen(queue, job_id)
        hold_ms = _ms(timeout) + _WATCH_MARGIN_MS
        if int(self._run(
            "watch_record",
            [keys.ready, keys.delayed, keys.reserved, keys.meta, record, waiters, changed],
            [job_id, state, digest, hold_ms],
        )) == 1:
            return
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) * 1000 >= _MIN_BLOCK_MS:
            wait_ms = max(math.ceil(min(left, self._block_max) * 1000), _MIN_BLOCK_MS)
            with self._guard():
                if self._pop(changed, wait_ms / 1000) is not None:
                    return
        self._run("unwatch_record", [waiters, changed], [])

    def _pop(self, key: str, seconds: float) -> Any:
        """BLPOP one list, on the thread's script connection off a cluster (as _block)."""
        if self._lane is not None:
            return self._lane.execute("BLPOP", key, seconds)
        return self.client.blpop([key], timeout=seconds)

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id in any state, without changing anything.

        A delayed job whose time came and a reservation whose lease ran out are ready (the
        next reserve hands them out); ``due_in`` is the time left of a delayed job or a lease.
        """
        found = self._run("job_info", self._keys(queue).job_keys, [job_id])
        if found is None:
            self._saw(queue, job_id, state="none")
            return None
        state = _text(found[0])
        self._saw(queue, job_id, state=state)
        left = int(found[4])
        return JobInfo(
            queue=queue,
            id=job_id,
            body=bytes(found[1]),
            priority=int(found[2]),
            state=JobState(state),
            attempts=int(found[3]) % ATTEMPT_SPAN,
            due_in=left / 1000 if left >= 0 else None,
        )

    def _saw(self, queue: str, job_id: str, *, state: str | None = None,
             digest: str | None = None) -> None:
        """Note what this thread just read of a job (for :meth:`wait_record`)."""
        last = getattr(self._seen, "last", None)
        if last is None or last[0] != queue or last[1] != job_id:
            last = (queue, job_id, "", "")
        self._seen.last = (queue, job_id, last[2] if state is None else state,
                           last[3] if digest is None else digest)

    def _last_seen(self, queue: str, job_id: str) -> tuple[str, str]:
        """The job's state and record digest this thread last read ("" for not read)."""
        last = getattr(self._seen, "last", None)
        if last is None or last[0] != queue or last[1] != job_id:
            return "", ""
        return last[2], last[3]

    # -- admin listing (kue.listing.QueueListing, kue.listing.JobBrowser) -------------------

    def list_queues(self) -> list[str]:
        """The queues that hold a job in any state, sorted: those whose ``meta`` hash exists.

        Found with SCAN (never KEYS) for the ``meta`` keys of this backend's prefix, on every
        primary of a cluster; a name read from another key that only looks like a ``meta``
        key (see :mod:`kue_redis.keys`) is checked against its queue's ``seq`` key, in one
        more round trip, and left out. Each SCAN call is short, but a large keyspace takes
        many of them.
        """
        prefix = self.settings.prefix
        pattern = meta_pattern(prefix)
        names: set[str] = set()
        with self._guard():
            client = self.client
            nodes: list[redis.Redis]
            if isinstance(client, RedisCluster):
                nodes = [client.get_redis_connection(node)
                         for node in client.get_primaries()]  # type: ignore[no-untyped-call]
            else:
                nodes = [client]
            for node in nodes:
                for key in node.scan_iter(match=pattern, count=_SCAN_COUNT, _type="hash"):
                    name = queue_of_meta(prefix, key)
                    if name is not None:
                        names.add(name)
            doubtful = sorted(name for name in names if "}:" in name)
            if doubtful:
                pipe = client.pipeline(transaction=False)
                for name in doubtful:
                    pipe.type(QueueKeys.of(prefix, name).seq)
                for name, kind in zip(doubtful, pipe.execute(), strict=True):
                    if _text(kind) != "string":
                        names.discard(name)
        # The names read back carry the slot's tag (see kue_redis.keys): keep this backend's.
        head = slot_tag(self.settings.slot)
        if head:
            return sorted(name[len(head):] for name in names if name.startswith(head))
        return sorted(names)

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Up to ``limit`` buried jobs of ``queue`` after skipping ``offset``, newest buried first.

        One script reads them from the tail of the buried list (bury appends to it) with
        their bodies, priorities and attempts; nothing changes. Copies with state
        ``buried``; ``[]`` past the end or for a queue without buried jobs. Raises
        ValueError for a ``limit`` below 1 or an ``offset`` below 0.
        """
        if limit < 1 or offset < 0:
            raise ValueError(f"buried takes limit >= 1 and offset >= 0, got {limit}, {offset}")
        if offset >= _MAX_INDEX:
            return []
        limit = min(limit, _MAX_INDEX)
        found = self._run(
            "buried", self._keys(queue).job_keys, [-(offset + limit), -(offset + 1)]
        )
        return [
            JobInfo(
                queue=queue,
                id=_text(job_id),
                body=bytes(body),
                priority=int(priority),
                state=JobState.BURIED,
                attempts=int(attempts) % ATTEMPT_SPAN,
            )
            for job_id, body, priority, attempts in found
        ]

    def kick_job(self, queue: str, job_id: str) -> bool:
        """Move the buried job ``job_id`` of ``queue`` to ready, in one script; True if it moved.

        As :meth:`kick` moves a job: its priority, attempts and place in put order among
        jobs of its priority are kept, and a reserve blocked on the queue wakes. False,
        changing nothing, if the queue holds no buried job with this id (another state,
        another queue, gone, or an id this backend never made).
        """
        return int(self._run("kick_job", self._keys(queue).job_keys, [job_id])) == 1

    def close(self) -> None:
        """Close every pooled connection."""
        if self._pool is not None:
            self._pool.disconnect()
        if isinstance(self._client, RedisCluster):
            self._client.close()

    def __repr__(self) -> str:
        return f"<RedisBackend {self.settings.masked_url}>"
