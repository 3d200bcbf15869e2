"""Records of done jobs expire: 1,000,000 jobs through with a 1 s retention keep few records.

Run: ``python bench/bench_retention.py [--quick]``.

Issue 17: "memory stays bounded: 1,000,000 jobs through with a 1 s retention leave no more
than the jobs of the last seconds, measured". Per backend that keeps records (memory, sqlite,
redis): put 1,000,000 jobs of ``bench_jobs.answer`` (each returns a result, so each leaves a
record), run an in-process :class:`kue.worker.Worker` with ``result_ttl=1`` over them, and
count what the store still holds once the queue is empty: memory's record table, sqlite's
done rows, redis's keys (an expired key stays in memory until Redis reclaims it, so they count
while they are there). The bar is on the span of the expiry times of the records held: the
jobs they belong to finished within that span of each other, so what is left is the jobs of
the last so many seconds, whatever the worker's rate. At most the retention and a second of
purge lag, against the 1,000,000 records a store without expiry would keep.
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
#: The bar on the span of the held records' expiry times: the retention, a second of lag.
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


def expiry_span(name: str, backend: Backend) -> float:
    """Seconds between the first and the last expiry time of the records held now."""
    if name == "memory":
        table = backend._store.records  # type: ignore[attr-defined]
        times = [expires for _, expires in table._records.values()]
        return max(times) - min(times) if times else 0.0
    if name == "sqlite":
        with sqlite3.connect(backend.path) as conn:  # type: ignore[attr-defined]
            low, high = conn.execute(
                "SELECT MIN(-due), MAX(-due) FROM kue_jobs WHERE state = 4").fetchone()
        return float(high - low) if low is not None else 0.0
    client = backend.client  # type: ignore[attr-defined]
    keys = list(client.scan_iter(count=1000))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.pttl(key)
        ttls = [ms for ms in pipe.execute() if ms >= 0]
    return (max(ttls) - min(ttls)) / 1000 if ttls else 0.0


def measure(name: str, n: int, log: Callable[[str], None]) -> tuple[float, int, float, int]:
    """The worker's jobs/s; the records held at its end, their expiry span; and 3 s later."""
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
            at_end, span = records_held(name, backend), expiry_span(name, backend)
            time.sleep(3 * RETENTION)  # no writes now: only a store that expires by itself
            later = records_held(name, backend)
        finally:
            keeper.close()
            timers.close()
            queue.close()
    return rate_of(n, spent), at_end, span, later


def run(bench: Bench) -> None:
    """The table of records left, and one target per backend."""
    n = bench.count(1_000_000)
    table = Table(
        f"Records left after {n:,} jobs with a {RETENTION:g} s retention",
        ["backend", "worker jobs/s", "records at the end", "their expiry span (s)",
         f"{3 * RETENTION:g} s later"],
    )
    for name in BACKENDS:
        rate, at_end, span, later = measure(name, n, bench.log)
        table.add(name, fmt_rate(rate), f"{at_end:,}", f"{span:.2f}", f"{later:,}")
        bench.target(f"{name}: {n:,} jobs with a {RETENTION:g} s retention leave the records "
                     f"of at most the last {BAR_SECONDS:g} s of jobs",
                     f"{at_end:,} records, expiring over {span:.2f} s", span <= BAR_SECONDS)
    table.notes.append(
        "one in-process kue.worker.Worker (prefetch 16) with result_ttl=1 drains a queue "
        "filled beforehand; memory: its record table; sqlite: its done rows and notes; redis: "
        "DBSIZE (expired keys count until Redis reclaims them)")
    table.notes.append(
        "expiry span: the last record's expiry time less the first's (redis: their PTTLs), "
        "so the jobs held finished within it; "
        f"'{3 * RETENTION:g} s later': with no writes, what the store reclaimed by itself "
        "(memory and sqlite purge as they write, so theirs stay)")
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
