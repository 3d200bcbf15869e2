"""The SQL of the sqlite backend's unique keys (``put_unique``) and claims (``claim``).

Table ``kue_unique``: one row per (queue, key) a ``put_unique`` stored a job under: the job's
id, when the key expires, and whether it is freed once that job is done or buried
(``until_done``). Whether a key is held is decided when it is next asked for, from the job's
row, so finishing a job (the worker's hot path) writes nothing here.

Table ``kue_claims``: one row per (namespace, key) of :meth:`kue.records.ClaimStore.claim`, the
record store's compare-and-set that beanstalkd and SQS take unique jobs and periodic ticks
through. Both are read and written inside one ``BEGIN IMMEDIATE`` transaction, which SQLite
runs under its write lock: of many processes asking at once, one wins.

Expired rows are removed a batch at a time by later writes.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["SCHEMA", "claim", "hold", "holder", "purge_expired"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS kue_unique (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    expires REAL NOT NULL,
    until_done INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kue_claims (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
"""

#: Most expired rows one write removes.
PURGE_BATCH = 100

# A key is held while it has not expired and, with until_done, its job is ready (0),
# delayed (1) or reserved (2): not buried (3), done (4) or gone (no row).
_HOLDER = (
    "SELECT u.job_id FROM kue_unique u LEFT JOIN kue_jobs j ON j.id = u.job_id "
    "WHERE u.queue = ? AND u.key = ? AND u.expires > ? "
    "AND (u.until_done = 0 OR j.state IN (0, 1, 2))"
)
_HOLD = "INSERT OR REPLACE INTO kue_unique (queue, key, job_id, expires, until_done) " \
    "VALUES (?, ?, ?, ?, ?)"
_CLAIM_READ = "SELECT value FROM kue_claims WHERE namespace = ? AND key = ? AND expires > ?"
_CLAIM_WRITE = "INSERT OR REPLACE INTO kue_claims (namespace, key, value, expires) " \
    "VALUES (?, ?, ?, ?)"
_PURGE = (
    "DELETE FROM kue_unique WHERE (queue, key) IN (SELECT queue, key FROM kue_unique "
    f"WHERE expires <= ? LIMIT {PURGE_BATCH})",
    "DELETE FROM kue_claims WHERE (namespace, key) IN (SELECT namespace, key FROM kue_claims "
    f"WHERE expires <= ? LIMIT {PURGE_BATCH})",
)


def holder(conn: sqlite3.Connection, queue: str, key: str, now: float) -> str | None:
    """The id of the job holding ``key`` of ``queue``, or None if it is free."""
    row = conn.execute(_HOLDER, (queue, key, now)).fetchone()
    return None if row is None else str(row[0])


def hold(conn: sqlite3.Connection, queue: str, key: str, job_id: str, ttl: float,
         until_done: bool, now: float) -> None:
    """Make job ``job_id`` the holder of ``key`` for ``ttl`` seconds from ``now``."""
    conn.execute(_HOLD, (queue, key, int(job_id), now + ttl, int(until_done)))


def claim(conn: sqlite3.Connection, namespace: str, key: str, value: str, ttl: float,
          expect: str | None) -> str | None:
    """:meth:`kue.records.ClaimStore.claim` in one write transaction."""
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(_CLAIM_READ, (namespace, key, now)).fetchone()
        current = None if row is None else str(row[0])
        if current != expect:
            conn.execute("COMMIT")
            return "" if current is None else current
        conn.execute(_CLAIM_WRITE, (namespace, key, value, now + ttl))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return None


def purge_expired(conn: sqlite3.Connection, now: float) -> None:
    """Remove up to PURGE_BATCH expired keys and claims (inside the caller's transaction)."""
    for sql in _PURGE:
        conn.execute(sql, (now,))
