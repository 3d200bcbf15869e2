"""The jobs kue's benchmark workers run (``kue-worker --import bench_jobs``).

- ``noop``: does nothing; the worker's own cost per job.
- ``answer``: does nothing but return a small value, which the job's record keeps.
- ``incr``: one INCR on a Redis key, the job every peer library runs in the peer comparison
  (``BENCH_REDIS_URL``, key ``BENCH_COUNTER``).
- ``stamp``: appends ``token time.time()`` to the file ``BENCH_STAMPS`` names: when the job
  started, for put -> start latency.
"""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

import kue

#: Redis key the ``incr`` job of every library increments.
COUNTER = "bench:counter"


@kue.job
def noop(n: int) -> None:
    """Do nothing."""


@kue.job
def answer(n: int) -> dict[str, int]:
    """Return a small JSON value (the job's result, kept in its record)."""
    return {"n": n}


@cache
def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def bump() -> None:
    """The peers' shared no-op job: one INCR on :data:`COUNTER`."""
    _redis().incr(os.environ.get("BENCH_COUNTER", COUNTER))


@kue.job
def incr() -> None:
    """One INCR on the benchmark's counter key."""
    bump()


@kue.job
def stamp(token: str) -> None:
    """Record when this job started, for the latency table."""
    now = time.time()
    with open(os.environ["BENCH_STAMPS"], "a") as f:
        f.write(f"{token} {now!r}\n")
