"""The job layer in one process: leases, hooks that raise, readable failures, start-up."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import kue
from kue.plugins import new_plugin_manager
from kue.status import Records
from kue.worker import Worker
from kue.worker.concurrent import ConcurrentWorker
from kue.worker.lease import LeaseKeeper

import jepsen
import layer_jobs
import record_jobs
import sample_jobs
from support import HERE, wait_until


def test_a_job_ten_times_its_ttr_runs_once_with_two_consumers_on_memory(ledger: Path) -> None:
    """FAULTS F20 on the memory backend: a sync and a coroutine job, each 10x its ttr."""
    q = kue.connect("memory://layer-long", queue="jobs")
    q.push(layer_jobs.long.message("sync", 10.0), ttr=1)
    q.push(layer_jobs.async_long.message("async", 10.0), ttr=1)
    pm = new_plugin_manager(load_entry_points=False)
    one = Worker(q.backend, ["jobs"], plugin_manager=pm, idle_timeout=0.2)
    many = ConcurrentWorker(q.backend, ["jobs"], 4, plugin_manager=pm)
    threads = [threading.Thread(target=one.run), threading.Thread(target=many.run)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: not jepsen.read(ledger, {"sync", "async"}).lost, 30)
    finally:
        one.stop()
        many.stop()
        for thread in threads:
            thread.join(10)
    verdict = jepsen.read(ledger, {"sync", "async"})
    assert sorted((e.key, e.event, e.attempt) for e in verdict.entries) == [
        ("async", "end", 1), ("async", "start", 1), ("sync", "end", 1), ("sync", "start", 1)]
    assert q.stats().total == 0
    assert one.stats.lost + many.stats.lost == 0


class Raising:
    """A plugin whose observation hooks raise on every call (FAULTS F23)."""

    @kue.hookimpl
    def kue_job_started(self, job: kue.Reservation, envelope: kue.Envelope) -> None:
        raise RuntimeError("started hook broken on purpose")

    @kue.hookimpl
    def kue_job_succeeded(self, job: kue.Reservation, envelope: kue.Envelope,
                          duration: float) -> None:
        raise RuntimeError("succeeded hook broken on purpose")


@pytest.mark.parametrize("kind", ["worker", "coroutines"])
def test_a_hook_that_raises_changes_no_outcome(
    kind: str, ledger: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = kue.connect(f"memory://layer-hooks-{kind}", queue="jobs")
    with q.batch():
        for i in range(1000):
            q.push(sample_jobs.add.message(i, 0))
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(Raising(), name="broken-metrics")
    worker: Worker | ConcurrentWorker
    if kind == "worker":
        worker = Worker(q.backend, ["jobs"], plugin_manager=pm)
    else:
        worker = ConcurrentWorker(q.backend, ["jobs"], 50, plugin_manager=pm)
    with caplog.at_level(logging.ERROR, logger="kue.plugins"):
        stats = worker.run(burst=True)
    assert (stats.succeeded, stats.retried, stats.failed, stats.buried) == (1000, 0, 0, 0)
    assert len(ledger.read_text().splitlines()) == 1000
    assert q.stats().total == 0
    broken = [r for r in caplog.records if "'broken-metrics' raised in" in r.getMessage()]
    assert len(broken) == 2000


def _run_worker(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run([sys.executable, "-m", "kue.cli.worker", "--url", url, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_failing_job_logs_its_traceback_and_is_buried_with_a_true_reason(
    sqlite_url: str, ledger: Path
) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    q.push(sample_jobs.always_fails.message("x"))
    q.put(b"\xff not json")
    q.put({"job": "nobody.registered.this", "args": []})
    # Three attempts and two poison bodies; retries wait out a backoff, so not --burst.
    done = _run_worker(sqlite_url, "--import", "sample_jobs", "-q", "jobs", "--max-jobs", "5",
                       "--log-format", "json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    failures = [d for d in lines if d.get("job") == "tests.always_fails" and "exception" in d]
    assert len(failures) == 3  # two retries and the burial, each with its traceback
    assert all("Traceback (most recent call last)" in d["exception"] and
               "RuntimeError: failing on purpose: x" in d["exception"] for d in failures)
    reasons = [d["message"].split(": ", 1)[1] for d in lines
               if d["message"].startswith("buried job")]
    assert sorted(reasons) == [
        "failed 3 times, last with RuntimeError: failing on purpose: x",
        "no job named 'nobody.registered.this' is registered in this worker (kue-worker "
        "--import the module that defines it)",
        "not a kue envelope: body is not JSON: 'utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte",
    ], reasons
    assert q.stats() == kue.QueueStats(buried=3)


def test_a_worker_with_no_jobs_refuses_to_start(sqlite_url: str) -> None:
    q = kue.connect(sqlite_url, queue="default")
    q.put({"job": "tests.add", "args": [1, 2]})
    done = _run_worker(sqlite_url, "--burst")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "kue-worker: no jobs are registered: name the modules that define them with --import "
        "MODULE (or `import` in kue.toml)")
    assert q.stats() == kue.QueueStats(ready=1)  # nothing buried


def test_start_up_names_the_jobs_and_queues_it_serves(sqlite_url: str) -> None:
    done = _run_worker(sqlite_url, "--import", "sample_jobs", "-q", "a", "-q", "b", "--burst")
    assert done.returncode == 0, done.stderr
    assert "queues a, b, jobs tests.add, tests.always_fails, tests.greet, tests.slow" in (
        done.stderr)


def test_the_heartbeat_renews_a_held_job_once_per_third_of_its_ttr() -> None:
    """The heartbeat's cost: 3 touches per ttr, so 180 / ttr round trips per job-minute."""
    q = kue.connect("memory://lease-cost", queue="jobs")
    q.put("x", ttr=3)
    reserved = q.reserve(timeout=0)
    assert reserved is not None
    keeper = LeaseKeeper(q.backend)
    held_at = time.monotonic()
    keeper.hold(reserved.reservation)
    wait_until(lambda: keeper.renewals == 3, 5)
    assert 2.9 <= time.monotonic() - held_at < 3.5  # at 1, 2 and 3 s: not sooner, not later
    assert keeper.drop(reserved.reservation)
    keeper.close()
    reserved.delete()  # still held: every renewal landed
    assert q.stats().total == 0


