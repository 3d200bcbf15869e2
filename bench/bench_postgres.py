"""kue's PostgreSQL backend against a raw psycopg SKIP LOCKED loop and procrastinate.

Run: ``python bench/bench_postgres.py [--runs R] [--quick]`` (or all benches: ``nox -s bench``);
``python bench/bench_postgres.py --churn [N]`` measures table bloat instead (below).

The server is the plugin's throwaway cluster (kue_postgres.server: fsync off, so the numbers
are the client's and the server's work, not this disk's flush time; a killed server still
loses no commit). The raw baseline is the least a PostgreSQL queue with leases does, on a
table of its own in the same database:

- the table's rows carry their queue's name, indexed (queue, priority, id) for the ready ones,
  as kue's do;
- put: one INSERT per job (its own transaction) that returns the job's id, as kue's put does;
- put_many: one ``INSERT ... SELECT FROM unnest(...) RETURNING id`` per batch, the bodies a
  binary array, the ids read back (kue's put_many returns them);
- reserve+delete: ``UPDATE ... WHERE id = (SELECT ... ORDER BY priority, id LIMIT 1 FOR UPDATE
  SKIP LOCKED) RETURNING`` then ``DELETE``: two round trips per job, as kue's reserve + delete;
- fused: one statement that deletes the last job and reserves the next, against kue's
  ``delete_and_reserve`` (the worker's hot path).

procrastinate (the peer) runs its no-op async task with one worker (concurrency 1) on the same
server; kue's worker runs ``bench_jobs.noop`` as one ``kue-worker`` process, with prefetch off
(``--prefetch 1``: one fused statement per job) and on (the default: ``settle_many`` acks the
finished jobs and reserves the next batch in one statement).

Churn (``--churn``, default 1,000,000 jobs): one producer keeps a queue about 10,000 deep
with ``put_many`` while two consumers drain it with ``delete_and_reserve``; the sizes of the
jobs table (heap) and of its indexes are read at the start, at the peak and after autovacuum
has run once the queue is empty.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from harness import Bench, Table, fmt_rate, fmt_ratio, fused_drain_table, median, rate_of
from ops import KueClient, Spec, measure
from peer_procrastinate import ProcrastinatePeer

import kue
from kue_contract.servers import serve
from kue_postgres.server import SERVER

BATCH = 100

# Like kue's jobs, the raw table's rows name their queue (the reserve order is per queue), and
# a put returns the job's id (kue's put and put_many return them).
RAW_SCHEMA = """
DROP TABLE IF EXISTS raw_jobs;
CREATE TABLE raw_jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, queue text NOT NULL,
    state smallint NOT NULL DEFAULT 0, priority bigint NOT NULL, due timestamptz,
    body bytea NOT NULL);
