"""The decorator's push against ``queue.push`` on an open queue, on sqlite and redis.

Run: ``python bench/bench_push.py [--runs R] [--quick]``.

``fn.push(i)`` resolves the configured backend (here ``KUE_URL``) and pushes through the queue
it keeps open for the process; the baseline is ``queue.push(fn.message(i))`` on a queue opened
once with ``kue.connect``. The third column is what ``fn.push`` did before it kept its queue:
``kue.connect`` (configuration read from the files), push, ``close`` on every call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from bench_jobs import noop
from harness import Bench, Table, median, timed
from servers import backend_url

import kue
from kue.shared_queues import close_all

BACKENDS = ("sqlite", "redis")
GOAL = 1.2
#: Pushes per turn of a side.
CHUNK = 100


@contextmanager
def configured(url: str) -> Iterator[None]:
    """``url`` as the configured backend (``KUE_URL``) inside the block."""
    before = os.environ.get("KUE_URL")
    os.environ["KUE_URL"] = url
    try:
        yield
    finally:
        if before is None:
            del os.environ["KUE_URL"]
        else:
            os.environ["KUE_URL"] = before


def open_queue_push(queue: kue.Queue, n: int) -> None:
    """``queue.push(noop.message(i))`` on the open queue, ``n`` times."""
    push, message = queue.push, noop.message
    for i in range(n):
        push(message(i))


def fn_push(n: int) -> None:
    """``noop.push(i)``, ``n`` times."""
    push = noop.push
    for i in range(n):
        push(i)


def connect_per_push(n: int) -> None:
    """What ``fn.push`` did before: connect from configuration, push, close, per call."""
    for i in range(n):
        queue = kue.connect(queue=noop.job_class.queue)
        try:
            queue.push(noop.message(i))
        finally:
            queue.close()


def run(bench: Bench) -> None:
    """The push table and one target per backend."""
    n = bench.count(5000) // CHUNK * CHUNK
    n_old = max(20, n // 10)
    table = Table(
        f"fn.push vs queue.push on an open queue (ms per push, median of {bench.runs})",
        ["backend", "queue.push (open queue)", "fn.push", "fn.push / queue.push",
         "before: connect + push + close"],
    )
    for name in BACKENDS:
        with backend_url(name) as url, configured(url):
            queue = kue.connect(url, queue=noop.job_class.queue)
            noop.push(-1)  # open fn.push's queue before timing, as the baseline's is
            base: list[float] = []
            shared: list[float] = []
            old: list[float] = []
            sides = [partial(open_queue_push, queue, CHUNK), partial(fn_push, CHUNK)]
            for r in range(bench.runs):
                bench.log(f"push, {name}: run {r + 1} of {bench.runs}")
                # Chunks of each side in turn, first side alternating, so that a busy moment
                # of the (shared) machine hits both alike.
                spent = [0.0, 0.0]
                for c in range(n // CHUNK):
                    for side in (0, 1) if c % 2 == 0 else (1, 0):
                        spent[side] += timed(sides[side])
                base.append(spent[0] / n)
                shared.append(spent[1] / n)
                old.append(timed(partial(connect_per_push, n_old)) / n_old)
            queue.close()
            close_all()  # fn.push's queues, before their server stops
        b, s, o = median(base), median(shared), median(old)
        table.add(name, f"{b * 1000:.3f}", f"{s * 1000:.3f}", f"{s / b:.2f}x",
                  f"{o * 1000:.3f}")
        bench.target(f"{name} fn.push within {GOAL}x of queue.push on an open queue",
                     f"{s / b:.2f}x ({s * 1000:.3f} vs {b * 1000:.3f} ms)", s / b <= GOAL)
    table.notes.append(
        f"{n:,} pushes of the no-op job per side and run ({n_old:,} for connect + push + "
        "close, the old fn.push); both sides build the job with noop.message(i)"
    )
    table.notes.append(
        f"the sides take turns in chunks of {CHUNK} pushes; the backend is configured with "
        "KUE_URL; fn.push compares KUE_URL, KUE_BACKEND and the working directory on every "
        "call and looks at kue.toml / pyproject.toml again once a second, instead of reading "
        "the configuration on every call"
    )
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
