"""The Celery side of the peer comparison: ``celery -A peer_celery worker -c 1 -P prefork``."""

from __future__ import annotations

import os

from bench_jobs import bump
from celery import Celery  # type: ignore[import-untyped]

app = Celery("peer_celery", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)


@app.task(name="peer_celery.incr")  # type: ignore[untyped-decorator, unused-ignore]
def incr() -> None:
    """One INCR on the benchmark's counter key."""
    bump()
