"""Jobs for the fault tests; each logs its start and end to $KUE_TEST_LEDGER.

Lines are ``start|end KEY ATTEMPT PID MONOTONIC``; O_APPEND writes of one line are atomic.
"""

from __future__ import annotations

import os
import signal
import time

import kue


def _log(event: str, key: str) -> None:
    job = kue.current_job()
    attempt = job.attempts if job is not None else 0
    line = f"{event} {key} {attempt} {os.getpid()} {time.monotonic():.6f}\n"
    fd = os.open(os.environ["KUE_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@kue.job(name="faults.work", max_attempts=5, ttr=5, backoff=0.05)
def work(key: str, seconds: float = 0.0) -> None:
    _log("start", key)
    if seconds:
        time.sleep(seconds)
    _log("end", key)


@kue.job(name="faults.exit", max_attempts=3, ttr=5, backoff=0.05)
def exit_process(key: str) -> None:
    _log("start", key)
    os._exit(1)


@kue.job(name="faults.raise", max_attempts=3, ttr=5, backoff=0.05)
def always_raise(key: str) -> None:
    _log("start", key)
    raise RuntimeError("raising on purpose")


@kue.job(name="faults.segv", max_attempts=3, ttr=5, backoff=0.05)
def segfault(key: str) -> None:
    _log("start", key)
    os.kill(os.getpid(), signal.SIGSEGV)


@kue.job(name="faults.hang_once", max_attempts=3, ttr=2, backoff=0.05, time_limit=2)
def hang_first_attempt(key: str) -> None:
    _log("start", key)
    job = kue.current_job()
    if job is not None and job.attempts == 1:
        time.sleep(60)
    _log("end", key)


@kue.job(name="faults.short_ttr", max_attempts=3, ttr=2, backoff=0.05)
def short_ttr(key: str, seconds: float) -> None:
    _log("start", key)
    time.sleep(seconds)
    _log("end", key)


@kue.job(name="faults.deaf", max_attempts=1, ttr=5, time_limit=1)
def deaf_to_alarms(key: str) -> None:
    """Blocks SIGALRM, as a C extension stuck in a loop would ignore it, then hangs."""
    _log("start", key)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)
    _log("end", key)