CREATE INDEX raw_jobs_ready ON raw_jobs (queue, priority, id) WHERE state = 0;
"""
RAW_QUEUE = "raw"
RAW_INSERT = "INSERT INTO raw_jobs (queue, priority, body) VALUES (%s, %s, %s) RETURNING id"
# The bodies go as a binary array (%b), as kue sends them: in text, psycopg escapes each one.
RAW_INSERT_MANY = ("INSERT INTO raw_jobs (queue, priority, body) SELECT %s, %s, b FROM "
                   "unnest(%b::bytea[]) AS u(b) RETURNING id")
RAW_TAKE = ("UPDATE raw_jobs SET state = 1, due = now() + interval '60 s' WHERE id = (SELECT id "
            "FROM raw_jobs WHERE queue = %s AND state = 0 ORDER BY priority, id LIMIT 1 FOR "
            "UPDATE SKIP LOCKED) RETURNING id, body")
RAW_DELETE = "DELETE FROM raw_jobs WHERE id = %s"
RAW_DELETE_TAKE = ("WITH d AS (DELETE FROM raw_jobs WHERE id = %s) " + RAW_TAKE)


class RawPostgres:
    """Raw psycopg on one autocommit connection, a table of its own."""

    label = "psycopg SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(RAW_SCHEMA)

    def put(self, items: Sequence[bytes]) -> None:
        """One INSERT per job, its id read back."""
        execute = self.conn.execute
        for b in items:
            execute(RAW_INSERT, (RAW_QUEUE, 2**31, b)).fetchone()

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """One INSERT ... unnest per batch, the ids read back."""
        for start in range(0, len(items), batch):
            self.conn.execute(RAW_INSERT_MANY, (RAW_QUEUE, 2**31,
                                                list(items[start:start + batch]))).fetchall()

    def drain(self, n: int) -> None:
        """Lease the first ready row, then delete it: two statements per job."""
        execute = self.conn.execute
        for _ in range(n):
            row: Any = execute(RAW_TAKE, (RAW_QUEUE,)).fetchone()
            execute(RAW_DELETE, (row[0],))

    def drain_fused(self, n: int) -> None:
        """One statement per job that deletes the last job and leases the next."""
        execute = self.conn.execute
        row: Any = execute(RAW_TAKE, (RAW_QUEUE,)).fetchone()
        for _ in range(n - 1):
            row = execute(RAW_DELETE_TAKE, (row[0], RAW_QUEUE)).fetchone()
        execute(RAW_DELETE, (row[0],))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def fused_table(bench: Bench, url: str, raw: RawPostgres, n: int) -> tuple[float, float]:
    """kue's ``delete_and_reserve`` drain against the raw fused statement; adds a table."""
    client = KueClient(url, f"bench-{uuid.uuid4().hex[:8]}")
    try:
        return fused_drain_table(
            bench, "postgres", "raw fused statement", n,
            (lambda k: client.fill(k, 1000), client.drain_fused),
            (lambda k: raw.put_many([b"x" * 110] * k, 1000), raw.drain_fused))
    finally:
        client.close()


