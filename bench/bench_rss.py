"""Resident memory of a kue-worker process as it runs 100,000 no-op jobs (sqlite, redis).

Run: ``python bench/bench_rss.py [--quick]``.

One ``kue-worker`` (1 process) runs while the queue is fed 1,000 jobs (warm-up), then up to
10,000, then up to 100,000 in all; after each stage, once the queue is empty, the worker's RSS
is read with psutil. A worker that leaks grows between 10,000 and 100,000 jobs.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import psutil
from harness import BENCH_DIR, Bench, Table, bench_env, bodies, kue_worker_args
from ops import KueClient
from servers import backend_url

STAGES = (1_000, 10_000, 100_000)


def wait_empty(client: KueClient, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Until the queue holds no job (the worker has run everything)."""
    deadline = time.monotonic() + timeout
    while client.queue.stats().total:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue did not empty within {timeout} s")
        time.sleep(0.1)
    time.sleep(0.2)  # the last job's delete is in; let the worker settle back into reserve


def run(bench: Bench) -> None:
    """The memory table."""
    stages = tuple(bench.count(s) for s in STAGES)
    table = Table("Worker memory: RSS of kue-worker (1 process) after N no-op jobs (MiB)",
                  ["backend", *(f"after {s:,}" for s in stages), "growth last two"])
    template = bodies(1000)
    for name in ("sqlite", "redis"):
        bench.log(f"rss: {name}")
        with backend_url(name) as url:
            queue = f"rss-{uuid.uuid4().hex[:8]}"
            client = KueClient(url, queue)
            proc = subprocess.Popen(kue_worker_args(url, queue), env=bench_env(), cwd=BENCH_DIR,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rss: list[float] = []
            done = 0
            try:
                for stage in stages:
                    while done < stage:
                        step = min(len(template), stage - done)
                        client.put_many(template[:step], 1000)
                        done += step
                    wait_empty(client, proc)
                    rss.append(psutil.Process(proc.pid).memory_info().rss / 2**20)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                client.close()
        table.add(name, *(f"{r:.1f}" for r in rss), f"{rss[-1] - rss[-2]:+.1f}")
    table.notes.append("the queue is fed while the worker runs; RSS is read once it is empty")
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
