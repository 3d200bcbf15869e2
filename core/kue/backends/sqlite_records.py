"""The SQL of the sqlite backend's job notes (table ``kue_records``).

The record of a done job is its own row of ``kue_jobs`` (state 4, see :mod:`kue.backends.sqlite`),
so finishing a job stays one statement; this table keeps what a live job's record holds before
that: its last error and its progress.

One row per (queue, job id): ``fields`` a JSON object (merged key by key, a field set to None
removed, as on every backend), ``expires`` a Unix time (NULL: never). Expired rows are removed
a batch at a time by the writes that finish jobs, so the table holds the records of about the
last retention period.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from kue.backends.record_table import merge_fields

__all__ = ["PURGE_BATCH", "SCHEMA", "purge_expired", "read", "upsert"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS kue_records (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    fields TEXT NOT NULL,
    expires REAL,
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kue_records_expires ON kue_records (expires)
    WHERE expires IS NOT NULL;
"""

#: Most expired records one write removes.
PURGE_BATCH = 100

_UPSERT = "INSERT OR REPLACE INTO kue_records (queue, id, fields, expires) VALUES (?, ?, ?, ?)"
_READ = "SELECT fields FROM kue_records WHERE queue = ? AND id = ? AND " \
    "(expires IS NULL OR expires > ?)"
_PURGE = (
    "DELETE FROM kue_records WHERE (queue, id) IN (SELECT queue, id FROM kue_records "
    f"WHERE expires IS NOT NULL AND expires <= ? LIMIT {PURGE_BATCH})"
)


def upsert(conn: sqlite3.Connection, queue: str, job_id: str, fields: Mapping[str, Any],
           ttl: float | None) -> None:
    """Merge ``fields`` into the record, which expires ``ttl`` s from now.

    Key by key, a field set to None removed. Read, merged in Python and written back in one
    transaction: notes are written on failures and progress, not on the hot path, and the
    merge is then the same on every backend.
    """
    expires = None if ttl is None else time.time() + ttl
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT fields FROM kue_records WHERE queue = ? AND id = ?",
                           (queue, job_id)).fetchone()
        merged = merge_fields(json.loads(row[0]) if row else {}, fields)
        conn.execute(_UPSERT, (queue, job_id, json.dumps(merged, separators=(",", ":"),
                                                          allow_nan=False), expires))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def read(conn: sqlite3.Connection, queue: str, job_id: str) -> dict[str, Any] | None:
    """The record, unless there is none or it expired."""
    row = conn.execute(_READ, (queue, job_id, time.time())).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def purge_expired(conn: sqlite3.Connection) -> None:
    """Remove up to PURGE_BATCH expired records."""
    conn.execute(_PURGE, (time.time(),))
