"""Records of done jobs expire: 1,000,000 jobs through with a 1 s retention keep few records.

Run: ``python bench/bench_retention.py [--quick]``.

Issue 17: "memory stays bounded: 1,000,000 jobs through with a 1 s retention leave no more
than the jobs of the last seconds, measured". Per backend that keeps records (memory, sqlite,
redis): put 1,000,000 jobs of ``bench_jobs.answer`` (each returns a result, so each leaves a
record), run an in-process :class:`kue.worker.Worker` with ``result_ttl=1`` over them, and
count what the store still holds once the queue is empty: memory's record table, sqlite's
done rows, redis's keys (an expired key stays in memory until Redis reclaims it, so they count
while they are there). "Seconds of jobs" is that count over the worker's rate: about the
retention (1 s) plus the store's purge lag is the bar, against the 1,000,000 a store without
expiry would keep.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable

from bench_jobs import answer
from harness import Bench, Table, fmt_rate, rate_of, timed
from servers import backend_url

import kue
from kue.backend import Backend, PutItem
from kue.codec import encode
from kue.job import envelope_of
from kue.worker import Worker
from kue.worker.lease import LeaseKeeper
from kue.worker.timers import TimerThread

BACKENDS = ("memory", "sqlite", "redis")
RETENTION = 1.0
#: The bar, in seconds of the worker's jobs: the retention and a second of purge lag.
BAR_SECONDS = 2.0


def fill(backend: Backend, queue: str, n: int) -> None:
    """Put ``n`` jobs on ``queue``, a batch at a time (no list of every body at once)."""
    step = backend.capabilities.max_batch
    for start in range(0, n, step):
        backend.put_many(queue, [PutItem(encode(envelope_of(answer.message(i))))
                                 for i in range(start, min(n, start + step))])


def records_held(name: str, backend: Backend) -> int:
    """How many records (live or expired but not yet reclaimed) the store holds now."""
    if name == "memory":
        return len(backend._store.records)  # type: ignore[attr-defined]
    if name == "sqlite":
        with sqlite3.connect(backend.path) as conn:  # type: ignore[attr-defined]
            done = conn.execute("SELECT COUNT(*) FROM kue_jobs WHERE state = 4").fetchone()[0]
            notes = conn.execute("SELECT COUNT(*) FROM kue_records").fetchone()[0]
        return int(done) + int(notes)
    # Redis: every key left is a record (a queue's keys go with its last job).
    return int(backend.client.dbsize())  # type: ignore[attr-defined]


def measure(name: str, n: int, log: Callable[[str], None]) -> tuple[float, int, int]:
    """The worker's jobs/s, and the records held at its end and 3 s later."""
    with backend_url(name) as url:
        queue = kue.connect(url, queue=f"retention-{uuid.uuid4().hex[:8]}")
        backend = queue.backend
        log(f"retention, {name}: putting {n:,} jobs")
        fill(backend, queue.name, n)
        keeper, timers = LeaseKeeper(backend), TimerThread("bench-limits")
        try:
            worker = Worker(backend, [queue.name], keeper=keeper, timers=timers,
                            result_ttl=RETENTION)
            log(f"retention, {name}: the worker runs them")
            spent = timed(lambda: worker.run(burst=True))
            if worker.stats.succeeded != n or queue.stats().total:
                raise RuntimeError(f"{name}: {worker.stats} and {queue.stats()} left")
            at_end = records_held(name, backend)
            time.sleep(3 * RETENTION)  # no writes now: only a store that expires by itself
            later = records_held(name, backend)
        finally:
            keeper.close()
            timers.close()
            queue.close()
    return rate_of(n, spent), at_end, later


def run(bench: Bench) -> None:
    """The table of records left, and one target per backend."""
    n = bench.count(1_000_000)
    table = Table(
        f"Records left after {n:,} jobs with a {RETENTION:g} s retention",
        ["backend", "worker jobs/s", "records at the end", "seconds of jobs",
         f"{3 * RETENTION:g} s later"],
    )
    for name in BACKENDS:
        rate, at_end, later = measure(name, n, bench.log)
        seconds = at_end / rate
        table.add(name, fmt_rate(rate), f"{at_end:,}", f"{seconds:.2f}", f"{later:,}")
        bench.target(f"{name}: {n:,} jobs with a {RETENTION:g} s retention leave the records "
                     f"of at most the last {BAR_SECONDS:g} s of jobs",
                     f"{at_end:,} records = {seconds:.2f} s of jobs", seconds <= BAR_SECONDS)
    table.notes.append(
        "one in-process kue.worker.Worker (prefetch 16) with result_ttl=1 drains a queue "
        "filled beforehand; memory: its record table; sqlite: its done rows and notes; redis: "
        "DBSIZE (expired keys count until Redis reclaims them)")
    table.notes.append(
        f"seconds of jobs = records at the end / the worker's rate; "
        f"'{3 * RETENTION:g} s later': with no writes, what the store reclaimed by itself "
        "(memory and sqlite purge as they write, so theirs stay)")
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
