"""What the SQLite backend promises beyond the contract: index use, wake-up, idle cost."""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import kue
from kue.backends import sqlite_clock
from kue.backends.sqlite import MAX_COMPOUND, SQLiteBackend, _take_sql
from kue.backends.sqlite_clock import FileClock, boot_id
from kue.backends.sqlite_options import SQLITE_MAX_LENGTH, path_from_url
from kue.backends.sqlite_records import PURGE_BATCH
from kue.records import DoneRecord
from kue.spi import Ack, PutItem

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
    assert path_from_url("sqlite:kue.db") == Path("kue.db")


def test_a_url_that_names_no_file_says_how_to_write_one() -> None:
    with pytest.raises(kue.ConfigError, match=r"names no file; .* or sqlite:////var/lib/"):
        path_from_url("sqlite://")


def test_synchronous_full_makes_sqlite_sync_every_commit(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "full.db", synchronous="full")
    assert backend._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    backend.close()
    with pytest.raises(kue.ConfigError, match="synchronous must be 'normal' or 'full'"):
        SQLiteBackend(tmp_path / "full.db", synchronous="extra")


@pytest.mark.parametrize("max_body", [1, SQLITE_MAX_LENGTH])
def test_max_body_takes_each_end_of_its_range(tmp_path: Path, max_body: int) -> None:
    backend = SQLiteBackend(tmp_path / "limit.db", max_body=max_body)
    assert backend.capabilities.max_body == max_body
    backend.close()


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


#: The jobs table as kue wrote it once records had a column, before its indexes changed.
RECORDS_ERA_TABLE = """
    CREATE TABLE kue_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, state INTEGER NOT NULL,
        priority INTEGER NOT NULL, due REAL NOT NULL DEFAULT 0, ttr REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, body BLOB NOT NULL, record BLOB);
"""


def test_a_file_from_before_job_records_gets_its_record_column(tmp_path: Path) -> None:
    """Opening a database an older kue wrote adds the column; its jobs are kept and run."""
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
    # As kue's worker does: the name and enqueue time in the fields (the body is opaque).
    fields = {"state": "done", "result": 7, "name": "x", "enqueued_at": 1.5}
    q.backend.complete(job.reservation, fields, 60)  # type: ignore[attr-defined]
    status = q.status(job.id)
    assert status is not None and status.state is kue.RecordState.DONE
    assert (status.result, status.name, status.enqueued_at) == (7, "x", 1.5)


def _plans(backend: SQLiteBackend, act: Callable[[], object]) -> dict[str, str]:
    """Each distinct statement ``act`` ran on this thread's connection, with its query plan."""
    conn = backend._conn()
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        act()
    finally:
        conn.set_trace_callback(None)
    return {
        sql: " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in ran if not sql.startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "INSERT"))
    }


def test_every_query_runs_on_an_index(tmp_path: Path) -> None:
    """Peek, stats, kick, listing, promotion and purge each search an index, never the table.

    ``kue_jobs_waiting`` is partial (delayed, reserved and buried rows), so each query meant for
    it repeats its WHERE; a query that forgot would scan the whole table, done records included.
    The purge of expired records runs on ``kue_jobs_done``.
    """
    backend = SQLiteBackend(tmp_path / "plans.db")
    backend.put("q", b"ready", 0, 0, 60)
    backend.put("q", b"delayed", 0, 60, 60)
    backend.put("q", b"held", 0, 0, 60)
    backend.put("q", b"done", 0, 0, 60)
    buried = backend.reserve(["q"], 0)
    assert buried is not None
    backend.bury(buried, None)
    done = backend.reserve(["q"], 0)
    assert done is not None
    backend.complete(done, {"state": "done", "result": 1}, 60)

    def admin() -> None:
        for state in (kue.JobState.READY, kue.JobState.DELAYED, kue.JobState.BURIED):
            backend.peek("q", state)
        assert backend.stats("q") == kue.QueueStats(ready=1, delayed=1, reserved=0, buried=1)
        assert backend.list_queues() == ["q"]
        backend.buried("q", 10, 0)
        backend._purge_expired(backend._conn())
        assert backend.read_record("q", done.id) is not None
        backend._next_due(["q"])
        assert backend.kick("q", 1) == 1

    plans = _plans(backend, admin)
    plans.update(_plans(backend, lambda: backend.reserve(["q"], 0)))
    assert len(plans) >= 10, plans
    for sql, plan in plans.items():
        assert "SCAN kue_jobs" not in plan, (sql, plan)
    due_queries = [p for s, p in plans.items() if "state != 0 AND state != 4" in s]
    assert due_queries and all("kue_jobs_waiting" in p for p in due_queries), plans
    purges = [p for s, p in plans.items() if s.startswith("DELETE") and "state = 4" in s]
    assert purges and all("kue_jobs_done" in p for p in purges), plans


