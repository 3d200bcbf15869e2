"""kue against RQ, Dramatiq, Celery and Huey on one Redis server, with the same no-op job.

Run: ``python bench/bench_peers.py [--runs R] [--quick]``.

The job is one INCR on a Redis key (``bench_jobs.bump``) in every library. Per library and run:
empty the database, enqueue N jobs one call each (timed: the enqueue rate), then start the
library's worker as a subprocess over the full queue and watch the counter; the processing rate
is the counter's rise between 10 % and 90 % of N over the time it took, so start-up and
shut-down, which differ a lot between libraries, are left out for all alike.

Workers: kue-worker (1 process, redis backend, ``--burst``); RQ ``rq worker --burst -w
rq.worker.SimpleWorker`` (no fork per job); Dramatiq ``dramatiq.Worker(broker,
worker_threads=8)`` in one process; Celery ``celery -A peer_celery worker -c 1 -P prefork``;
Huey ``huey_consumer peer_huey.huey -w 1`` (one thread). Every worker logs warnings only, so
no library pays for a log line per job (kue's default INFO line per job is a row of its own).
Last, a floor row: ``peer_raw``, a one-thread loop of raw redis-py calls with no library at all,
the most a one-thread worker can do per job on this machine and server.

Libraries take turns run by run, so a drift of the machine's speed during the bench (seen here:
2x between runs an hour apart) moves them alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis
from harness import (
    BENCH_DIR,
    Bench,
    Table,
    bench_env,
    fmt_rate,
    kue_worker_args,
    median,
    rate_of,
    timed,
)
from servers import backend_url

BIN = Path(sys.executable).parent
QUEUE = "bench"


@dataclass
class Peer:
    """One library: how to enqueue the job and how to run its worker."""

    name: str
    enqueue: Callable[[], Callable[[], object]]  # returns the one-job enqueue call
    command: list[str]
    exits_when_empty: bool = False
    stop_signal: int = signal.SIGTERM


#: The row of kue's worker with as many threads as Dramatiq's.
THREADED = "kue (1 process x 8 threads, --threads 8)"
#: The row of kue's one-process worker with prefetch off (one round trip per job).
NO_PREFETCH = "kue (1 process, --prefetch 1)"
#: The row of the raw one-thread loop (peer_raw): no library, the floor of the machine.
RAW_FLOOR = "raw redis-py loop, 1 thread (no library)"


def peers(url: str) -> list[Peer]:
    """kue first (the reference), then the peers, all on ``url``."""
    import bench_jobs

    def kue_enqueue() -> Callable[[], object]:
        import kue

        queue = kue.connect(url, queue=QUEUE)
        return lambda: queue.push(bench_jobs.incr.message())

    def rq_enqueue() -> Callable[[], object]:
        import peer_rq
        import rq  # type: ignore[import-untyped, unused-ignore]

        queue = rq.Queue(QUEUE, connection=redis.Redis.from_url(url))
        return lambda: queue.enqueue(peer_rq.incr)

    def dramatiq_enqueue() -> Callable[[], object]:
        import peer_dramatiq

        send: Callable[[], object] = peer_dramatiq.incr.send
        return send

    def celery_enqueue() -> Callable[[], object]:
        import peer_celery

        delay: Callable[[], object] = peer_celery.incr.delay
        return delay

    def raw_enqueue() -> Callable[[], object]:
        import peer_raw

        return peer_raw.enqueue()

    def huey_enqueue() -> Callable[[], object]:
        import peer_huey

        call: Callable[[], object] = peer_huey.incr
        return call

    kue_cmd = kue_worker_args(url, QUEUE, "--burst")
    return [
        Peer("kue (1 process)", kue_enqueue, kue_cmd, exits_when_empty=True),
        Peer(NO_PREFETCH, kue_enqueue, [*kue_cmd, "--prefetch", "1"], exits_when_empty=True),
        Peer("kue (1 process, INFO log line per job)", kue_enqueue, [*kue_cmd, "-v", "INFO"],
             exits_when_empty=True),
        Peer(THREADED, kue_enqueue, [*kue_cmd, "--threads", "8"], exits_when_empty=True),
        Peer("RQ (SimpleWorker, burst)", rq_enqueue,
             [str(BIN / "rq"), "worker", "--burst", "-w", "rq.worker.SimpleWorker", "-u", url,
              "--logging_level", "WARNING", QUEUE], exits_when_empty=True),
        Peer("Dramatiq (1 process x 8 threads)", dramatiq_enqueue,
             [sys.executable, "-c", "import peer_dramatiq; peer_dramatiq.serve()"]),
        Peer("Celery (prefork -c 1)", celery_enqueue,
             [str(BIN / "celery"), "-A", "peer_celery", "worker", "-c", "1", "-P", "prefork",
              "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
              "--without-heartbeat"]),
        Peer("Huey (1 worker thread)", huey_enqueue,
             [str(BIN / "huey_consumer"), "peer_huey.huey", "-w", "1", "-k", "thread", "-q"],
             stop_signal=signal.SIGINT),
        Peer(RAW_FLOOR, raw_enqueue,
             [sys.executable, "-c", "import peer_raw; peer_raw.serve()"], exits_when_empty=True),
    ]


def watch(client: redis.Redis, key: str, n: int, proc: subprocess.Popen[bytes],
          timeout: float = 120.0) -> float:
    """Jobs/s while the counter at ``key`` rose from 10 % to 90 % of ``n``; waits for all n."""
    lo, hi = max(1, n // 10), n * 9 // 10
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while True:
        count = int(client.get(key) or 0)
        now = time.perf_counter()
        if first is None and count >= lo:
            first = (now, count)
        if last is None and count >= hi:
            last = (now, count)
        if count >= n:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"worker {proc.args!r} exited at {count} of {n} jobs")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker {proc.args!r} ran {count} of {n} jobs in {timeout} s")
        time.sleep(0.002)
    assert first is not None and last is not None
    return rate_of(last[1] - first[1], last[0] - first[0])


def fill(one: Callable[[], object], n: int) -> None:
    """Enqueue ``n`` jobs, one call each."""
    for _ in range(n):
        one()


def stop(proc: subprocess.Popen[bytes], peer: Peer) -> None:
    """Let a burst worker exit by itself; stop the others with their stop signal."""
    if not peer.exits_when_empty:
        proc.send_signal(peer.stop_signal)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(bench: Bench) -> None:
    """The peer table and the peer targets."""
    n = bench.count(5000)
    with backend_url("redis") as url:
        os.environ["BENCH_REDIS_URL"] = url
        if str(BENCH_DIR) not in sys.path:
            sys.path.insert(0, str(BENCH_DIR))
        client = redis.Redis.from_url(url)
        env = bench_env(BENCH_REDIS_URL=url)
        key = "bench:counter"
        every = peers(url)
        enqueuers = [peer.enqueue() for peer in every]
        enqueue_rates: dict[str, list[float]] = {peer.name: [] for peer in every}
        process_rates: dict[str, list[float]] = {peer.name: [] for peer in every}
        # Run by run, every library in turn: a machine whose speed drifts during the bench
        # moves every library's runs alike, not one library's more than another's.
        for run_no in range(bench.runs):
            for peer, one in zip(every, enqueuers, strict=True):
                bench.log(f"peers: {peer.name} run {run_no + 1}")
                client.flushdb()

                enqueue_rates[peer.name].append(rate_of(n, timed(partial(fill, one, n))))
                # A file, not a pipe: a worker that logs a line per job must never block.
                with tempfile.TemporaryFile() as log:
                    proc = subprocess.Popen(peer.command, env=env, cwd=BENCH_DIR,
                                            stdout=log, stderr=log)
                    try:
                        process_rates[peer.name].append(watch(client, key, n, proc))
                    except RuntimeError:
                        log.seek(0)
                        print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
                        raise
                    finally:
                        stop(proc, peer)
        rows = [(peer.name, median(enqueue_rates[peer.name]), median(process_rates[peer.name]))
                for peer in every]
        client.flushdb()
        client.close()

    kue_enq, kue_proc = rows[0][1], rows[0][2]
    table = Table(f"Peers on one Redis server, no-op job = one INCR (jobs/s, median of "
                  f"{bench.runs})",
                  ["library", "enqueue", "kue/peer", "processing", "kue/peer"])
    for name, enq, proc_rate in rows:
        table.add(name, fmt_rate(enq), f"{kue_enq / enq:.2f}x", fmt_rate(proc_rate),
                  f"{kue_proc / proc_rate:.2f}x")
    table.notes += [
        f"{n:,} jobs per run; enqueue: one call per job; processing: counter rise from 10 % "
        "to 90 % of the jobs over its time, worker started on a full queue",
        "kue/peer: kue (1 process, warnings only) over the row's library",
        "libraries take turns: run 1 of each, then run 2 of each, and so on",
        f"{RAW_FLOOR}: raw redis-py EVALSHA of the bench's raw fused script (delete the last "
        "job, reserve the next) plus the job, nothing else: no library's one-thread worker "
        "can beat it on this machine (see peer_raw.py)",
    ]
    bench.table(table)
    by_name = {name: proc_rate for name, _, proc_rate in rows}
    for prefix, goal in (("Dramatiq", 2.0), ("RQ", 5.0), ("Celery", 5.0), ("raw", 1.5)):
        name = next(k for k in by_name if k.startswith(prefix))
        for kue_name in ("kue (1 process)", THREADED, NO_PREFETCH):
            ratio = by_name[kue_name] / by_name[name]
            bench.target(f"{kue_name} >= {goal}x {name}",
                         f"{ratio:.2f}x ({by_name[kue_name]:,.0f} vs {by_name[name]:,.0f})",
                         ratio >= goal)


if __name__ == "__main__":
    from harness import main

    main([run])
