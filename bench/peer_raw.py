"""The floor row of the peer comparison: the least a one-thread worker on Redis can do per job.

No library: raw redis-py ``Redis.evalsha`` on the bench's raw scripts (``bench_redis``), one
job = reserve it and delete the one before in one script call (as kue's worker does), decode
its JSON body, run the same job (``bench_jobs.bump``, one INCR). No retries, no hooks, no
attempt counts, no ttr: what is left is two round trips and the client library's own time per
job, so a one-thread worker of any library is at most this fast on the same machine.

``python -c "import peer_raw; peer_raw.serve()"`` drains the queue and exits when it is empty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import redis
from bench_jobs import bump
from bench_redis import RAW_DELETE_RESERVE, RAW_PUT, RAW_RESERVE

#: The raw queue's keys: ready set, bodies, lease set.
KEYS = ("peer-raw:ready", "peer-raw:body", "peer-raw:lease")
#: A body the size and shape of kue's envelope of the same job.
BODY = json.dumps({"kue": 1, "job": "bench_jobs.incr", "args": [], "kwargs": {},
                   "id": "0" * 32}).encode()


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def enqueue() -> Callable[[], object]:
    """One EVALSHA of the raw put script per call."""
    client = _client()
    sha = client.script_load(RAW_PUT)
    seq = 0

    def put() -> object:
        nonlocal seq
        seq += 1
        return client.evalsha(sha, 2, KEYS[0], KEYS[1], seq, f"{seq:032d}", BODY)

    return put


def serve() -> None:
    """Run every queued job, one script call and one job per loop; return when none is left."""
    client = _client()
    evalsha = client.evalsha
    reserve = client.script_load(RAW_RESERVE)
    fused = client.script_load(RAW_DELETE_RESERVE)
    job: Any = evalsha(reserve, 3, *KEYS, 60)
    while job is not None:
        json.loads(job[1])
        bump()
        done = job[0]
        job = evalsha(fused, 3, *KEYS, 60, done)
    client.close()
