"""kue's beanstalk backend against raw greenstalk on a local beanstalkd.

Run: ``uv run python bench/bench_beanstalk.py [--jobs N] [--runs R]``. It starts its own
beanstalkd on a free 127.0.0.1 port and prints jobs per second (median of the runs) for single
puts, batches of 100, and a reserve+delete drain, with kue's rate over greenstalk's.

greenstalk has no pipelining, so its "batch of 100" is 100 single puts; kue's is one put_many
(one round trip). kue's drain pays one round trip more per job than greenstalk's: a stats-job
after each reserve, for the priority, ttr and attempts the RESERVED reply does not carry.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

import greenstalk

import kue
from kue_beanstalk.server import LocalBeanstalkd

BATCH = 100


def body(i: int) -> bytes:
    """A JSON envelope of about 110 bytes, like the ones kue's workers carry."""
    data = {"job": "videos.process", "args": [i], "kwargs": {"size": "720p"},
            "attempt": 0, "enqueued_at": 1732400000.0 + i, "id": uuid.uuid4().hex[:12]}
    return json.dumps(data, separators=(",", ":")).encode()


def timed(fn: Callable[[], int]) -> float:
    """Jobs per second of one run of ``fn``, which returns how many jobs it moved."""
    started = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - started)


def kue_runs(url: str, bodies: list[bytes]) -> dict[str, float]:
    queue = kue.connect(url, queue=f"bench-{uuid.uuid4().hex[:8]}")

    def put() -> int:
        for b in bodies:
            queue.put(b)
        return len(bodies)

    def put_many() -> int:
        for i in range(0, len(bodies), BATCH):
            queue.put_many([kue.PutItem(b) for b in bodies[i:i + BATCH]])
        return len(bodies)

    def drain() -> int:
        n = 0
        while (job := queue.reserve(timeout=0)) is not None:
            job.delete()
            n += 1
        return n

    rates = {"put": timed(put), "put_many": timed(put_many)}
    rates["drain"] = timed(drain)  # drains the 2 * len(bodies) jobs put above
    queue.close()
    return rates


def raw_runs(port: int, bodies: list[bytes]) -> dict[str, float]:
    tube = f"bench-{uuid.uuid4().hex[:8]}"
    with greenstalk.Client(("127.0.0.1", port), encoding=None, use=tube, watch=tube) as client:

        def put() -> int:
            for b in bodies:
                client.put(b, priority=2**31, ttr=60)
            return len(bodies)

        def drain() -> int:
            n = 0
            while True:
                try:
                    job = client.reserve(timeout=0)
                except greenstalk.TimedOutError:
                    return n
                client.delete(job)
                n += 1

        # No pipelining in greenstalk: a batch is as many single puts.
        rates = {"put": timed(put), "put_many": timed(put)}
        rates["drain"] = timed(drain)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per operation and run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is shown")
    args = parser.parse_args()
    bodies = [body(i) for i in range(args.jobs)]
    size = statistics.mean(len(b) for b in bodies)
    results: dict[str, dict[str, list[float]]] = {"kue": {}, "greenstalk": {}}
    with LocalBeanstalkd() as server:
        for _ in range(args.runs):
            for name, rates in (("kue", kue_runs(server.url, bodies)),
                                ("greenstalk", raw_runs(server.port, bodies))):
                for op, rate in rates.items():
                    results[name].setdefault(op, []).append(rate)
    print(f"beanstalkd on 127.0.0.1, {args.jobs} jobs of {size:.0f} bytes, "
          f"median of {args.runs} runs (jobs/s)")
    print(f"{'operation':<28}{'kue':>12}{'greenstalk':>12}{'kue/raw':>10}")
    labels = {"put": "put (single)", "put_many": f"put_many (batches of {BATCH})",
              "drain": "reserve+delete drain"}
    for op, label in labels.items():
        k = statistics.median(results["kue"][op])
        g = statistics.median(results["greenstalk"][op])
        print(f"{label:<28}{k:>12,.0f}{g:>12,.0f}{k / g:>9.2f}x")


if __name__ == "__main__":
    main()
