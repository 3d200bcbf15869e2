"""Latency from put to job start with an idle worker waiting, per backend.

Run: ``python bench/bench_latency.py [--quick]``.

A ``kue-worker`` (1 process) waits on an empty queue. The producer, again and again: sleeps a
random 10-50 ms (so the worker is idle, blocked in reserve), reads ``time.time()``, pushes a
``bench_jobs.stamp`` job, and waits until the job has written its own start time
(``time.time()`` as its first statement) to a file. Latency = start - put, so it includes the
put's own round trip. The memory backend's worker runs in a thread of the producer's process.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import (
    BENCH_DIR,
    Bench,
    Table,
    bench_env,
    fmt_ms,
    kue_worker_args,
    percentile,
    scratch_dir,
)
from latency_floor import FLOOR_BACKENDS, measure_floor
from servers import BACKENDS, backend_url

import kue

#: Backends whose worker prefetches: each gets a row with ``--prefetch 1`` too.
PREFETCH_BACKENDS = ("memory", "sqlite", "redis")
#: p50 goals in seconds, by backend.
GOAL = {"sqlite": 0.050}
DEFAULT_GOAL = 0.005


@contextmanager
def idle_worker(name: str, url: str, queue: str, stamps: Path,
                prefetch: int | None = None) -> Iterator[None]:
    """A worker on ``queue`` for the duration of the block (a thread for memory://).

    ``prefetch``: its ``--prefetch`` (None: the default).
    """
    if name == "memory":
        import bench_jobs  # noqa: F401  (registers the jobs)

        from kue.worker import Worker

        os.environ["BENCH_STAMPS"] = str(stamps)
        backend = kue.connect(url, queue=queue).backend
        worker = (Worker(backend, [queue], idle_timeout=0.2) if prefetch is None
                  else Worker(backend, [queue], idle_timeout=0.2, prefetch=prefetch))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            worker.stop()
            thread.join()
        return
    extra = [] if prefetch is None else ["--prefetch", str(prefetch)]
    proc = subprocess.Popen(kue_worker_args(url, queue, *extra),
                            env=bench_env(BENCH_STAMPS=str(stamps)),
                            cwd=BENCH_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(reader: Iterator[str], token: str, timeout: float = 30.0) -> float:
    """The start time the job with ``token`` wrote (polls the stamp file)."""
    deadline = time.monotonic() + timeout
    for line in reader:
        if line:
            got, when = line.split()
            if got == token:
                return float(when)
        elif time.monotonic() > deadline:
            raise RuntimeError(f"job {token} did not start within {timeout} s")
        else:
            time.sleep(0.0002)
    raise RuntimeError("stamp reader ended")


def lines(path: Path) -> Iterator[str]:
    """Whole lines appended to ``path``, or "" when none is there yet."""
    path.touch()
    with path.open() as f:
        buffer = ""
        while True:
            chunk = f.readline()
            buffer += chunk
            if buffer.endswith("\n"):
                yield buffer.strip()
                buffer = ""
            else:
                yield ""


def measure(name: str, samples: int,
            prefetch: int | None = None) -> tuple[list[float], list[float], list[float]]:
    """Put -> start latencies in seconds on backend ``name``: from before the put call, from
    when it returned, and the raw client's put -> receive on the same server (or none; none
    either for a run with ``prefetch`` given, the worker's ``--prefetch``)."""
    import bench_jobs

    with backend_url(name) as url, scratch_dir("kue-bench-latency-") as tmp:
        queue_name = f"lat-{uuid.uuid4().hex[:8]}"
        stamps = tmp / "stamps"
        reader = lines(stamps)
        queue = kue.connect(url, queue=queue_name)
        out, after = [], []
        with idle_worker(name, url, queue_name, stamps, prefetch):
            queue.push(bench_jobs.stamp.message("warm-up"))
            wait_for(reader, "warm-up", timeout=60)
            for i in range(samples):
                time.sleep(random.uniform(0.010, 0.050))
                token = f"t{i}"
                message = bench_jobs.stamp.message(token)
                put_at = time.time()
                queue.push(message)
                returned_at = time.time()
                started = wait_for(reader, token)
                out.append(started - put_at)
                after.append(started - returned_at)
        queue.close()
        floor = (measure_floor(name, url, samples)
                 if name in FLOOR_BACKENDS and prefetch is None else [])
    return out, after, floor


def run(bench: Bench) -> None:
    """The latency table and the latency targets."""
    n = bench.count(200)
    table = Table("Latency put -> job start, idle worker (ms)",
                  ["backend", "p50", "p99", "max", "p50 from put's return",
                   "raw client p50", "samples"])
    for name in BACKENDS:
        bench.log(f"latency: {name}")
        count = n if name != "sqs" else max(20, n // 4)
        lat, after, floor = measure(name, count)
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        table.add(name, fmt_ms(p50), fmt_ms(p99), fmt_ms(max(lat)),
                  fmt_ms(percentile(after, 0.5)),
                  fmt_ms(percentile(floor, 0.5)) if floor else "—", str(len(lat)))
        goal = GOAL.get(name, DEFAULT_GOAL)
        bench.target(f"{name} p50 put->start < {goal * 1000:g} ms (idle worker)",
                     f"{p50 * 1000:.2f} ms", p50 < goal)
        if name in PREFETCH_BACKENDS:  # the same with prefetch off: prefetch must not slow it
            bench.log(f"latency: {name}, prefetch off")
            off, off_after, _ = measure(name, count, prefetch=1)
            table.add(f"{name}, prefetch off", fmt_ms(percentile(off, 0.5)),
                      fmt_ms(percentile(off, 0.99)), fmt_ms(max(off)),
                      fmt_ms(percentile(off_after, 0.5)), "—", str(len(off)))
    table.notes += [
        "kue-worker (1 process) idle on the queue; the producer sleeps 10-50 ms between jobs",
        "put time is read before the put call, so a latency includes the put's round trip; "
        "the last column counts from the put's return instead (a job may start before the "
        "reply reaches the producer)",
        "memory: the worker is a thread of the producer's process; sqs: moto_server",
        "raw client p50: the raw client alone on the same server, a thread blocked in its "
        "receive (BLPOP, greenstalk reserve, boto3 long poll) and a producer sending one "
        "message: the floor under kue's column (see latency_floor.py)",
    ]
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
