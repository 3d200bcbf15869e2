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


def wait_until(probe: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``probe`` every 10 ms until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(0.01)


def worker_process(url: str, *extra: str) -> subprocess.Popen[str]:
    """``kue-worker`` on queue ``jobs`` of ``url`` with the test jobs, output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(
        [sys.executable, "-m", "kue.cli.worker", "--url", url, "--import", "sample_jobs",
         "-q", "jobs", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
