"""What the SQLite backend promises beyond the contract: index use, wake-up, idle cost."""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import kue
from kue.backends.sqlite import SQLiteBackend, _take_sql, path_from_url

WAITER = textwrap.dedent(
    """
    import sys, time, kue
    q = kue.connect(sys.argv[1], queue="wake")
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        cpu = time.process_time()
        job = q.reserve(timeout=float(sys.argv[3]))
        woke = time.time()
        cpu = time.process_time() - cpu
        if job is None:
            print(f"none {cpu:.6f}", flush=True)
        else:
            print(f"job {job.body.decode()} {woke:.6f} {cpu:.6f}", flush=True)
            job.delete()
    """
)


def _waiter(url: str, rounds: int, timeout: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITER, url, str(rounds), str(timeout)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_urls_name_relative_and_absolute_files() -> None:
    assert path_from_url("sqlite:///kue.db") == Path("kue.db")
    assert path_from_url("sqlite:////var/lib/kue.db") == Path("/var/lib/kue.db")


def test_reserve_uses_the_ready_index_without_scanning_or_sorting(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "plan.db")
    conn = backend._conn()
    for n in (1, 3):
        plan = conn.execute(
            f"EXPLAIN QUERY PLAN {_take_sql(n)}", (0.0, *[f"q{i}" for i in range(n)])
        ).fetchall()
        details = " | ".join(row[-1] for row in plan)
        assert details.count("USING INDEX kue_jobs_ready (queue=?)") == n, details
        assert "SCAN kue_jobs" not in details, details
        # One sort at most, and only of the n per-queue candidates.
        assert details.count("TEMP B-TREE") == (0 if n == 1 else 1), details


def test_jobs_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/durable.db"
    q = kue.connect(url, queue="keep")
    q.put(b"kept", priority=3)
    q.close()
    out = subprocess.run(
        [sys.executable, "-c", f"import kue; j = kue.connect({url!r}, queue='keep').reserve(0); "
         "print(j.body, j.priority)"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.stdout.strip() == "b'kept' 3", out.stderr


def test_a_put_from_another_process_wakes_a_blocked_reserve_within_50_ms(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/wake.db"
    rounds = 7
    waiter = _waiter(url, rounds, 30)
    q = kue.connect(url, queue="wake")
    latencies = []
    assert waiter.stdout is not None
    for i in range(rounds):
        time.sleep(0.05)  # let the waiter block in reserve again before the next put
        put_at = time.time()
        q.put(str(i))
        line = waiter.stdout.readline().split()
        assert line[:2] == ["job", str(i)], line
        latencies.append(float(line[2]) - put_at)
    waiter.wait(timeout=10)
    assert statistics.median(latencies) < 0.050, latencies


def test_a_blocked_reserve_does_not_spin_a_core(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/idle.db"
    waiter = _waiter(url, 1, 2.0)
    assert waiter.stdout is not None
    kind, cpu = waiter.stdout.readline().split()
    waiter.wait(timeout=10)
    assert kind == "none"
    assert float(cpu) < 0.2, f"idle reserve used {float(cpu):.3f} s of CPU in 2 s"


def test_a_file_from_before_job_records_gets_its_record_column(tmp_path: Path) -> None:
    """Opening a database an older kue wrote adds the column; its jobs are kept and run."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE kue_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, state INTEGER NOT NULL,
            priority INTEGER NOT NULL, due REAL NOT NULL DEFAULT 0, ttr REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL);
        INSERT INTO kue_jobs (queue, state, priority, due, ttr, body)
            VALUES ('old', 0, 5, 0, 60, CAST('{"job": "x", "enqueued_at": 1.5}' AS BLOB));
    """)
    conn.commit()
    conn.close()
    q = kue.connect(f"sqlite:///{path}", queue="old")
    job = q.reserve(timeout=0)
    assert job is not None and job.priority == 5
    q.backend.complete(job.reservation, {"state": "done", "result": 7}, 60)  # type: ignore[attr-defined]
    status = q.status(job.id)
    assert status is not None and status.state is kue.RecordState.DONE
    assert (status.result, status.name, status.enqueued_at) == (7, "x", 1.5)
