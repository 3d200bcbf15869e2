"""kue's SQLite backend against raw sqlite3 on a durable file (WAL, synchronous=NORMAL).

Run: ``python bench/bench_sqlite.py [--runs R] [--quick]``.

Both sides use a file in a fresh temporary directory on the machine's disk, in WAL mode with
``synchronous=NORMAL`` (kue's default). The raw baseline is the least such a queue does: one
INSERT per put (its own transaction), one transaction of INSERTs per batch, and per job an
``UPDATE ... RETURNING`` that leases the first ready row by (priority, id) and a DELETE.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from harness import Bench, scratch_dir
from ops import Spec, measure

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER NOT NULL, priority INTEGER NOT NULL,
    due REAL NOT NULL DEFAULT 0, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (priority, id) WHERE state = 0;
"""
INSERT = "INSERT INTO jobs (state, priority, body) VALUES (0, ?, ?)"
TAKE = (
    "UPDATE jobs SET state = 1, due = ? WHERE id = (SELECT id FROM jobs WHERE state = 0 "
    "ORDER BY priority, id LIMIT 1) RETURNING id, body"
)
DELETE = "DELETE FROM jobs WHERE id = ?"


class RawSQLite:
    """Raw sqlite3 on its own file in the same directory, with kue's pragmas."""

    label = "sqlite3"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)

    def put(self, items: Sequence[bytes]) -> None:
        """One INSERT, one transaction, per job."""
        execute = self.conn.execute
        for b in items:
            execute(INSERT, (2**31, b))

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """One transaction of ``batch`` INSERTs."""
        for start in range(0, len(items), batch):
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(INSERT, [(2**31, b) for b in items[start:start + batch]])
            self.conn.execute("COMMIT")

    def drain(self, n: int) -> None:
        """Lease the first ready row, then delete it: two statements per job."""
        execute = self.conn.execute
        for _ in range(n):
            job_id, _ = execute(TAKE, (time.time() + 60,)).fetchone()
            execute(DELETE, (job_id,))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def run(bench: Bench) -> None:
    """The sqlite table and the sqlite targets."""
    with scratch_dir("kue-bench-sqlite-") as tmp:
        raw = RawSQLite(tmp / "raw.sqlite3")
        spec = Spec("sqlite", f"sqlite:///{tmp / 'kue.sqlite3'}", raw, ops=bench.count(5000),
                    batch=100, workers=bench.count(20000), prefetch=(1, None),
                    notes=[f"durable files on {tmp.parent} (WAL, synchronous=NORMAL)"])
        res = measure(bench, spec)
        raw.close()
    w = res.kue["worker, 1 process"]
    bench.target("sqlite worker 1 process >= 2,000 jobs/s (durable file)", f"{w:,.0f} jobs/s",
                 w >= 2000)
    m = res.kue["put_many (100/batch)"]
    bench.target("sqlite put_many >= 20,000 jobs/s", f"{m:,.0f} jobs/s", m >= 20000)


if __name__ == "__main__":
    from harness import main

    main([run])
