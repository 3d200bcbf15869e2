"""Helpers kue's own tests share: the tests directory, a poll with a deadline, a worker process.

A module of its own, not conftest.py: with ``--import-mode=importlib`` (one pytest run over
every test directory) a conftest is not importable by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["HERE", "wait_until", "worker_process"]

#: The tests directory: on sys.path (tests/conftest.py) and on a worker's PYTHONPATH.
HERE = Path(__file__).parent


def wait_until(probe: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``probe`` until it holds; fail the test after ``timeout`` seconds.

    The pause grows from 10 ms to 100 ms: a long wait on the test SQS server, which answers one
    request at a time, must not starve the workers it is waiting for. ``what`` names the
    awaited condition in the failure message.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not probe():
        assert time.monotonic() < deadline, f"{what or 'condition'}: not reached within {timeout} s"
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


def worker_process(url: str, *extra: str) -> subprocess.Popen[str]:
    """``kue-worker`` on queue ``jobs`` of ``url`` with the test jobs, output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "kue.cli.worker", "--url", url, "--import", "sample_jobs",
         "-q", "jobs", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
