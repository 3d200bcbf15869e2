"""Bench-local variants of kue's Redis hot paths, measured beside what kue does today.

Run: ``python bench/bench_redis_variants.py [--runs R] [--quick]``. Findings for the lead,
not kue code: nothing here changes core or the plugin.

- put_many as one EVALSHA per batch (``redis_put_batch.lua``: kue's own key layout and per-job
  effects, one INCRBY and one wake-up push per batch) against kue's pipeline of one put.lua
  per job and against the raw pipelined EVALSHA of the redis table.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import redis
from bench_redis import RawRedis
from harness import Bench, Table, bodies, fmt_rate, fmt_ratio, median, rate_of, timed
from ops import KueClient

BATCH = 100


def batch_script(client: redis.Redis) -> str:
    """Load kue's common.lua + the batch put variant; returns its SHA."""
    from importlib import resources

    common = resources.files("kue_redis").joinpath("lua", "common.lua").read_text("utf-8")
    body = (Path(__file__).with_name("redis_put_batch.lua")).read_text("utf-8")
    return str(client.script_load(f"{common}\n{body}"))


def run(bench: Bench) -> None:
    """The variants table."""
    from kue_redis.server import local_server

    n = bench.count(5000)
    with local_server() as url:
        client = KueClient(url, f"var-{uuid.uuid4().hex[:8]}")
        backend: Any = client.queue.backend
        keys = backend._keys(client.queue.name).put_keys
        sha = batch_script(backend.client)
        raw = RawRedis(url)
        items = bodies(n)

        def batched() -> None:
            for start in range(0, n, BATCH):
                args: list[Any] = []
                for b in items[start:start + BATCH]:
                    args += [uuid.uuid4().hex, b, 2**31, 0, math.ceil(60 * 1000)]
                backend.client.evalsha(sha, len(keys), *keys, *args)

        rates: dict[str, list[float]] = {"kue": [], "variant": [], "raw": []}
        for _ in range(bench.runs):
            rates["kue"].append(rate_of(n, timed(lambda: client.put_many(items, BATCH))))
            client.drain(n)
            rates["variant"].append(rate_of(n, timed(batched)))
            if client.queue.stats().ready != n:
                raise RuntimeError("the batch variant did not store every job")
            client.drain(n)
            rates["raw"].append(rate_of(n, timed(lambda: raw.put_many(items, BATCH))))
            raw.drain(n)
        raw.close()
        client.close()
    k, v, r = (median(rates[x]) for x in ("kue", "variant", "raw"))
    table = Table(f"redis put_many variants ({BATCH}/batch, jobs/s, median of {bench.runs})",
                  ["put_many as", "jobs/s", "vs raw pipelined EVALSHA"])
    table.add("kue today: pipeline of put.lua per job", fmt_rate(k), fmt_ratio(k, r))
    table.add("variant: one EVALSHA per batch", fmt_rate(v), fmt_ratio(v, r))
    table.add("raw: pipeline of a minimal put script", fmt_rate(r), "1.00x")
    table.notes.append("the variant keeps kue's key layout, idempotent ids, seq order, meta "
                       "and wake-up list; jobs it stores are reserved by kue's own reserve")
    bench.table(table)


if __name__ == "__main__":
    from harness import main

    main([run])