def test_done_records_expire_so_memory_stays_bounded() -> None:
    """20,000 jobs through with a 0.2 s retention leave about the last 0.2 s of records."""
    q = kue.connect("memory://records-bounded", queue="jobs")
    with q.batch():
        for i in range(20_000):
            q.push(record_jobs.total.message([i]))
    worker = Worker(q.backend, ["jobs"], result_ttl=0.2,
                    plugin_manager=new_plugin_manager(load_entry_points=False))
    started = time.monotonic()
    assert worker.run(burst=True).succeeded == 20_000
    rate = 20_000 / (time.monotonic() - started)
    table = q.backend._store.records  # type: ignore[attr-defined]
    expiries = [expires for _, expires in table._records.values()]
    print(f"{rate:.0f} jobs/s; {len(expiries)} records left of 20,000")
    # Each write drops what expired by then, so what is left was finished within 0.2 s of the
    # last write: a span of expiry times, not a rate, which a loaded machine would move.
    assert 0 < len(expiries) < 20_000
    assert max(expiries) - min(expiries) <= 0.2


def test_a_queue_can_keep_its_records_for_its_own_time(tmp_path: Path) -> None:
    """``[tool.kue.result_ttl]``: a job's own result_ttl, then its queue's, then the worker's."""
    (tmp_path / "kue.toml").write_text('[result_ttl]\nquick = 0\n')
    settings = kue.load_settings(cwd=tmp_path, env={})
    assert settings.result_ttls == {"quick": 0.0}
    kept = kue.connect("memory://records-per-queue", queue="kept")
    quick = kue.Queue(kept.backend, "quick")
    kept_id = kept.push(record_jobs.total.message([1]))
    quick_id = quick.push(record_jobs.total.message([2]))
    records = Records.of(kept.backend, ttls=settings.result_ttls)
    for name in ("kept", "quick"):
        Worker(kept.backend, [name], records=records,
               plugin_manager=new_plugin_manager(load_entry_points=False)).run(burst=True)
    assert kept_id is not None and quick_id is not None
    assert kept.result(kept_id, timeout=1) == {"total": 1}
    assert quick.status(quick_id) is None  # done, and its queue keeps no record
