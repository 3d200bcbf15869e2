"""The per-backend table every ``bench_<backend>`` module builds: kue beside a raw client.

One run measures, on ~110-byte no-op envelopes and on the same server: single puts, puts in
batches, a reserve + delete drain, each through kue's Queue and through the raw client, then the
real ``kue-worker --burst`` over a pre-filled queue with 1 process and with ``-c 2``.

Worker rates are net of start-up: the wall time of ``kue-worker --burst`` from spawn to exit
over N jobs, minus the median wall time of the same command over an empty queue (interpreter
start, imports, connecting). The raw column of the worker rows is the raw reserve + delete
loop of the same run: what a minimal consumer with no decoding, no hooks and no logging does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from harness import (
    Bench,
    Table,
    bodies,
    fmt_rate,
    fmt_ratio,
    kue_worker_args,
    median,
    rate_of,
    run_to_exit,
    timed,
)

import kue
from kue.backend import PutItem


class RawClient(Protocol):
    """The same operations done with a backend's own client, as a baseline."""

    #: What the raw column is, e.g. "redis-py EVALSHA".
    label: str

    def put(self, items: Sequence[bytes]) -> None:
        """Put each body with one call."""
        ...

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """Put the bodies ``batch`` per round trip (as many single calls if it cannot)."""
        ...

    def drain(self, n: int) -> None:
        """Reserve and delete ``n`` jobs, one at a time."""
        ...

    def close(self) -> None:
        """Let go of connections and files."""
        ...


class KueClient:
    """The same operations through a kue Queue."""

    def __init__(self, url: str, queue: str) -> None:
        self.queue = kue.connect(url, queue=queue)

    def put(self, items: Sequence[bytes]) -> None:
        """One ``Queue.put`` per body."""
        put = self.queue.put
        for b in items:
            put(b)

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """``Queue.put_many`` with ``batch`` items per call."""
        for start in range(0, len(items), batch):
            self.queue.put_many([PutItem(b) for b in items[start:start + batch]])

    def drain(self, n: int) -> None:
        """``reserve(timeout=0)`` then ``delete()``, ``n`` times."""
        reserve = self.queue.reserve
        for _ in range(n):
            job = reserve(timeout=0)
            if job is None:
                raise RuntimeError("the queue ran dry before the drain ended")
            job.delete()

    def drain_fused(self, n: int) -> None:
        """One reserve, then ``delete_and_reserve`` per job (the worker's fused call)."""
        backend: Any = self.queue.backend
        queue = [self.queue.name]
        job = backend.reserve(queue, 0)
        for _ in range(n - 1):
            job = backend.delete_and_reserve(job, queue, 0)
        backend.delete(job)

    def fill(self, n: int, batch: int) -> None:
        """Put ``n`` no-op jobs as fast as possible (untimed set-up)."""
        self.put_many(bodies(n), batch)

    def close(self) -> None:
        """Close the queue."""
        self.queue.close()


@dataclass
class Spec:
    """What to measure on one backend.

    :param name: the backend's name, first cell of each row.
    :param url: where kue connects.
    :param raw: the raw client (None: no raw baseline for this backend).
    :param ops: jobs per put and drain case.
    :param batch: jobs per put_many call.
    :param workers: jobs the worker runs drain.
    :param fill_batch: batch size of untimed fills.
    :param concurrency: the ``-c`` values to run the worker with (None: one process, no -c).
    :param in_process_worker: run :class:`kue.worker.Worker` in this process instead of
        ``kue-worker`` (the memory backend's store lives in one process).
    :param prefetch: the ``--prefetch`` values to run each worker case with (None: the
        default); a backend that reserves in batches gets a row with prefetch off (1) and
        one with the default.
    """

    name: str
    url: str
    raw: RawClient | None
    ops: int
    batch: int
    workers: int
    fill_batch: int = 1000
    concurrency: Sequence[int | None] = (None, 2)
    in_process_worker: bool = False
    prefetch: Sequence[int | None] = (None,)
    notes: list[str] = field(default_factory=list)


@dataclass
class Results:
    """Median rates in jobs/s of one backend's table: kue and raw per case."""

    kue: dict[str, float] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)


def _worker_case(c: int | None, prefetch: int | None = None) -> str:
    case = "worker, 1 process" if c is None else f"worker, -c {c}"
    if prefetch == 1:
        return f"{case}, prefetch off"
    if prefetch is not None:
        return f"{case}, --prefetch {prefetch}"
    return case


def worker_seconds(url: str, queue: str, concurrency: int | None,
                   prefetch: int | None = None) -> float:
    """Wall seconds of ``kue-worker --burst`` on ``queue`` from spawn to exit."""
    extra = ["--burst"] + ([] if concurrency is None else ["-c", str(concurrency)])
    if prefetch is not None:
        extra += ["--prefetch", str(prefetch)]
    return run_to_exit(kue_worker_args(url, queue, *extra))


