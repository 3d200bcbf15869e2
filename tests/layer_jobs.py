"""Jobs for the job-layer tests (long, async, over their limit); each logs to the ledger.

Lines are ``start|end KEY ATTEMPT PID MONOTONIC``, as :mod:`fault_jobs` writes them, so
:mod:`jepsen` reads them.
"""

from __future__ import annotations

import asyncio
import time

import kue

from fault_jobs import _log


@kue.job(name="layer.long", max_attempts=2)
def long(key: str, seconds: float) -> None:
    """Runs ``seconds``, far past its ttr: only the lease heartbeat keeps it from others."""
    _log("start", key)
    time.sleep(seconds)
    _log("end", key)


@kue.job(name="layer.async_long", max_attempts=2)
async def async_long(key: str, seconds: float) -> None:
    """The coroutine form of :func:`long`."""
    _log("start", key)
    await asyncio.sleep(seconds)
    _log("end", key)


@kue.job(name="layer.over_limit", max_attempts=2, time_limit=1, backoff=0.05)
def over_limit(key: str) -> None:
    """Would run 30 s; its limit is 1 s. Short sleeps, so a thread can be interrupted too."""
    _log("start", key)
    for _ in range(300):
        time.sleep(0.1)
    _log("end", key)


@kue.job(name="layer.async_over_limit", max_attempts=2, time_limit=1, backoff=0.05)
async def async_over_limit(key: str) -> None:
    """Would await 30 s; its limit is 1 s, so it is cancelled."""
    _log("start", key)
    await asyncio.sleep(30)
    _log("end", key)


@kue.job(name="layer.nap")
async def nap(key: str) -> None:
    """Awaits half a second: a thousand of these show how many one process runs at once."""
    _log("start", key)
    await asyncio.sleep(0.5)
    _log("end", key)
