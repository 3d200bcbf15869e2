"""Where a job record's cost goes on redis, each side measured without the other.

Run: ``python bench/records_cost.py [--jobs N] [--reps R]``.

``bench_records.py`` times the whole worker, whose rate on a shared machine moves by more
between runs than a change of a few µs per job. This measures the two halves apart, as CPU
time, records on against records off, the two taking turns:

- the worker's Python: an in-process :class:`kue.worker.Worker` draining jobs of
  ``bench_jobs.answer`` from a :class:`kue_redis.backend.RedisBackend` whose script calls
  return canned replies, so no socket, no server and no wait is in the loop;
- the server: the scripts the worker runs per job (``delete_reserve`` or
  ``complete_reserve`` with prefetch off, ``settle_many`` with 16 acks with prefetch on), sent
  as one pipelined chain (each call's reservation is known in advance: jobs of one priority
  come out in put order), and the server's ``used_cpu_user + used_cpu_sys`` per job.

- sqlite's worker: an in-process :class:`kue.worker.Worker` draining jobs of
  ``bench_jobs.answer`` from a :class:`kue.backends.sqlite.SQLiteBackend` on a file (the
  database runs in the worker's process, so its CPU time is the worker's and the backend's
  together); the queues are filled before each timed run.

Each prints the fastest and the median of the runs, in µs per job. ``--only`` picks some.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from bench_jobs import answer
from servers import backend_url

from kue.backend import Backend, PutItem
from kue.backends.sqlite import SQLiteBackend
from kue.codec import encode
from kue.job import envelope_of
from kue.worker import Worker
from kue.worker.lease import LeaseKeeper
from kue.worker.timers import TimerThread
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys
from kue_redis.lane import DeferredReply
from kue_redis.scripts import ScriptArg, load_scripts

#: The modes measured: prefetch on (the worker's default, 16) and off.
PREFETCH = (16, 1)
#: A done record as the worker writes one for ``bench_jobs.answer`` (the result varies).
DOC = ('{"state":"done","finished_at":1795925692.6056502,"started_at":1795925682.15828,'
       '"attempts":1,"priority":1024,"name":"bench_jobs.answer",'
       '"enqueued_at":1795925682.1582813,"error":null,"result":{"n":%d}}')
#: The record's ttl in ms: the default retention, one day.
TTL_MS = 86_400_000


class CannedLane:
    """The lane of :class:`CannedRedis`: the deferred round trip's two scripts, answered."""

    def __init__(self, backend: CannedRedis) -> None:
        self.backend = backend

    def execute_deferring(self, first: tuple[Any, ...], second: tuple[Any, ...]) -> Any:
        """The give-back-and-reserve script's reply; the acks' is taken later."""
        return self.backend.run_canned("settle_many", first[3 + int(first[2]):])

    def take_deferred(self) -> DeferredReply:
        """Every ack done."""
        return DeferredReply([[], [], [1]])


