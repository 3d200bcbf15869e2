"""Small helpers the contract tests share."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import kue

__all__ = ["EARLY", "SCHEDULING", "by", "drain", "wait_for", "whole"]

#: Seconds the suite allows, on top of a backend's ``timing_tolerance``, for the test machine
#: itself: threads and processes scheduled late on a loaded CI runner, a round trip or two.
SCHEDULING = 0.4
#: Seconds a timed event may be seen early: a round trip's worth of clock difference between
#: the moment the suite reads its clock and the moment the server starts counting.
EARLY = 0.005

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


def by(seconds: float, caps: kue.Capabilities) -> float:
    """The latest a timed event due in ``seconds`` may be seen: plus tolerance and scheduling."""
    return seconds + caps.timing_tolerance + SCHEDULING


def drain(queue: kue.Queue) -> list[bytes]:
    """Reserve and delete every ready job, returning the bodies in the order they came."""
    bodies = []
    while (job := queue.reserve(timeout=0)) is not None:
        bodies.append(job.body)
        job.delete()
    return bodies
