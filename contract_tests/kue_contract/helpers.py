"""Small helpers the contract tests share."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import kue

__all__ = ["drain", "wait_for", "whole"]

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, interval: float = 0.02) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout:g} s: {probe}")
        time.sleep(interval)


def whole(seconds: float, caps: kue.Capabilities) -> float:
    """The time a backend really waits for ``seconds`` (rounded up where it counts whole s)."""
    return float(math.ceil(seconds)) if caps.whole_seconds else seconds


def drain(queue: kue.Queue) -> list[bytes]:
    """Reserve and delete every ready job, returning the bodies in the order they came."""
    bodies = []
    while (job := queue.reserve(timeout=0)) is not None:
        bodies.append(job.body)
        job.delete()
    return bodies
