"""Job records across processes: a kue-worker writes them, the application reads them.

On backends that keep records (sqlite, redis) and, through a ``results`` URL naming a SQLite
store, on those that keep none (beanstalk, sqs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import kue
from kue.records import RecordState

import record_jobs
from support import HERE


def _results_for(url: str, tmp_path: Path) -> str | None:
    """A SQLite results store for a backend that keeps no records."""
    name = url.split(":", 1)[0]
    return None if name in ("sqlite", "redis", "rediss") else \
        f"sqlite:///{tmp_path}/records.sqlite3"


def _worker(url: str, queue: str, results: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    extra = ["--results", results] if results else []
    return subprocess.Popen(
        [sys.executable, "-m", "kue.cli.worker", "--url", url, "-q", queue,
         "--import", "record_jobs", "--burst", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_worker_process_writes_what_the_application_reads(
    shared_backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _results_for(shared_backend_url, tmp_path)
    if results:
        monkeypatch.setenv("KUE_RESULTS", results)
    q = kue.connect(shared_backend_url, queue=f"r-{uuid.uuid4().hex[:12]}")
    assert q.records.store is not None
    ok = q.push(record_jobs.total.message([1, 2, 3]))
    bad = q.push(record_jobs.broken.message("no such customer"))
    assert ok is not None and bad is not None
    waiting = ok.status()
    assert waiting is not None and waiting.state is RecordState.READY
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(ok.result(timeout=60)))
    waiter.start()
    worker = _worker(shared_backend_url, q.name, results)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    waiter.join(60)
    assert got == [{"total": 6}]
    done = ok.status()
    assert done is not None and done.state is RecordState.DONE and done.attempts == 1
    failed = bad.status()
    assert failed is not None and failed.state is RecordState.BURIED, failed
    assert failed.error is not None and failed.error["type"] == "builtins.ValueError"
    assert failed.error["message"] == "no such customer"
    with pytest.raises(kue.JobFailed, match="no such customer"):
        bad.result(timeout=5)
    q.close()
