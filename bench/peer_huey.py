"""The Huey side of the peer comparison: ``huey_consumer peer_huey.huey -w 1`` (one thread)."""

from __future__ import annotations

import os

from bench_jobs import bump
from huey import RedisHuey  # type: ignore[import-untyped]

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"], results=False)


@huey.task()  # type: ignore[untyped-decorator, unused-ignore]
def incr() -> None:
    """One INCR on the benchmark's counter key."""
    bump()
