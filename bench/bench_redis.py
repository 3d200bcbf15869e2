"""kue's Redis backend against raw redis-py: put, put_many and reserve+delete rates.

Run: ``uv run python bench/bench_redis.py [--jobs N] [--runs R]``. Starts its own redis-server
on a free loopback port (nothing saved) and prints one table: jobs per second, the median of
R runs, and kue's rate as a share of the raw client's.

The raw baselines do the least a priority queue with leases must do, in Lua as well, so the
comparison is about kue's overhead, not about a different design:
- put: one EVALSHA per job (ZADD to a ready set, HSET of the body);
- put_many: the same script pipelined, 100 per round trip;
- drain: a reserve script (ZPOPMIN, HGET, ZADD to a lease set) then a delete script (ZREM,
  HDEL), two round trips per job, as kue's reserve + delete; kue's fused
  ``delete_and_reserve`` (one round trip per job) is compared with the same raw loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

import kue
from kue.backend import PutItem
from kue_redis.server import local_server

BATCH = 100

RAW_PUT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
RAW_RESERVE = """
local top = redis.call('ZPOPMIN', KEYS[1])
if #top == 0 then return nil end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], t[1] + ARGV[1], top[1])
return {top[1], redis.call('HGET', KEYS[2], top[1])}
"""
RAW_DELETE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""
RAW_KEYS = ["raw:{q}:ready", "raw:{q}:body", "raw:{q}:lease"]


def body() -> bytes:
    """A job envelope of about 110 bytes, like a small real job."""
    return json.dumps(
        {"job": "send_welcome_email", "args": ["someone.new@example.com"], "kwargs": {},
         "attempt": 0, "id": uuid.uuid4().hex[:12]},
        separators=(",", ":"),
    ).encode()


class Raw:
    """The raw redis-py baselines."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.put_sha = client.script_load(RAW_PUT)
        self.reserve_sha = client.script_load(RAW_RESERVE)
        self.delete_sha = client.script_load(RAW_DELETE)

    def put(self, bodies: list[bytes]) -> None:
        for i, b in enumerate(bodies):
            self.client.evalsha(self.put_sha, 2, RAW_KEYS[0], RAW_KEYS[1], i, uuid.uuid4().hex, b)

    def put_many(self, bodies: list[bytes]) -> None:
        for start in range(0, len(bodies), BATCH):
            pipe = self.client.pipeline(transaction=False)
            for i, b in enumerate(bodies[start : start + BATCH]):
                pipe.evalsha(self.put_sha, 2, RAW_KEYS[0], RAW_KEYS[1], start + i,
                             uuid.uuid4().hex, b)
            pipe.execute()

    def drain(self, n: int) -> None:
        for _ in range(n):
            job: Any = self.client.evalsha(self.reserve_sha, 3, *RAW_KEYS, 60)
            self.client.evalsha(self.delete_sha, 2, RAW_KEYS[2], RAW_KEYS[1], job[0])


class Kue:
    """The same work through kue's Queue API."""

    def __init__(self, url: str) -> None:
        self.queue = kue.connect(url, queue="bench")

    def put(self, bodies: list[bytes]) -> None:
        for b in bodies:
            self.queue.put(b, priority=0, ttr=60)

    def put_many(self, bodies: list[bytes]) -> None:
        for start in range(0, len(bodies), BATCH):
            self.queue.put_many([PutItem(b, 0, 0, 60) for b in bodies[start : start + BATCH]])

    def drain(self, n: int) -> None:
        for _ in range(n):
            job = self.queue.reserve(timeout=0)
            assert job is not None
            job.delete()

    def drain_fused(self, n: int) -> None:
        """The worker's hot path: delete this job and reserve the next in one round trip."""
        backend: Any = self.queue.backend
        job = backend.reserve(["bench"], 0)
        for _ in range(n - 1):
            job = backend.delete_and_reserve(job, ["bench"], 0)
            assert job is not None
        backend.delete(job)


def timed(fn: Callable[[], None]) -> float:
    """Seconds ``fn`` took."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(client: redis.Redis, url: str, jobs: int) -> dict[str, tuple[float, float]]:
    """One run of every case on an empty server: (kue rate, raw rate) per case, in jobs/s."""
    bodies = [body() for _ in range(jobs)]
    rates: dict[str, tuple[float, float]] = {}
    client.flushall()
    k, r = Kue(url), Raw(client)
    kue_put, raw_put = timed(lambda: k.put(bodies)), timed(lambda: r.put(bodies))
    rates["put (single)"] = (jobs / kue_put, jobs / raw_put)
    kue_drain, raw_drain = timed(lambda: k.drain(jobs)), timed(lambda: r.drain(jobs))
    rates["reserve+delete"] = (jobs / kue_drain, jobs / raw_drain)
    k.put_many(bodies)
    kue_fused = timed(lambda: k.drain_fused(jobs))
    rates["delete_and_reserve"] = (jobs / kue_fused, jobs / raw_drain)
    many = jobs * 4
    many_bodies = bodies * 4
    kue_many = timed(lambda: k.put_many(many_bodies))
    raw_many = timed(lambda: r.put_many(many_bodies))
    rates[f"put_many ({BATCH}/batch)"] = (many / kue_many, many / raw_many)
    k.queue.close()
    return rates


def main() -> None:
    """Start a server, run the cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per case and run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is shown")
    args = parser.parse_args()

    with local_server() as url:
        client = redis.Redis.from_url(url)
        runs = [measure(client, url, args.jobs) for _ in range(args.runs)]
        client.close()

    size = len(body())
    print(f"kue redis backend vs raw redis-py, {args.jobs} jobs, {size}-byte bodies, "
          f"median of {args.runs} runs (jobs/s)")
    print(f"{'case':<24}{'kue':>12}{'raw':>12}{'kue/raw':>10}")
    for case in runs[0]:
        kue_rate = statistics.median(r[case][0] for r in runs)
        raw_rate = statistics.median(r[case][1] for r in runs)
        print(f"{case:<24}{kue_rate:>12,.0f}{raw_rate:>12,.0f}{kue_rate / raw_rate:>10.2f}")


if __name__ == "__main__":
    main()