def test_a_file_from_before_the_due_index_is_brought_up_to_date(tmp_path: Path) -> None:
    """The old full index goes; done rows written with a positive expiry keep their record."""
    path = tmp_path / "timed.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(RECORDS_ERA_TABLE + """
        CREATE INDEX kue_jobs_timed ON kue_jobs (queue, state, due);
    """)
    conn.execute(
        "INSERT INTO kue_jobs (queue, state, priority, due, ttr, attempts, body, record) "
        "VALUES ('old', 4, 2, ?, 60, 1, CAST('{\"job\": \"x\", \"enqueued_at\": 1.5}' AS BLOB), "
        "'{\"result\": 7}')", (time.time() + 3600,))
    conn.commit()
    conn.close()
    q = kue.connect(f"sqlite:///{path}", queue="old")
    names = {row[0] for row in q.backend._conn().execute(  # type: ignore[attr-defined]
        "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not names & {"kue_jobs_timed", "kue_jobs_due"}
    assert {"kue_jobs_waiting", "kue_jobs_done"} <= names
    status = q.status("1")
    assert status is not None and status.state is kue.RecordState.DONE
    assert (status.result, status.name, status.enqueued_at, status.priority) == (7, "x", 1.5, 2)
    q.close()


def test_a_file_from_before_the_done_index_is_brought_up_to_date(tmp_path: Path) -> None:
    """Its ``kue_jobs_due`` held done rows too: it goes; every job and record is kept.

    The file is made by the schema of that kue, with a job in each state.
    """
    path = tmp_path / "due.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(RECORDS_ERA_TABLE + """
        CREATE INDEX kue_jobs_ready ON kue_jobs (queue, priority, id) WHERE state = 0;
        CREATE INDEX kue_jobs_due ON kue_jobs (queue, state, due) WHERE state != 0;
    """)
    conn.executemany(
        "INSERT INTO kue_jobs (queue, state, priority, due, ttr, attempts, body) "
        "VALUES ('old', ?, 0, ?, 60, ?, CAST(? AS BLOB))",
        [(0, 0, 0, "ready"), (1, time.time() + 3600, 0, "delayed"), (3, 1, 1, "buried"),
         (4, -(time.time() + 3600), 1, '{"name": "x", "result": 7}'),
         (4, -(time.time() - 1), 1, '{"name": "x", "result": 8}')])
    conn.commit()
    conn.close()
    backend = SQLiteBackend(path)
    names = {row[0] for row in backend._conn().execute(
        "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "kue_jobs_due" not in names and {"kue_jobs_waiting", "kue_jobs_done"} <= names
    assert backend.stats("old") == kue.QueueStats(ready=1, delayed=1, buried=1)
    assert backend.peek("old", kue.JobState.BURIED) is not None
    kept = backend.read_record("old", "4")
    assert kept is not None and (kept["state"], kept["result"]) == ("done", 7)
    assert backend.read_record("old", "5") is None  # expired before the upgrade
    backend._purge_expired(backend._conn())
    left = backend._conn().execute("SELECT id FROM kue_jobs WHERE state = 4").fetchall()
    assert left == [(4,)]
    backend.close()
    # An older kue that opens the file again recreates its index; the next open drops it.
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX kue_jobs_due ON kue_jobs (queue, state, due) WHERE state != 0")
    conn.commit()
    conn.close()
    again = SQLiteBackend(path)
    assert again._conn().execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'kue_jobs_due'").fetchone() is None
    assert again.stats("old") == kue.QueueStats(ready=1, delayed=1, buried=1)
    again.close()


def test_a_file_whose_done_rows_hold_record_text_keeps_them_and_adds_the_columns(
    tmp_path: Path,
) -> None:
    """Done rows of the kue before the record's columns hold the record as JSON in ``body``.

    Opening the file adds the columns; the old record reads as before, and a job finished
    now has its record in the columns, both read the same way.
    """
    path = tmp_path / "text.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(RECORDS_ERA_TABLE)
    conn.execute(
        "INSERT INTO kue_jobs (queue, state, priority, due, ttr, attempts, body) "
        "VALUES ('q', 4, 3, ?, 60, 1, CAST(? AS BLOB))",
        (-(time.time() + 3600), '{"finished_at": 2.5, "name": "old.job", "result": [1]}'))
    conn.commit()
    conn.close()
    backend = SQLiteBackend(path)
    try:
        columns = {row[1] for row in backend._conn().execute("PRAGMA table_info(kue_jobs)")}
        assert {"name", "enqueued_at", "finished_at", "started_at"} <= columns
        assert backend.read_record("q", "1") == {"state": "done", "attempts": 1, "priority": 3,
                                                 "finished_at": 2.5, "name": "old.job",
                                                 "result": [1]}
        backend.put("q", b'{"job": "new.job"}', 0, 0, 60)
        job = backend.reserve(["q"], 0)
        assert job is not None
        backend.complete(job, DoneRecord(1, 0, 5_000_000, 4_000_000, "new.job", 3.25, '"ok"'),
                         60)
        assert backend.read_record("q", job.id) == {
            "state": "done", "attempts": 1, "priority": 0, "finished_at": 5.0,
            "started_at": 4.0, "name": "new.job", "enqueued_at": 3.25, "result": "ok"}
    finally:
        backend.close()


@pytest.mark.parametrize("batched", [True, False], ids=["settle_many", "complete"])
def test_expired_records_of_a_queue_no_one_works_are_purged(tmp_path: Path,
                                                            batched: bool) -> None:
    """The purge that finishing jobs runs takes expired records of every queue."""
    backend = SQLiteBackend(tmp_path / "idle.db")
    backend.put("idle", b"{}", 0, 0, 60)
    job = backend.reserve(["idle"], 0)
    assert job is not None
    backend.complete(job, {"state": "done", "result": 1}, 0.01)
    time.sleep(0.05)
    backend.put_many("busy", [PutItem(b"{}") for _ in range(PURGE_BATCH)])
    held = backend.reserve_many(["busy"], PURGE_BATCH, 0)
    if batched:
        backend.settle_many([Ack(j, {"state": "done"}, 60) for j in held], (), ["busy"], 0, 0)
    else:
        for j in held:
            backend.complete(j, {"state": "done"}, 60)
    assert backend._conn().execute(
        "SELECT COUNT(*) FROM kue_jobs WHERE queue = 'idle'").fetchone() == (0,)
    assert backend.read_record("busy", held[0].id) is not None


def test_expired_done_rows_are_purged_and_live_ones_kept(tmp_path: Path) -> None:
    """A done row keeps minus its expiry in ``due``; the purge takes the expired ones only."""
    backend = SQLiteBackend(tmp_path / "purge.db")
    for ttl in (0.05, 3600.0):
        backend.put("q", b"{}", 0, 0, 60)
        job = backend.reserve(["q"], 0)
        assert job is not None
        backend.complete(job, {"state": "done", "result": ttl}, ttl)
    time.sleep(0.1)
    backend._purge_expired(backend._conn())
    left = backend._conn().execute("SELECT id FROM kue_jobs WHERE state = 4").fetchall()
    assert left == [(2,)]
    assert backend.read_record("q", "1") is None
    kept = backend.read_record("q", "2")
    assert kept is not None and kept["result"] == 3600.0 and kept["state"] == "done"


def test_reserve_from_no_queue_is_a_clear_error(tmp_path: Path) -> None:
    q = kue.connect(f"sqlite:///{tmp_path}/none.db", queue="a")
    with pytest.raises(ValueError, match="at least one queue"):
        q.reserve_from([], timeout=0)


def test_reserve_over_more_queues_than_one_compound_statement_takes(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "many.db")
    names = [f"q{i}" for i in range(MAX_COMPOUND + 100)]
    backend.put(names[-1], b"last queue, urgent", 1, 0, 60)
    backend.put(names[3], b"early queue, later", 5, 0, 60)
    got = [backend.reserve(names, 0) for _ in range(3)]
    assert [None if job is None else job.body for job in got] == [
        b"last queue, urgent", b"early queue, later", None]
    started = time.monotonic()
    assert backend.reserve(names, 0.2) is None
    assert time.monotonic() - started >= 0.19


def test_kick_with_a_count_over_sqlite_integers_moves_what_there_is(tmp_path: Path) -> None:
    q = kue.connect(f"sqlite:///{tmp_path}/kick.db", queue="k")
    q.put(b"buried")
    job = q.reserve(timeout=0)
    assert job is not None
    job.bury()
    assert q.kick(2**64) == 1
    q.put(b"delayed", delay=600)
    assert q.kick(2**64) == 1


@pytest.mark.parametrize("max_body", [0, -1])
def test_a_max_body_under_one_byte_is_refused(tmp_path: Path, max_body: int) -> None:
    with pytest.raises(kue.ConfigError, match="max_body"):
        kue.connect(f"sqlite:///{tmp_path}/limit.db?max_body={max_body}")
    with pytest.raises(kue.ConfigError, match="max_body must be a whole number of bytes"):
        SQLiteBackend(tmp_path / "limit.db", max_body=max_body)


def test_a_max_body_of_true_is_refused(tmp_path: Path) -> None:
    with pytest.raises(kue.ConfigError, match="max_body"):
        SQLiteBackend(tmp_path / "limit.db", max_body=True)


@pytest.mark.skipif(boot_id() is None, reason="the file's clock is the wall clock without a "
                    "boot id (not Linux): a step moves every due time, as documented")
def test_a_forward_step_of_the_wall_clock_neither_ends_leases_nor_brings_delays_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path}/step.db"
    worker, other = kue.connect(url, queue="step"), kue.connect(url, queue="step")
    worker.put(b"running", ttr=60)
    worker.put(b"later", delay=600)
    job = worker.reserve(timeout=0)
    assert job is not None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # an hour's step forward
    late = kue.connect(url, queue="step")  # opened after the step: the same file clock
    for q in (other, late):
        assert q.reserve(timeout=0) is None
        assert q.stats() == kue.QueueStats(delayed=1, reserved=1)
    job.touch()
    job.delete()


@pytest.mark.skipif(boot_id() is None, reason="the file's clock is the wall clock without a "
                    "boot id (not Linux): a step moves every due time, as documented")
def test_a_unique_job_put_after_a_step_of_the_wall_clock_is_due_on_the_file_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = SQLiteBackend(tmp_path / "unique-step.db")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # an hour's step forward
    job_id, stored = backend.put_unique("step", b"x", 5, 600.0, 60.0, "key", 900.0, True)
    info = backend.job_info("step", job_id)
    assert stored and info is not None and info.due_in is not None
    assert 599 < info.due_in <= 600.0
    backend.close()


def test_the_file_clock_is_taken_again_after_a_reboot(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "boots.db", isolation_level=None)
    first = FileClock(conn, boot="boot-one")
    again = FileClock(conn, boot="boot-one")
    assert first.offset == again.offset
    if first.offset is None:
        return  # no boot-time clock here: the wall clock throughout
    after = FileClock(conn, boot="boot-two")
    assert after.offset is not None
    assert abs(after.now() - time.time()) < 1.0  # a new boot starts from the wall clock


def test_the_file_clock_carries_on_the_offset_its_boot_stored(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "carry.db", isolation_level=None)
    if FileClock(conn, boot="boot-one").offset is None:
        return  # no boot-time clock here: the wall clock throughout
    conn.execute("UPDATE kue_clock SET base = 12345.0")
    assert FileClock(conn, boot="boot-one").offset == 12345.0
    assert FileClock(conn, boot="boot-two").offset != 12345.0


def test_without_a_boot_id_the_file_clock_is_the_wall_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_clock, "_BOOT_ID_FILE", tmp_path / "no-such-file")
    assert boot_id() is None
    conn = sqlite3.connect(tmp_path / "wall.db", isolation_level=None)
    clock = FileClock(conn)
    assert clock.offset is None
    before = time.time()
    assert before <= clock.now() <= time.time()
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'kue_clock'").fetchone() \
        is None
