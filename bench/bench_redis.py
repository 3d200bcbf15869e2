"""kue's Redis backend against raw redis-py on a throwaway redis-server.

Run: ``python bench/bench_redis.py [--runs R] [--quick]`` (or all benches: ``nox -s bench``).

The raw baselines do the least a priority queue with leases must do, in Lua as well, so the
comparison is about kue's overhead, not about a different design:

- put: one EVALSHA per job (ZADD to a ready set, HSET of the body);
- put_many: the same script pipelined, one pipeline per batch;
- reserve+delete: a reserve script (ZPOPMIN, HGET, ZADD to a lease set) then a delete script
  (ZREM, HDEL), two round trips per job, as kue's ``reserve`` + ``delete``;
- fused: kue's ``delete_and_reserve`` (one round trip per job, the worker's hot path) against
  a raw script doing the same in one call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis
from harness import Bench, fused_drain_table
from ops import KueClient, Spec, measure
from servers import backend_url

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
RAW_DELETE_RESERVE = """
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
local top = redis.call('ZPOPMIN', KEYS[1])
if #top == 0 then return nil end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], t[1] + ARGV[1], top[1])
return {top[1], redis.call('HGET', KEYS[2], top[1])}
"""


class RawRedis:
    """The raw redis-py baselines: one EVALSHA per job, pipelines for batches."""

    label = "redis-py EVALSHA"

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        q = uuid.uuid4().hex[:8]
        self.keys = [f"raw:{q}:ready", f"raw:{q}:body", f"raw:{q}:lease"]
        self.put_sha = self.client.script_load(RAW_PUT)
        self.reserve_sha = self.client.script_load(RAW_RESERVE)
        self.delete_sha = self.client.script_load(RAW_DELETE)
        self.fused_sha = self.client.script_load(RAW_DELETE_RESERVE)
        self.seq = 0

    def put(self, items: Sequence[bytes]) -> None:
        """One EVALSHA per job."""
        evalsha, sha, (ready, body, _) = self.client.evalsha, self.put_sha, self.keys
        for b in items:
            self.seq += 1
            evalsha(sha, 2, ready, body, self.seq, uuid.uuid4().hex, b)

    def put_many(self, items: Sequence[bytes], batch: int) -> None:
        """The put script, pipelined ``batch`` per round trip."""
        ready, body, _ = self.keys
        for start in range(0, len(items), batch):
            pipe = self.client.pipeline(transaction=False)
            for b in items[start:start + batch]:
                self.seq += 1
                pipe.evalsha(self.put_sha, 2, ready, body, self.seq, uuid.uuid4().hex, b)
            pipe.execute()

    def drain(self, n: int) -> None:
        """Reserve script, then delete script: two round trips per job."""
        evalsha = self.client.evalsha
        for _ in range(n):
            job: Any = evalsha(self.reserve_sha, 3, *self.keys, 60)
            evalsha(self.delete_sha, 2, self.keys[2], self.keys[1], job[0])

    def drain_fused(self, n: int) -> None:
        """One script per job that deletes the last job and reserves the next."""
        evalsha = self.client.evalsha
        job: Any = evalsha(self.reserve_sha, 3, *self.keys, 60)
        for _ in range(n - 1):
            job = evalsha(self.fused_sha, 3, *self.keys, 60, job[0])
        evalsha(self.delete_sha, 2, self.keys[2], self.keys[1], job[0])

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def fused_table(bench: Bench, url: str, n: int) -> tuple[float, float]:
    """kue's ``delete_and_reserve`` drain against the raw fused script; adds a table."""
    client = KueClient(url, f"bench-{uuid.uuid4().hex[:8]}")
    raw = RawRedis(url)
    try:
        return fused_drain_table(
            bench, "redis", "raw fused script", n,
            (lambda k: client.fill(k, 1000), client.drain_fused),
            (lambda k: raw.put_many([b"x" * 110] * k, 1000), raw.drain_fused))
    finally:
        client.close()
        raw.close()


def run(bench: Bench) -> None:
    """The redis table, the fused-call table and the redis targets."""
    with backend_url("redis") as url:
        raw = RawRedis(url)
        spec = Spec("redis", url, raw, ops=bench.count(5000), batch=BATCH,
                    workers=bench.count(20000), prefetch=(1, None))
        res = measure(bench, spec)
        raw.close()
        fused_table(bench, url, bench.count(5000))
    many = f"put_many ({BATCH}/batch)"
    for case, goal, what in (
        ("put (single)", 0.8, "raw single EVALSHA"),
        (many, 0.9, "raw pipelined EVALSHA"),
        ("worker, 1 process", 0.8, "raw Lua reserve+delete loop"),
    ):
        k = res.kue[case]
        r = res.raw["reserve+delete" if case.startswith("worker") else case]
        bench.target(f"redis {case} >= {goal}x {what}", f"{k / r:.2f}x ({k:,.0f} vs {r:,.0f})",
                     k / r >= goal)
    on, off = res.kue["worker, 1 process"], res.kue["worker, 1 process, prefetch off"]
    bench.target("redis worker 1 process: prefetch on >= 1.5x off", f"{on / off:.2f}x "
                 f"({on:,.0f} vs {off:,.0f})", on / off >= 1.5)
    bench.results["redis.worker"] = res.kue["worker, 1 process"]


if __name__ == "__main__":
    from harness import main

    main([run])
