"""Consumer loops the concurrency tests run in threads and in separate processes."""

from __future__ import annotations

import time
from typing import Any

import kue

__all__ = ["consume_together", "consume_until_empty", "consume_url", "reserve_once"]


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


def consume_together(url: str, queue_name: str, start: Any, results: Any) -> None:
    """In a spawned process: connect, wait at ``start`` for the others, drain, report the ids.

    ``start`` is a multiprocessing Barrier shared by every consumer, so that none drains the
    queue before the others have even started (spawning a process takes a good share of a
    second on a loaded machine); ``results`` a multiprocessing Queue.
    """
    queue = kue.connect(url, queue=queue_name)
    try:
        queue.stats()  # connected: draining starts at once after the barrier
        start.wait(timeout=120)
        results.put(consume_until_empty(queue))
    finally:
        queue.close()


def reserve_once(url: str, queue_name: str, timeout: float, ready: Any, results: Any) -> None:
    """In a spawned process: say ready, block in one reserve, report (id, epoch time), delete.

    ``ready`` is a multiprocessing Event, ``results`` a multiprocessing Queue.
    """
    queue = kue.connect(url, queue=queue_name)
    try:
        queue.stats()  # connected: the reserve below starts at once
        ready.set()
        job = queue.reserve(timeout=timeout)
        results.put((None, time.time()) if job is None else (job.id, time.time()))
        if job is not None:
            job.delete()
    finally:
        queue.close()
