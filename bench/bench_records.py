"""The worker with job records on against the same worker with them off, on sqlite and redis.

Run: ``python bench/bench_records.py [--runs R] [--quick]``.

One in-process :class:`kue.worker.Worker` per side drains jobs of ``bench_jobs.answer`` (it
returns ``{"n": i}``) from a queue of its own on one backend: records on is the default
(``result_ttl`` one day: each job's delete also writes its record, with the result, in the
same atomic step, the fused delete-and-reserve call on redis), records off is
``Worker(..., result_ttl=0)``. The two sides take turns in chunks of jobs, first side
alternating, so a busy moment of the (shared) machine hits both alike. Each backend is measured
twice: with prefetch on (the default, 16 jobs per round trip: the record goes with the batch's
``settle_many``; on redis, deferred acks: the server does the acks and their records after
the reserve, while the worker runs the jobs it got) and off (``prefetch=1``: the fused
complete-and-reserve call per job). Issue 17's target, in both modes: the worker with records
on within 0.85x of records off.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial

from bench_jobs import answer
from harness import Bench, Table, fmt_rate, median, rate_of, timed
from servers import backend_url

import kue
from kue.backend import Backend, PutItem
from kue.codec import encode
from kue.job import envelope_of
from kue.worker import Worker
from kue.worker.lease import LeaseKeeper
from kue.worker.timers import TimerThread
from kue.worker.worker import DEFAULT_PREFETCH

BACKENDS = ("sqlite", "redis")
GOAL = 0.85
#: Jobs per turn of a side.
CHUNK = 500
#: The modes measured: prefetch on (the default) and off.
PREFETCH = (DEFAULT_PREFETCH, 1)


def fill(backend: Backend, queue: str, n: int) -> None:
    """Put ``n`` jobs of ``bench_jobs.answer`` on ``queue``."""
    bodies = [encode(envelope_of(answer.message(i))) for i in range(n)]
    step = backend.capabilities.max_batch
    for start in range(0, n, step):
        backend.put_many(queue, [PutItem(b) for b in bodies[start : start + step]])


def drain(worker: Worker, n: int) -> None:
    """Let ``worker`` run ``n`` more jobs (it stops there, holding none)."""
    worker.run(burst=True, max_jobs=worker.stats.handled + n)


def check(backend: Backend, queues: Sequence[str], recorded: str, unrecorded: str) -> None:
    """Fail loudly if a side left jobs, or if records were (not) written as they should be."""
    for queue in queues:
        stats = backend.stats(queue)
        if stats.total:
            raise RuntimeError(f"the worker left jobs behind on {queue!r}: {stats}")
    status = kue.Queue(backend, queues[0]).status(recorded)
    if status is None or status.result is None:
        raise RuntimeError(f"records on, but job {recorded} has no result: {status}")
    if kue.Queue(backend, queues[1]).status(unrecorded) is not None:
        raise RuntimeError(f"records off, but job {unrecorded} has a record")


def measure(bench: Bench, name: str, prefetch: int, n: int) -> tuple[float, float]:
    """Median jobs/s of the worker with records on and off, on backend ``name``."""
    with backend_url(name) as url:
        queue = kue.connect(url, queue="bench")
        backend = queue.backend
        tag = uuid.uuid4().hex[:8]
        names = [f"records-on-{tag}", f"records-off-{tag}"]
        keeper, timers = LeaseKeeper(backend), TimerThread("bench-limits")
        workers = [
            Worker(backend, [names[0]], keeper=keeper, timers=timers, prefetch=prefetch),
            Worker(backend, [names[1]], keeper=keeper, timers=timers, result_ttl=0,
                   prefetch=prefetch),
        ]
        rates: list[list[float]] = [[], []]
        try:
            for r in range(bench.runs):
                bench.log(f"records, {name}, prefetch {prefetch}: run {r + 1} of {bench.runs}")
                for q in names:
                    fill(backend, q, n)
                # Remember one job of each side to check its record after the run.
                probes = [backend.peek(q, kue.JobState.READY) for q in names]
                spent = [0.0, 0.0]
                for c in range(n // CHUNK):
                    for side in (0, 1) if (c + r) % 2 == 0 else (1, 0):
                        spent[side] += timed(partial(drain, workers[side], CHUNK))
                for side in (0, 1):
                    rates[side].append(rate_of(n, spent[side]))
                ids = [p.id if p is not None else "" for p in probes]
                check(backend, names, ids[0], ids[1])
        finally:
            keeper.close()
            timers.close()
            queue.close()
    return median(rates[0]), median(rates[1])


def run(bench: Bench) -> None:
    """The records table and one target per backend."""
    n = bench.count(10_000) // CHUNK * CHUNK
    table = Table(
        f"Worker with job records on vs off (jobs/s, median of {bench.runs})",
        ["backend", "worker", "records off", "records on", "on / off"],
    )
    for name in BACKENDS:
        for prefetch in PREFETCH:
            on, off = measure(bench, name, prefetch, n)
            mode = f"prefetch {prefetch}" if prefetch > 1 else "prefetch off"
            table.add(name, mode, fmt_rate(off), fmt_rate(on), f"{on / off:.2f}x")
            bench.results[f"records {name} {mode} on/off"] = on / off
            bench.target(f"{name} worker ({mode}) with records on within {GOAL}x of records off",
                         f"{on / off:.2f}x ({fmt_rate(on)} vs {fmt_rate(off)} jobs/s)",
                         on / off >= GOAL)
    table.notes.append(
        f"{n:,} jobs of bench_jobs.answer (returns {{'n': i}}) per side and run, drained by "
        "an in-process kue.worker.Worker; records off is Worker(..., result_ttl=0)"
    )
    table.notes.append(
        f"the sides take turns in chunks of {CHUNK} jobs, the first side alternating; records "
        "on writes each done job's record (state, times, attempts, priority, name, result) in "
        "the same atomic step as its delete"
    )
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
