"""The embedded default backend: one SQLite file, durable, shared by every process using it.

This module is the queue protocol on table ``kue_jobs`` (:mod:`kue.backends.sqlite_schema`).
The URL and its options are read by :mod:`kue.backends.sqlite_options`; due times are on the
file's own clock (:mod:`kue.backends.sqlite_clock`); job records' expiry is on the wall clock.

Reserving takes the first row of the partial index ``kue_jobs_ready (queue, priority, id) WHERE
state = 0`` in a single ``UPDATE ... RETURNING`` statement, which SQLite runs under its write
lock, so two consumers can never take one job, and the cost is O(log n) whatever the depth.
Finishing a job moves its index entry from ``kue_jobs_waiting`` to the end of ``kue_jobs_done``
(see ``complete``).

A blocked reserve waits on a condition that puts from this process signal, and between those
checks ``PRAGMA data_version`` (which changes when another connection commits). The checks
start :data:`FIRST_POLL` apart and back off to :data:`POLL_INTERVAL`: a put from another
process wakes a reserve within 25 ms, and an idle consumer costs well under 1 % of a core.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from kue.backends import sqlite_records as records
from kue.backends import sqlite_schema as schema
from kue.backends import sqlite_unique as unique
from kue.backends.sqlite_clock import FileClock, boot_id
from kue.backends.sqlite_options import (
    DEFAULT_MAX_BODY,
    OPTIONS,
    path_from_url,
    synchronous_pragma,
)
from kue.backends.sqlite_schema import BURIED, DELAYED, DONE, READY, RESERVED
from kue.backends.sweep import Sweep
from kue.spi import (
    Ack,
    BackendUnavailable,
    BatchReply,
    Capabilities,
    DoneRecord,
    EncodedFields,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
    check_reserve_n,
    hookimpl,
    read_options,
)

__all__ = [
    "CAPABILITIES",
    "FIRST_POLL",
    "MAX_COMPOUND",
    "POLL_INTERVAL",
    "FileClock",
    "SQLiteBackend",
    "boot_id",
    "kue_backend",
    "kue_contract_server",
    "path_from_url",
]

#: Seconds between checks for commits by other processes once a reserve has waited a while.
POLL_INTERVAL = 0.025
#: Seconds before the first such check; the interval doubles up to POLL_INTERVAL.
FIRST_POLL = 0.002
#: Most SELECTs one compound statement may join (SQLITE_MAX_COMPOUND_SELECT as built by
#: default); a reserve over more queues names them in one JSON array instead.
MAX_COMPOUND = 500
#: SQLite's largest INTEGER; a kick of more jobs than this moves them all anyway.
MAX_INTEGER = 2**63 - 1

CAPABILITIES = Capabilities(
    name="sqlite",
    durable=True,
    shared=True,
    max_body=DEFAULT_MAX_BODY,
    min_ttr=1.0,
    # Exact due times; a reserve blocked in another process sees a commit within POLL_INTERVAL.
    timing_tolerance=0.05,
    delete_by_id=True,
    records=True,
    unique_put=True,
    reserve_many=True,
)

#: JSON as records hold it (made once: ``json.dumps`` with options builds an encoder per call).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

#: Record fields a done row keeps in its own columns rather than in its record.
_IN_ROW = frozenset({"state", "attempts", "priority"})
#: A done row's columns from ``body`` on: body, record, name, enqueued_at, finished_at,
#: started_at (see :mod:`kue.backends.sqlite_schema`).
_Columns = tuple[str, str | None, str | None, float | None, int | None, int | None]


_STATES = {READY: JobState.READY, DELAYED: JobState.DELAYED, RESERVED: JobState.RESERVED,
           BURIED: JobState.BURIED}

#: The WHERE of ``kue_jobs_waiting``. SQLite uses a partial index only for a query whose WHERE
#: holds these very terms, so every query meant for the index repeats them. ``!=`` is no range
#: the planner could prefer to the query's own ``state = ?`` or ``state IN (...)``; and an
#: ``IN`` list in an index's WHERE costs SQLite about 30 µs on each write of a row (measured
#: with ``state IN (1, 2, 3)``), against well under 1 µs for two comparisons.
_WAITING = "state != 0 AND state != 4"

_INSERT = (
    "INSERT INTO kue_jobs (queue, state, priority, due, ttr, body) VALUES (?, ?, ?, ?, ?, ?) "
    "RETURNING id"
)
_PROMOTE = f"UPDATE kue_jobs SET state = 0 WHERE queue = ? AND state IN (1, 2) AND {_WAITING} " \
    "AND due <= ?"
_HAS_DUE = f"SELECT 1 FROM kue_jobs WHERE queue = ? AND state IN (1, 2) AND {_WAITING} " \
    "AND due <= ? LIMIT 1"
_NEXT_DUE = f"SELECT MIN(due) FROM kue_jobs WHERE queue = ? AND state IN (1, 2) AND {_WAITING}"
_FIRST_READY = "SELECT id, priority FROM kue_jobs WHERE queue = ? AND state = 0 " \
    "ORDER BY priority, id LIMIT 1"
#: A give-back adds this to ``attempts`` less the attempt it took back, so the column (the
#: receipt) never repeats a value while the attempts reported, the column modulo this, drop.
ATTEMPT_SPAN = 2**32
_HELD = "id = ? AND state = 2 AND attempts = ? AND due > ?"
#: A held job becomes its done record; ``due`` is minus the record's expiry (see complete),
#: then the record's columns, as :meth:`SQLiteBackend._record_doc` gives them.
_COMPLETE = (f"UPDATE kue_jobs SET state = {DONE}, due = ?, body = ?, record = ?, name = ?, "
             f"enqueued_at = ?, finished_at = ?, started_at = ? WHERE {_HELD}")
_DELETE_HELD = f"DELETE FROM kue_jobs WHERE {_HELD}"
#: A done row's record: attempts and priority, then what schema.done_record reads.
_READ_DONE = (f"SELECT attempts % {ATTEMPT_SPAN}, priority, record, body, "
              f"{', '.join(schema.DONE_COLUMNS)} FROM kue_jobs WHERE id = ? AND queue = ? "
              f"AND state = {DONE} AND due < ?")
#: A batch of acks is undone to here when a job of it is no longer held (see _ack_all).
_SAVEPOINT_ACKS, _ROLLBACK_ACKS = "SAVEPOINT acks", "ROLLBACK TO acks"
#: The longest expired done rows first, off ``kue_jobs_done`` (``due`` is minus the expiry).
#: Up to twice as many as were written since the last purge: removing no more than were
#: written, a backlog (records that expired while fewer were written, as when the rate drops,
#: or found nothing yet expired) would never drain; 1,000,000 jobs at a 1 s retention left
#: records expiring over 4.3 s instead of 1.
_PURGE_DONE = (
    f"DELETE FROM kue_jobs WHERE id IN (SELECT id FROM kue_jobs WHERE state = {DONE} "
    f"AND due >= ? ORDER BY due DESC LIMIT {2 * records.PURGE_BATCH})"
)


#: Each index's queue names one seek apiece (a skip scan), so done records cost nothing here.
_LIST_QUEUES = f"""
WITH RECURSIVE
  ready(queue) AS (
    SELECT MIN(queue) FROM kue_jobs WHERE state = 0
    UNION ALL
    SELECT (SELECT MIN(queue) FROM kue_jobs WHERE state = 0 AND queue > ready.queue)
    FROM ready WHERE ready.queue IS NOT NULL),
  other(queue) AS (
    SELECT MIN(queue) FROM kue_jobs WHERE {_WAITING}
    UNION ALL
    SELECT (SELECT MIN(queue) FROM kue_jobs WHERE {_WAITING} AND queue > other.queue)
    FROM other WHERE other.queue IS NOT NULL)