def in_process_worker_seconds(url: str, queue: str, prefetch: int | None = None) -> float:
    """Seconds of a burst :class:`kue.worker.Worker` run in this process."""
    import bench_jobs  # noqa: F401  (registers the jobs)

    from kue.worker import Worker

    q = kue.connect(url, queue=queue)
    worker = (Worker(q.backend, [queue]) if prefetch is None
              else Worker(q.backend, [queue], prefetch=prefetch))
    return timed(lambda: worker.run(burst=True))


def check_empty(client: KueClient) -> None:
    """Fail loudly if a worker left jobs behind (buried: the bench's jobs did not load)."""
    stats = client.queue.stats()
    if stats.total:
        raise RuntimeError(f"the worker left jobs behind on {client.queue!r}: {stats}")


def measure(bench: Bench, spec: Spec) -> Results:
    """Run every case ``bench.runs`` times; returns the medians and adds the table."""
    import uuid

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    client = KueClient(spec.url, queue)
    samples: dict[str, list[float]] = {}
    raw_samples: dict[str, list[float]] = {}
    many = f"put_many ({spec.batch}/batch)"

    def add(into: dict[str, list[float]], case: str, n: int, fn: Callable[[], object]) -> None:
        into.setdefault(case, []).append(rate_of(n, timed(fn)))

    sides: list[tuple[dict[str, list[float]], KueClient | RawClient]] = [(samples, client)]
    if spec.raw is not None:
        sides.append((raw_samples, spec.raw))

    for run in range(bench.runs):
        bench.log(f"{spec.name}: put/put_many/drain run {run + 1} of {bench.runs}")
        items = bodies(spec.ops)
        # Each case runs on both sides back to back, so a busy moment hits both alike; which
        # side goes first alternates from run to run, so going first or second favours neither.
        turn = sides if run % 2 == 0 else sides[::-1]
        for side, who in turn:
            add(side, "put (single)", spec.ops, partial(who.put, items))
        for side, who in turn:
            add(side, "reserve+delete", spec.ops, partial(who.drain, spec.ops))
        for side, who in turn:
            add(side, many, spec.ops, partial(who.put_many, items, spec.batch))
        for _, who in turn:
            who.drain(spec.ops)

    for c in spec.concurrency:
        cases = [(_worker_case(c, p), p) for p in spec.prefetch]
        if spec.in_process_worker:
            for run in range(bench.runs):
                # Prefetch off and on take turns going first, as the put/drain sides do.
                for case, p in (cases if run % 2 == 0 else cases[::-1]):
                    bench.log(f"{spec.name}: {case} (in process) run {run + 1}")
                    client.fill(spec.workers, spec.fill_batch)
                    seconds = in_process_worker_seconds(spec.url, queue, p)
                    check_empty(client)
                    samples.setdefault(case, []).append(rate_of(spec.workers, seconds))
            continue
        startup = median([worker_seconds(spec.url, queue, c) for _ in range(bench.runs)])
        for run in range(bench.runs):
            for case, p in (cases if run % 2 == 0 else cases[::-1]):
                bench.log(f"{spec.name}: {case} run {run + 1} (start-up {startup:.2f} s)")
                client.fill(spec.workers, spec.fill_batch)
                seconds = worker_seconds(spec.url, queue, c, p)
                check_empty(client)
                samples.setdefault(case, []).append(rate_of(spec.workers, seconds - startup))
        for case, _ in cases:
            spec.notes.append(f"{case}: {spec.workers:,} jobs; start-up of an empty run "
                              f"({startup:.2f} s) subtracted")
    client.close()

    results = Results(
        kue={k: median(v) for k, v in samples.items()},
        raw={k: median(v) for k, v in raw_samples.items()},
    )
    raw_drain = results.raw.get("reserve+delete")
    label = spec.raw.label if spec.raw is not None else "raw"
    table = Table(
        f"{spec.name}: kue vs {label} (jobs/s, median of {bench.runs})",
        ["operation", "kue", label, "kue/raw"],
        notes=spec.notes,
    )
    for case, rate in results.kue.items():
        raw_rate = raw_drain if case.startswith("worker, 1") else results.raw.get(case)
        table.add(case, fmt_rate(rate), fmt_rate(raw_rate), fmt_ratio(rate, raw_rate))
    table.notes.insert(0, f"put/drain cases: {spec.ops:,} jobs of ~{len(bodies(1)[0])} bytes; "
                       "the raw column of the 1-process worker row is the raw reserve+delete "
                       "loop")
    bench.table(table)
    return results


def closing(raw: RawClient | None) -> None:
    """Close ``raw`` if given."""
    if raw is not None:
        raw.close()
