"""Consumer loops the concurrency tests run in threads and in separate processes."""

from __future__ import annotations

import time

import kue

__all__ = ["consume_until_empty", "consume_url"]


def consume_until_empty(queue: kue.Queue, idle: float = 1.0, limit: float = 120.0) -> list[str]:
    """Reserve and delete jobs until none came for ``idle`` seconds; returns the ids taken."""
    taken: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        job = queue.reserve(timeout=idle)
        if job is None:
            break
        taken.append(job.id)
        job.delete()
    return taken


def consume_url(url: str, queue_name: str) -> list[str]:
    """Open the queue in this process (for spawned consumers) and drain it."""
    queue = kue.connect(url, queue=queue_name)
    try:
        return consume_until_empty(queue)
    finally:
        queue.close()