SELECT queue FROM ready WHERE queue IS NOT NULL
UNION
SELECT queue FROM other WHERE queue IS NOT NULL
ORDER BY queue
"""


def _take_sql(n_queues: int) -> str:
    """One statement that reserves the most urgent ready job of ``n_queues`` queues.

    Up to :data:`MAX_COMPOUND` queues it takes their names as parameters; over that, one
    parameter: a JSON array of the names.
    """
    if n_queues > MAX_COMPOUND:
        # Each queue's first job still comes off its index (one seek per name).
        pick = ("SELECT k.id FROM json_each(?) AS q JOIN kue_jobs AS k ON k.id = ("
                "SELECT id FROM kue_jobs WHERE queue = q.value AND state = 0 "
                "ORDER BY priority, id LIMIT 1) ORDER BY k.priority, k.id LIMIT 1")
    elif n_queues == 1:
        pick = f"SELECT id FROM ({_FIRST_READY})"
    else:
        # Each queue's first job comes off its index; only those few rows are then sorted.
        firsts = " UNION ALL ".join(f"SELECT * FROM ({_FIRST_READY})" for _ in range(n_queues))
        pick = f"SELECT id FROM ({firsts}) ORDER BY priority, id LIMIT 1"
    return (
        "UPDATE kue_jobs SET state = 2, attempts = attempts + 1, due = ? + ttr "
        f"WHERE id = ({pick}) RETURNING id, queue, body, priority, attempts, ttr"
    )


def _take_many_sql(n_queues: int) -> str:
    """One statement that reserves up to ``?`` most urgent ready jobs of ``n_queues`` queues.

    The rows come back in no set order (RETURNING's); the caller sorts them. Over
    :data:`MAX_COMPOUND` queues the names are one JSON array parameter.
    """
    if n_queues > MAX_COMPOUND:
        names = "SELECT value FROM json_each(?)"
    else:
        names = ", ".join("?" * n_queues)
    return (
        "UPDATE kue_jobs SET state = 2, attempts = attempts + 1, due = ? + ttr "
        f"WHERE id IN (SELECT id FROM kue_jobs WHERE queue IN ({names}) AND state = 0 "
        "ORDER BY priority, id LIMIT ?) RETURNING id, queue, body, priority, attempts, ttr"
    )


class _Signal:
    """A condition that knows whether anyone waits on it, so writers skip a useless notify."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting = 0

    def notify(self) -> None:
        if self.waiting:
            with self.cond:
                self.cond.notify_all()


_signals: dict[str, tuple[threading.Condition, _Signal]] = {}
_signals_lock = threading.Lock()


def _signals_for(path: str) -> tuple[threading.Condition, _Signal]:
    """What one database file's backends in this process signal: a put, and a record written."""
    with _signals_lock:
        return _signals.setdefault(path, (threading.Condition(), _Signal()))


class SQLiteBackend:
    """Jobs in one SQLite file (WAL mode). Thread-safe: one connection per thread and process."""

    #: A done record comes as the worker's parts, bound to its row's columns
    #: (kue.records.takes_done_records).
    takes_done_records: ClassVar[bool] = True

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "normal",
        max_body: int = DEFAULT_MAX_BODY, url: str = "",
    ) -> None:
        """Open (creating if needed) the queue database at ``path``."""
        pragma = synchronous_pragma(synchronous, max_body)
        self.path = str(Path(path).resolve())
        self.url = url or f"sqlite:///{self.path}"
        self.synchronous = pragma
        self.capabilities = dataclasses.replace(CAPABILITIES, max_body=max_body)
        self._local = threading.local()
        self._wakeup, self._records_changed = _signals_for(self.path)
        # Each reserve statement is built once per number of queues it reserves from.
        self._take_sql = functools.cache(_take_sql)
        self._take_many_sql = functools.cache(_take_many_sql)
        conn = self._conn()
        conn.executescript(schema.SCHEMA + records.SCHEMA + unique.SCHEMA)
        schema.migrate(conn)
        self._clock = FileClock(conn)
        #: Every PURGE_BATCH-th key written by put_unique and claim, and done record written,
        #: also removes a batch of expired ones.
        self._key_sweep = Sweep(unique.PURGE_BATCH)
        self._record_sweep = Sweep(records.PURGE_BATCH)

    # -- connections -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA busy_timeout = 30000")
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailable(self.url, str(exc)) from exc
        local.conn, local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE), so readers never upgrade."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _notify(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    # -- putting ---------------------------------------------------------------------------

    @staticmethod
    def _row(queue: str, body: bytes, priority: int, delay: float, ttr: float,
             now: float) -> tuple[Any, ...]:
        if delay > 0:
            return (queue, DELAYED, priority, now + delay, ttr, body)
        return (queue, READY, priority, 0.0, ttr, body)

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Insert one job (one statement, its own transaction)."""
        row = self._row(queue, body, priority, delay, ttr, self._clock.now())
        (job_id,) = self._conn().execute(_INSERT, row).fetchone()
        self._notify()
        return str(job_id)

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Insert several jobs in one transaction."""
        now = self._clock.now()
        with self._write() as conn:
            ids = [
                str(conn.execute(_INSERT, self._row(queue, i.body, i.priority, i.delay, i.ttr,
                                                    now)).fetchone()[0])
                for i in items
            ]
        self._notify()
        return ids

    def put_unique(
        self, queue: str, body: bytes, priority: int, delay: float, ttr: float, key: str,
        ttl: float, until_done: bool,
    ) -> tuple[str, bool]:
        """Insert a job under ``key`` unless a live job holds it, in one write transaction."""
        now = time.time()
        with self._write() as conn:
            held = unique.holder(conn, queue, key, now)
            if held is not None:
                return held, False
            # The key's expiry is on the wall clock (as claims'); a delay, like every due
            # time, is on the file's clock, so a step of the wall clock does not move it.
            (job_id,) = conn.execute(
                _INSERT, self._row(queue, body, priority, delay, ttr, self._clock.now())
            ).fetchone()
            unique.hold(conn, queue, key, str(job_id), ttl, until_done, now)
            if self._key_sweep.count():
                unique.purge_expired(conn, now)
        self._notify()
        return str(job_id), True

    def claim(self, namespace: str, key: str, value: str, ttl: float,
              expect: str | None) -> str | None:
        """Set ``key`` to ``value`` for ``ttl`` s if it holds ``expect`` (kue.ClaimStore)."""
        stopped = unique.claim(self._conn(), namespace, key, value, ttl, expect)
        if self._key_sweep.count():
            with self._write() as conn:
                unique.purge_expired(conn, time.time())
        return stopped

    # -- reserving -------------------------------------------------------------------------

    def _promote(self, conn: sqlite3.Connection, queues: Sequence[str], now: float) -> None:
        """Return due delayed jobs and expired leases to ready, writing only when there are."""
        for q in queues:
            if conn.execute(_HAS_DUE, (q, now)).fetchone() is not None:
                conn.execute(_PROMOTE, (q, now))

    def _try_take(self, queues: Sequence[str]) -> Reservation | None:
        conn = self._conn()
        now = self._clock.now()
        self._promote(conn, queues, now)
        names = (json.dumps(list(queues)),) if len(queues) > MAX_COMPOUND else tuple(queues)
        row = conn.execute(self._take_sql(len(queues)), (now, *names)).fetchone()
        if row is None:
            return None
        job_id, queue, body, priority, attempts, ttr = row
        return Reservation(queue=queue, id=str(job_id), body=bytes(body), priority=priority,
                           attempts=attempts % ATTEMPT_SPAN, ttr=ttr, receipt=str(attempts))

    def _take_many(self, conn: sqlite3.Connection, queues: Sequence[str],
                   n: int) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs in one statement; most urgent first."""
        now = self._clock.now()
        self._promote(conn, queues, now)
        names = (json.dumps(list(queues)),) if len(queues) > MAX_COMPOUND else tuple(queues)
        rows = conn.execute(self._take_many_sql(len(queues)), (now, *names, n)).fetchall()
        rows.sort(key=lambda row: (row[3], row[0]))
        return [Reservation(queue=queue, id=str(job_id), body=bytes(body), priority=priority,
                            attempts=attempts % ATTEMPT_SPAN, ttr=ttr, receipt=str(attempts))
                for job_id, queue, body, priority, attempts, ttr in rows]

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs in one statement (see kue.BatchBackend)."""
        check_reserve_n(n, self.capabilities)
        if n == 1:
            job = self.reserve(queues, timeout)
            return [] if job is None else [job]
        found: list[Reservation] = []

        def take() -> Reservation | None:
            found.extend(self._take_many(self._conn(), queues, n))
            return found[0] if found else None

        self._wait_for(queues, timeout, take)
        return found

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Ack, give back and reserve in one transaction (see kue.BatchBackend.settle_many)."""
        check_reserve_n(n, self.capabilities, zero=True)
        settled = [(a, None if a.fields is None else self._record_doc(a.fields)) for a in acks]
        reserved: list[Reservation] = []
        with self._write() as conn:
            now = self._clock.now()
            lost, completed = self._ack_all(conn, settled, now)
            for job in give_back:
                conn.execute(f"UPDATE kue_jobs SET state = 0, due = 0, "
                             f"attempts = attempts - 1 + {ATTEMPT_SPAN} WHERE {_HELD}",
                             (int(job.id), int(job.receipt), now))
            if self._count_completed(completed):
                self._purge_expired(conn)
            if n:
                reserved = self._take_many(conn, queues, n)
        if give_back:
            self._notify()
        if completed:
            self._records_changed.notify()
        if n and not reserved and timeout != 0:
            reserved = self.reserve_many(queues, n, timeout)
        return BatchReply(reserved, lost)

    @staticmethod
    def _ack_all(conn: sqlite3.Connection, settled: Sequence[tuple[Ack, _Columns | None]],
                 now: float) -> tuple[list[Reservation], int]:
        """Delete each acked job or make it its record; the jobs lost, and the records written.

        ``settled`` pairs each ack with its record's columns (None: a plain delete).

        One ``executemany`` per kind when every job is still held, as is the rule (the rows
        changed add up); otherwise back to a savepoint, and one statement per job to name the
        jobs lost.
        """
        wall = time.time()
        if len(settled) > 1:
            deletes: list[tuple[Any, ...]] = []
            completes: list[tuple[Any, ...]] = []
            for ack, doc in settled:
                held = (int(ack.job.id), int(ack.job.receipt), now)
                if doc is None:
                    deletes.append(held)
                else:
                    completes.append((-(wall + ack.ttl), *doc, *held))
            conn.execute(_SAVEPOINT_ACKS)
            changed = conn.executemany(_DELETE_HELD, deletes).rowcount if deletes else 0
            if completes:
                changed += conn.executemany(_COMPLETE, completes).rowcount
            if changed == len(settled):
                return [], len(completes)
            conn.execute(_ROLLBACK_ACKS)
        lost: list[Reservation] = []
        completed = 0
        for ack, doc in settled:
            held = (int(ack.job.id), int(ack.job.receipt), now)
            if doc is None:
                cur = conn.execute(_DELETE_HELD, held)
            else:
                cur = conn.execute(_COMPLETE, (-(wall + ack.ttl), *doc, *held))
                completed += cur.rowcount
            if cur.rowcount != 1:
                lost.append(ack.job)
        return lost, completed

    def _next_due(self, queues: Sequence[str]) -> float | None:
        conn = self._conn()
        times = [conn.execute(_NEXT_DUE, (q,)).fetchone()[0] for q in queues]
        return min((t for t in times if t is not None), default=None)

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Reserve the most urgent ready job; wait for a put, a due job or the timeout."""
        return self._wait_for(queues, timeout, lambda: self._try_take(queues))

    def _wait_for(self, queues: Sequence[str], timeout: float | None,
                  take: Callable[[], Reservation | None]) -> Reservation | None:
        """Call ``take`` until it reserves, waiting between calls for a put or a due job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self._conn()
        while True:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            job = take()
            if job is not None:
                return job
            due = self._next_due(queues)
            wall_to_mono = time.monotonic() - self._clock.now()
            wake_at = None if due is None else due + wall_to_mono
            if deadline is not None:
                wake_at = deadline if wake_at is None else min(wake_at, deadline)
            poll = FIRST_POLL
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                if wake_at is not None and now >= wake_at:
                    break
                wait = poll if wake_at is None else min(poll, wake_at - now)
                poll = min(poll * 2, POLL_INTERVAL)
                with self._wakeup:
                    if self._wakeup.wait(wait):
                        break
                if conn.execute("PRAGMA data_version").fetchone()[0] != version:
                    break

    # -- acting on a reservation -----------------------------------------------------------

    def _settle(self, job: Reservation, sql: str, params: tuple[Any, ...]) -> None:
        """Run ``sql`` (whose WHERE ends with the held check) or raise ReservationLost."""
        cur = self._conn().execute(sql, (*params, int(job.id), int(job.receipt), self._clock.now()))
        if cur.rowcount != 1:
            raise ReservationLost(job.queue, job.id)

    def delete(self, job: Reservation) -> None:
        """Delete a job this reservation still holds."""
        self._settle(job, _DELETE_HELD, ())

    def delete_by_id(self, queue: str, job_id: str) -> bool:
        """Delete a job that is not reserved, by id (for admin tools); False if not found."""
        try:
            key = int(job_id)
        except ValueError:
            return False
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM kue_jobs WHERE id = ? AND queue = ? AND state != 4 "
                "AND NOT (state = 2 AND due > ?)",
                (key, queue, self._clock.now()),
            )
            if cur.rowcount:
                return True
            held = conn.execute(
                "SELECT 1 FROM kue_jobs WHERE id = ? AND queue = ? AND state != 4", (key, queue)
            ).fetchone()
        if held:
            raise ValueError(
                f"job {job_id} is reserved by a worker; delete it once it is released, "
                "buried or done"
            )
        return False

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Back to ready (or delayed), keeping its place in the put order."""
        if delay > 0:
            self._settle(job, f"UPDATE kue_jobs SET state = 1, priority = ?, due = ? "
                              f"WHERE {_HELD}", (priority, self._clock.now() + delay))
        else:
            self._settle(job, f"UPDATE kue_jobs SET state = 0, priority = ?, due = 0 "
                              f"WHERE {_HELD}", (priority,))
        self._notify()

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Set aside until kicked; ``due`` records the bury order."""
        self._settle(
            job,
            "UPDATE kue_jobs SET state = 3, priority = COALESCE(?, priority), "
            "due = (SELECT COALESCE(MAX(due), 0) + 1 FROM kue_jobs WHERE queue = ? AND state = 3 "
            f"AND {_WAITING}) "
            f"WHERE {_HELD}",
            (priority, job.queue),
        )

    def touch(self, job: Reservation) -> None:
        """Renew the lease to a full ttr from now."""
        self._settle(job, f"UPDATE kue_jobs SET due = ? + ttr WHERE {_HELD}", (self._clock.now(),))

    # -- looking and kicking ---------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Buried jobs longest buried first; with none buried, delayed jobs soonest due first."""
        with self._write() as conn:
            self._promote(conn, [queue], self._clock.now())
            ids = conn.execute(
                f"SELECT id FROM kue_jobs WHERE queue = ? AND state = 3 AND {_WAITING} "
                "ORDER BY due LIMIT ?",
                (queue, min(n, MAX_INTEGER)),
            ).fetchall() or conn.execute(
                f"SELECT id FROM kue_jobs WHERE queue = ? AND state = 1 AND {_WAITING} "
                "ORDER BY due, id LIMIT ?",
                (queue, min(n, MAX_INTEGER)),
            ).fetchall()
            conn.executemany("UPDATE kue_jobs SET state = 0, due = 0 WHERE id = ?", ids)
        if ids:
            self._notify()
        return len(ids)

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """The next job to leave ``state``, as a copy."""
        # Each state's literal WHERE, so the query runs on its index (see _WAITING).
        order = {JobState.READY: "state = 0 ORDER BY priority, id",
                 JobState.DELAYED: f"state = 1 AND {_WAITING} ORDER BY due, id",
                 JobState.BURIED: f"state = 3 AND {_WAITING} ORDER BY due"}
        if state not in order:
            raise ValueError(f"peek takes ready, delayed or buried, not {state!r}")
        with self._write() as conn:
            self._promote(conn, [queue], self._clock.now())
            row = conn.execute(
                f"SELECT id, body, priority, attempts % {ATTEMPT_SPAN} FROM kue_jobs "
                f"WHERE queue = ? AND {order[state]} LIMIT 1",
                (queue,),
            ).fetchone()
        if row is None:
            return None
        return JobInfo(queue, str(row[0]), bytes(row[1]), row[2], state, row[3])

    def stats(self, queue: str) -> QueueStats:
        """Counts per state, after due jobs and expired leases moved to ready."""
        with self._write() as conn:
            self._promote(conn, [queue], self._clock.now())
            # Ready jobs are counted on their index, the others on kue_jobs_waiting.
            counts = dict(conn.execute(
                "SELECT 0, COUNT(*) FROM kue_jobs WHERE queue = ? AND state = 0 UNION ALL "
                "SELECT state, COUNT(*) FROM kue_jobs WHERE queue = ? AND state IN (1, 2, 3) "
                f"AND {_WAITING} GROUP BY state", (queue, queue),
            ).fetchall())
        return QueueStats(ready=counts.get(READY, 0), delayed=counts.get(DELAYED, 0),
                          reserved=counts.get(RESERVED, 0), buried=counts.get(BURIED, 0))

    # -- records (kue.records.RecordingBackend) ---------------------------------------------

    def complete(self, job: Reservation, fields: Mapping[str, Any], ttl: float) -> None:
        """Turn a held job into its done record, in one statement (so one commit).

        The row stays, with state DONE, the record's parts in its columns (the result's JSON
        in place of the body) and ``due`` set to minus the time the record expires: no reader
        sees the job gone and its record missing, and the worker's hot path pays one
        statement, as a plain delete does. The parts are bound as they are, so finishing a
        job formats no record text. The row's entry leaves ``kue_jobs_waiting`` and is
        appended to ``kue_jobs_done``, which sorts by expiry.
        """
        doc = self._record_doc(fields)
        # The record's expiry is on the wall clock (records outlive boots); the lease is not.
        params = (-(time.time() + ttl), *doc, int(job.id), int(job.receipt), self._clock.now())
        if self._count_completed(1):  # now and then the purge, in the same transaction
            with self._write() as conn:
                cur = conn.execute(_COMPLETE, params)
                self._purge_expired(conn)
        else:
            cur = self._conn().execute(_COMPLETE, params)
        if cur.rowcount != 1:
            raise ReservationLost(job.queue, job.id)
        self._records_changed.notify()

    @staticmethod
    def _record_doc(fields: Mapping[str, Any]) -> _Columns:
        """The done row's columns from ``body`` on (see _COMPLETE).

        TypeError or ValueError if the fields are not JSON.
        """
        if isinstance(fields, DoneRecord):  # the worker's, every job: its parts as they are
            extra = None if fields.result_error is None else _encode(
                {"result_error": fields.result_error})
            return (fields.result_json, extra, fields.name, fields.enqueued_at,
                    fields.finished_us, fields.started_us)
        if isinstance(fields, EncodedFields):  # the worker's, encoded once; the row's own
            text = fields.json                  # state, attempts and priority win on read
        else:
            # The row keeps state, attempts and priority; None values stay, as they override
            # the notes (a cleared error) when read. The body is opaque, as on every backend.
            text = _encode({k: v for k, v in fields.items() if k not in _IN_ROW})
        return (text, None, None, None, None, None)  # the whole record in body

    def _count_completed(self, n: int) -> bool:
        """Count ``n`` more done records written; True when a purge of expired ones is due.

        Every :data:`PURGE_BATCH` records written remove up to twice as many expired ones,
        so the records kept stay about those of the last retention period.
        """
        return self._record_sweep.count(n)

    @staticmethod
    def _purge_expired(conn: sqlite3.Connection) -> None:
        """Remove a batch of expired done records (of every queue) and of the notes table."""
        conn.execute(_PURGE_DONE, (-time.time(),))
        records.purge_expired(conn)

    def update_record(self, queue: str, job_id: str, fields: Mapping[str, Any],
                      ttl: float | None) -> None:
        """Merge ``fields`` into the job's record."""
        records.upsert(self._conn(), queue, job_id, fields, ttl)
        self._records_changed.notify()

    def read_record(self, queue: str, job_id: str) -> dict[str, Any] | None:
        """The job's record (its notes, and once done its done record), unless expired."""
        conn = self._conn()
        # What this thread has seen: wait_record returns at once after any later commit.
        self._local.record_version = conn.execute("PRAGMA data_version").fetchone()[0]
        notes = records.read(conn, queue, job_id)
        try:
            key = int(job_id)
        except ValueError:
            return notes
        row = conn.execute(_READ_DONE, (key, queue, -time.time())).fetchone()
        if row is None:
            return notes
        attempts, priority = row[:2]
        done = schema.done_record(row[2:])
        merged = {**(notes or {}), **done, "state": "done", "attempts": attempts,
                  "priority": priority}
        return {k: v for k, v in merged.items() if v is not None}

    def wait_record(self, queue: str, job_id: str, timeout: float) -> None:
        """Wait for a commit by another connection since this thread last read a record.

        ``PRAGMA data_version`` tells; a commit from this process also wakes the wait.
        """
        conn = self._conn()
        version = getattr(self._local, "record_version", None)
        if version is None:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        deadline = time.monotonic() + timeout
        poll = FIRST_POLL
        while (now := time.monotonic()) < deadline:
            if conn.execute("PRAGMA data_version").fetchone()[0] != version:
                return
            signal = self._records_changed
            with signal.cond:
                signal.waiting += 1
                try:
                    if signal.cond.wait(min(poll, deadline - now)):
                        return
                finally:
                    signal.waiting -= 1
            poll = min(poll * 2, POLL_INTERVAL)

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id, in whatever state."""
        try:
            key = int(job_id)
        except ValueError:
            return None
        row = self._conn().execute(
            f"SELECT state, priority, attempts % {ATTEMPT_SPAN}, due, body FROM kue_jobs "
            "WHERE id = ? AND queue = ?",
            (key, queue),
        ).fetchone()
        if row is None or row[0] == DONE:
            return None
        state, priority, attempts, due, body = row
        now = self._clock.now()
        if state in (DELAYED, RESERVED) and due <= now:
            state = READY  # due, or a lapsed lease: the next reserve hands it out
        due_in = due - now if state in (DELAYED, RESERVED) else None
        return JobInfo(queue, job_id, bytes(body), priority, _STATES[state], attempts,
                       due_in=due_in)

    # -- admin listing (kue.listing.QueueListing, kue.listing.JobBrowser) -------------------

    def list_queues(self) -> list[str]:
        """The queues that hold a job in any state, sorted."""
        rows = self._conn().execute(_LIST_QUEUES).fetchall()
        return [str(row[0]) for row in rows]

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Buried jobs of ``queue``, the most recently buried first (``due`` is the bury order)."""
        rows = self._conn().execute(
            f"SELECT id, body, priority, attempts % {ATTEMPT_SPAN} FROM kue_jobs "
            "WHERE queue = ? AND state = 3 "
            f"AND {_WAITING} ORDER BY due DESC, id DESC LIMIT ? OFFSET ?",
            (queue, limit, offset),
        ).fetchall()
        return [JobInfo(queue, str(job_id), bytes(body), priority, JobState.BURIED, attempts)
                for job_id, body, priority, attempts in rows]

    def kick_job(self, queue: str, job_id: str) -> bool:
        """Move one buried job to ready by id; False if ``queue`` has no such buried job."""
        try:
            key = int(job_id)
        except ValueError:
            return False
        cur = self._conn().execute(
            "UPDATE kue_jobs SET state = 0, due = 0 WHERE id = ? AND queue = ? AND state = 3",
            (key, queue),
        )
        if cur.rowcount != 1:
            return False
        self._notify()
        return True

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local = threading.local()


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> SQLiteBackend | None:
    """Open ``sqlite:///path``; options ``synchronous`` and ``max_body`` also come from the URL."""
    if name != "sqlite":
        return None
    values = read_options("sqlite", OPTIONS, url, options)
    return SQLiteBackend(path_from_url(url), synchronous=values["synchronous"],
                         max_body=values["max_body"], url=url)


@hookimpl
def kue_contract_server(name: str) -> str | None:
    """A database file in a scratch directory (kue_contract's hook): no server, just a URL."""
    return "sqlite:///{scratch}/kue.sqlite3" if name == "sqlite" else None