def peer_table(bench: Bench, url: str, kue_put: float, kue_worker: float, n: int) -> float:
    """procrastinate's defer and worker on the same server; adds a table; kue/peer worker."""
    peer = ProcrastinatePeer(url)
    defers, works = [], []
    for run in range(bench.runs):
        bench.log(f"postgres: procrastinate run {run + 1} of {bench.runs}")
        defers.append(rate_of(n // 5, peer.defer(n // 5)))
        peer.fill(n - n // 5)
        works.append(rate_of(n, peer.work()))
    d, w = median(defers), median(works)
    table = Table(f"postgres: kue vs procrastinate {_version('procrastinate')} on the same "
                  f"server (jobs/s, median of {bench.runs})",
                  ["operation", "kue", "procrastinate", "kue/procrastinate"])
    table.add("put / defer (single)", fmt_rate(kue_put), fmt_rate(d), fmt_ratio(kue_put, d))
    table.add("worker, 1 process, no-op job", fmt_rate(kue_worker), fmt_rate(w),
              fmt_ratio(kue_worker, w))
    table.notes.append(f"procrastinate: {n:,} jobs, an async no-op task, concurrency 1, "
                       "wait=False, delete_jobs=always; kue: bench_jobs.noop, one kue-worker "
                       "process (start-up subtracted), records kept")
    bench.table(table)
    return kue_worker / w


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def run(bench: Bench) -> None:
    """The postgres tables and the postgres targets."""
    with serve(SERVER, "local") as server:
        url = server.url
        raw = RawPostgres(url)
        spec = Spec("postgres", url, raw, ops=bench.count(5000), batch=BATCH,
                    workers=bench.count(20000), prefetch=(1, None), notes=[
                        "throwaway cluster, fsync off (a commit is written, not flushed)"])
        res = measure(bench, spec)
        fused_table(bench, url, raw, bench.count(5000))
        raw.close()
        ratio = peer_table(bench, url, res.kue["put (single)"], res.kue["worker, 1 process"],
                           bench.count(5000))
    many = f"put_many ({BATCH}/batch)"
    for case, goal, what in (
        ("put (single)", 0.8, "raw single INSERT"),
        (many, 0.8, "raw INSERT ... unnest"),
        ("reserve+delete", 0.8, "raw SKIP LOCKED + DELETE"),
        ("worker, 1 process", 0.8, "raw SKIP LOCKED + DELETE loop"),
    ):
        k = res.kue[case]
        r = res.raw["reserve+delete" if case.startswith("worker") else case]
        bench.target(f"postgres {case} >= {goal}x {what}", f"{k / r:.2f}x ({k:,.0f} vs {r:,.0f})",
                     k / r >= goal)
    w = res.kue["worker, 1 process"]
    off = res.kue["worker, 1 process, prefetch off"]
    bench.target("postgres worker 1 process >= 2,000 jobs/s", f"{w:,.0f} jobs/s (prefetch off "
                 f"{off:,.0f})", w >= 2000)
    bench.target("postgres worker >= 2x procrastinate", f"{ratio:.2f}x", ratio >= 2)
    bench.results["postgres.worker"] = w


# -- churn -------------------------------------------------------------------------------------


def _sizes(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row: Any = conn.execute("SELECT pg_relation_size('kue_jobs'), pg_indexes_size('kue_jobs')"
                            ).fetchone()
    return int(row[0]), int(row[1])


def churn(total: int, depth: int = 10_000, consumers: int = 2) -> None:
    """Push ``total`` jobs through one queue; print the table's sizes before, at peak, after."""
    with serve(SERVER, "local") as server, psycopg.connect(server.url, autocommit=True) as conn:
        queue = kue.connect(server.url, queue="churn")
        backend: Any = queue.backend
        queue.put_many([kue.PutItem(b"x" * 100)] * depth)
        start = _sizes(conn)
        peak = [start]
        done = [0]
        lock = threading.Lock()
        produced = depth

        def consume() -> None:
            job = backend.reserve(["churn"], 5)
            while job is not None:
                with lock:
                    done[0] += 1
                job = backend.delete_and_reserve(job, ["churn"], 5)

        threads = [threading.Thread(target=consume) for _ in range(consumers)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        while produced < total:
            if produced - done[0] >= depth:
                time.sleep(0.01)
                continue
            n = min(1000, total - produced)
            queue.put_many([kue.PutItem(b"x" * 100)] * n)
            produced += n
            if produced % 50_000 < n:
                peak.append(_sizes(conn))
                print(f"  {produced:,} put, {done[0]:,} done, heap {peak[-1][0] / 2**20:.1f} "
                      f"MiB, indexes {peak[-1][1] / 2**20:.1f} MiB", flush=True)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        ended = _sizes(conn)
        vacuums = conn.execute("SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname "
                               "= 'kue_jobs'").fetchone()
        before = vacuums[0] if vacuums else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the next autovacuum after the last delete
            row: Any = conn.execute("SELECT autovacuum_count, n_dead_tup FROM "
                                    "pg_stat_user_tables WHERE relname = 'kue_jobs'").fetchone()
            if row[0] > before and row[1] == 0:
                break
            time.sleep(0.5)
        after = _sizes(conn)
        seen = [*peak, ended]
        high = (max(p[0] for p in seen), max(p[1] for p in seen))

        def mib(n: int) -> str:
            return f"{n / 2**20:.2f} MiB"

        print(f"{total:,} jobs through one queue in {elapsed:.0f} s "
              f"({total / elapsed:,.0f} jobs/s, {consumers} consumers, depth <= {depth:,})")
        print(f"heap:    start {mib(start[0])}, peak {mib(high[0])}, end {mib(ended[0])}, "
              f"after autovacuum {mib(after[0])}")
        print(f"indexes: start {mib(start[1])}, peak {mib(high[1])}, end {mib(ended[1])}, "
              f"after autovacuum {mib(after[1])}")
        print(f"autovacuum runs on kue_jobs: {row[0]}")
        queue.close()


if __name__ == "__main__":
    if "--churn" in sys.argv:
        parser = argparse.ArgumentParser(description="PostgreSQL table bloat under churn")
        parser.add_argument("--churn", type=int, nargs="?", const=1_000_000, default=1_000_000,
                            help="jobs to push through one queue (default 1,000,000)")
        churn(parser.parse_args().churn)
    else:
        from harness import main

        main([run])