class CannedRedis(RedisBackend):
    """A redis backend whose script calls answer from a list of reservations made up front."""

    def __init__(self, body: bytes) -> None:
        super().__init__("redis://127.0.0.1:1/0")
        self.body = body
        self.replies: list[list[Any]] = []
        self._lane = CannedLane(self)  # type: ignore[assignment]

    def refill(self, n: int) -> None:
        """Make up ``n`` reservations (and a batch more: a worker may ask for a full one)."""
        self.replies = [[1, uuid.uuid4().hex.encode(), self.body, b"1024", 1, 60_000]
                        for _ in range(n + max(PREFETCH))]

    def _reply(self) -> list[Any]:
        if not self.replies:  # a job given back (prefetch window) is reserved again
            self.refill(0)
        return self.replies.pop()

    def _run(self, name: str, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        return self.run_canned(name, args)

    def run_canned(self, name: str, args: Sequence[Any]) -> Any:
        """What script ``name`` answers, given its ARGV (for settle_many, the batch size)."""
        if name == "settle_many":
            return [[], [self._reply() for _ in range(int(args[2]))], [1]]
        if name in ("delete_reserve", "complete_reserve", "reserve"):
            return self._reply()
        return 1  # complete, delete: done


def _spread(runs: list[float]) -> str:
    ordered = sorted(runs)
    return f"{ordered[0]:6.2f} (median {ordered[len(ordered) // 2]:6.2f})"


def _on_against_off(label: str, reps: int, one_run: Callable[[str], float]) -> None:
    """Print ``one_run(side)`` (µs per job) over ``reps`` rounds, records on and off taking turns.

    The side that goes first alternates, so neither always runs on a warmer cache.
    """
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for rep in range(reps):
        for side in ("on", "off") if rep % 2 == 0 else ("off", "on"):
            runs[side].append(one_run(side))
    for side in ("off", "on"):
        print(f"{label}, records {side:3s}: {_spread(runs[side])} µs/job")


def worker_python(jobs: int, reps: int) -> None:
    """The worker's CPU per job with canned replies, records on and off, per prefetch mode."""
    backend = CannedRedis(encode(envelope_of(answer.message(1))))
    keeper, timers = LeaseKeeper(backend), TimerThread("records-cost")
    try:
        for prefetch in PREFETCH:
            workers = {
                "on": Worker(backend, ["q"], keeper=keeper, timers=timers, prefetch=prefetch),
                "off": Worker(backend, ["q"], keeper=keeper, timers=timers, prefetch=prefetch,
                              result_ttl=0),
            }

            def one_run(side: str, workers: dict[str, Worker] = workers) -> float:
                worker = workers[side]
                backend.refill(jobs)
                started = time.process_time()
                worker.run(burst=True, max_jobs=worker.stats.handled + jobs)
                return (time.process_time() - started) / jobs * 1e6

            _on_against_off(f"worker Python, prefetch {prefetch:2d}", reps, one_run)
    finally:
        keeper.close()
        timers.close()


def _put(backend: Backend, queue: str, bodies: list[bytes]) -> None:
    step = backend.capabilities.max_batch
    for start in range(0, len(bodies), step):
        backend.put_many(queue, [PutItem(b) for b in bodies[start:start + step]])


def sqlite_worker(jobs: int, reps: int) -> None:
    """sqlite's worker CPU per job (worker and database in one process), records on and off."""
    bodies = [encode(envelope_of(answer.message(i))) for i in range(jobs)]
    with tempfile.TemporaryDirectory() as tmp:
        backend = SQLiteBackend(Path(tmp) / "cost.db")
        keeper, timers = LeaseKeeper(backend), TimerThread("records-cost")
        try:
            for prefetch in PREFETCH:
                workers = {
                    "on": Worker(backend, ["on"], keeper=keeper, timers=timers,
                                 prefetch=prefetch),
                    "off": Worker(backend, ["off"], keeper=keeper, timers=timers,
                                  prefetch=prefetch, result_ttl=0),
                }

                def one_run(side: str, workers: dict[str, Worker] = workers) -> float:
                    worker = workers[side]
                    _put(backend, side, bodies)
                    started = time.process_time()
                    worker.run(burst=True, max_jobs=worker.stats.handled + jobs)
                    spent = (time.process_time() - started) / jobs * 1e6
                    if backend.stats(side).total:
                        raise RuntimeError(f"the worker left jobs on {side!r}")
                    return spent

                _on_against_off(f"sqlite worker, prefetch {prefetch:2d}", reps, one_run)
        finally:
            keeper.close()
            timers.close()
            backend.close()


def _chain(client: redis.Redis, shas: dict[str, str], keys: QueueKeys, ids: list[str],
           prefetch: int, recorded: bool) -> None:
    """Run the worker's calls for ``ids`` (already put) as one pipelined chain."""
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(shas["settle_many"], 6, *keys.reserve_keys, 0, 0, prefetch)
    for start in range(0, len(ids), prefetch):
        batch = ids[start:start + prefetch]
        if prefetch == 1:
            job_id = batch[0]
            if recorded:
                pipe.evalsha(shas["complete_reserve"], 17, *keys.job_keys,
                             *keys.record_keys(job_id), *keys.reserve_keys, job_id, "1",
                             TTL_MS, DOC % start)
            else:
                pipe.evalsha(shas["delete_reserve"], 14, *keys.job_keys, *keys.reserve_keys,
                             job_id, "1")
        else:
            names: list[str] = []
            args: list[ScriptArg] = [len(batch), 0, prefetch]
            for i, job_id in enumerate(batch):
                names += (*keys.job_keys, *keys.record_keys(job_id))
                args += [job_id, "1", TTL_MS, DOC % i] if recorded else [job_id, "1", -2]
            pipe.evalsha(shas["settle_many"], len(names) + 6, *names, *keys.reserve_keys, *args)
        if len(pipe) >= 200:
            pipe.execute()
    pipe.execute()


def _fill(backend: RedisBackend, queue: str, body: bytes, n: int) -> list[str]:
    """Put ``n`` jobs of one priority on ``queue``; their ids in put order."""
    ids: list[str] = []
    step = backend.capabilities.max_batch
    while len(ids) < n:
        ids += backend.put_many(queue, [PutItem(body, priority=1024)] * min(step, n - len(ids)))
    return ids


def server(jobs: int, reps: int) -> None:
    """The server's CPU per job for the worker's scripts, records on and off."""
    scripts = load_scripts()
    body = encode(envelope_of(answer.message(1)))
    with backend_url("redis") as url:
        backend = RedisBackend(url)
        client = redis.Redis.from_url(url)
        shas = {name: client.script_load(script.source) for name, script in scripts.items()}

        def cpu() -> float:
            info = client.info("cpu")
            return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

        try:
            for prefetch in PREFETCH:

                def one_run(side: str, prefetch: int = prefetch) -> float:
                    queue = f"cost-{uuid.uuid4().hex[:8]}"
                    ids = _fill(backend, queue, body, jobs)
                    before = cpu()
                    _chain(client, shas, QueueKeys.of(backend.settings.prefix, queue), ids,
                           prefetch, side == "on")
                    spent = (cpu() - before) / jobs * 1e6
                    if backend.stats(queue).total:
                        raise RuntimeError(f"the chain left jobs on {queue!r}")
                    return spent

                _on_against_off(f"server, prefetch {prefetch:2d}", reps, one_run)
        finally:
            client.close()
            backend.close()


#: The measures by name, in the order they run by default.
MEASURES: dict[str, Callable[[int, int], None]] = {
    "worker": worker_python, "server": server, "sqlite": sqlite_worker,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and print both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=8_000,
                        help="jobs per side and run (rounded down to a multiple of 16)")
    parser.add_argument("--reps", type=int, default=9, help="runs per side")
    parser.add_argument("--only", choices=sorted(MEASURES), action="append",
                        help="run only this measure (repeatable); default: all")
    args = parser.parse_args(argv)
    jobs = args.jobs // max(PREFETCH) * max(PREFETCH)
    if jobs < max(PREFETCH) or args.reps < 1:
        parser.error(f"--jobs must be >= {max(PREFETCH)} and --reps >= 1, "
                     f"got {args.jobs} and {args.reps}")
    for name in args.only or MEASURES:
        MEASURES[name](jobs, args.reps)


if __name__ == "__main__":
    main()
