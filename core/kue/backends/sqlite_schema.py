"""The sqlite backend's table of jobs: its schema, and what files an older kue wrote hold.

Table ``kue_jobs``: ``id`` (INTEGER PRIMARY KEY AUTOINCREMENT, so ids are never reused and double
as the put order), ``queue``, ``state`` (0 ready, 1 delayed, 2 reserved, 3 buried, 4 done: the
row kept as the finished job's record), ``priority``, ``due`` (delayed: when ready; reserved:
when the lease runs out; buried: the bury order; done: minus the record's expiry), ``ttr``,
``attempts``, ``body`` (done: the JSON text of the job's result, in place of the envelope),
``record`` (done: a JSON object of what else the record holds, if anything), and for done rows
the record's parts in columns of their own, bound as they are so that finishing a job formats
no text: ``name``, ``enqueued_at``, ``finished_at`` and ``started_at`` (whole microseconds).
Done rows an older kue wrote hold the whole record as JSON in ``body`` (``finished_at`` NULL),
or, older still, the envelope in ``body`` and the record in ``record``. Ready rows are in
the partial index ``kue_jobs_ready (queue, priority, id) WHERE state = 0``; delayed, reserved
and buried rows in ``kue_jobs_waiting (queue, state, due)``; done rows in ``kue_jobs_done (due
DESC)``, which only the purge of expired records reads: each row is in one index.

A file an older kue wrote is brought up to date when opened (:func:`migrate`), and its done
rows of the older layout are read with :func:`done_record`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from kue.records import enqueued_json

__all__ = ["BURIED", "DELAYED", "DONE", "DONE_COLUMNS", "READY", "RESERVED", "SCHEMA",
           "done_record", "migrate"]

#: The ``state`` column's codes.
READY, DELAYED, RESERVED, BURIED = 0, 1, 2, 3
#: A finished job's row kept as its record: ``due`` holds minus its expiry.
DONE = 4
#: The columns only done rows fill, with their types, in the order of the table.
DONE_COLUMNS = {"name": "TEXT", "enqueued_at": "REAL", "finished_at": "INTEGER",
                "started_at": "INTEGER"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS kue_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    state INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    due REAL NOT NULL DEFAULT 0,
    ttr REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    record BLOB,
    name TEXT,
    enqueued_at REAL,
    finished_at INTEGER,
    started_at INTEGER
);
CREATE INDEX IF NOT EXISTS kue_jobs_ready ON kue_jobs (queue, priority, id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS kue_jobs_waiting ON kue_jobs (queue, state, due)
    WHERE state != 0 AND state != 4;
CREATE INDEX IF NOT EXISTS kue_jobs_done ON kue_jobs (due DESC) WHERE state = 4;
"""


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a file an older kue wrote up to date (idempotent).

    Each step is found from the schema itself rather than from a version number: an older
    kue that opens the file again recreates the index it knows, and the next open by this
    one drops it again. The steps, oldest first:

    1. Before job records: no ``record`` column. Before the record's parts had columns: no
       ``name``, ``enqueued_at``, ``finished_at``, ``started_at`` (added empty: the done rows
       of then hold their records as JSON).
    2. Before ``kue_jobs_due``: index ``kue_jobs_timed`` held every row, and done rows kept
       their expiry as a positive ``due``; they are negated.
    3. Before ``kue_jobs_waiting`` and ``kue_jobs_done``: ``kue_jobs_due (queue, state,
       due) WHERE state != 0`` held the done rows too: it grew with every record kept,
       and each finished job's entry went into the middle of it. SCHEMA has already
       built the two indexes that replace it.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(kue_jobs)")}
    for column, kind in {"record": "BLOB", **DONE_COLUMNS}.items():
        if column not in columns:
            conn.execute(f"ALTER TABLE kue_jobs ADD COLUMN {column} {kind}")
    old = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' "
        "AND name IN ('kue_jobs_timed', 'kue_jobs_due')")}
    if not old:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "kue_jobs_timed" in old:
            conn.execute("DROP INDEX IF EXISTS kue_jobs_timed")
            conn.execute(f"UPDATE kue_jobs SET due = -due WHERE state = {DONE} AND due > 0")
        conn.execute("DROP INDEX IF EXISTS kue_jobs_due")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _envelope_fields(body: bytes) -> dict[str, Any]:
    """The job name and enqueue time of a kue envelope body (nothing for a plain body).

    Only done rows an older kue wrote (the envelope kept in ``body``) are read this way.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {"name": doc.get("job"), "enqueued_at": doc.get("enqueued_at") or None}


def done_record(row: Sequence[Any]) -> dict[str, Any]:
    """The done record a done row holds, from its columns ``record`` to ``started_at``.

    ``row`` is ``record, body, name, enqueued_at, finished_at, started_at``. This kue's rows
    have the parts in columns and the result's JSON in ``body``. An older kue's hold the
    record in ``body`` (``finished_at`` NULL); one older still kept the envelope there and the
    record in ``record``, and the envelope's job name and enqueue time fill in.
    """
    record, body, name, enqueued_at, finished_at, started_at = row
    if finished_at is not None:
        # The envelope's time as the record's text has it (whole microseconds), so every
        # backend reports the same value.
        enqueued = "null" if enqueued_at is None else enqueued_json(enqueued_at)
        done = {"finished_at": finished_at / 1e6, "started_at": started_at / 1e6, "name": name,
                "enqueued_at": None if enqueued == "null" else float(enqueued),
                "error": None, "result": json.loads(body)}
        return {**done, **json.loads(record)} if record is not None else done
    if record is None:
        whole: dict[str, Any] = json.loads(body)
        return whole
    return {**_envelope_fields(body), **json.loads(record)}
