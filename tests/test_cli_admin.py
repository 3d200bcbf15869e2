"""The ``kue`` admin command, run through its real entry point against SQLite files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import kue
from kue.cli import admin


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No KUE_* variables or config files of the developer's leak in."""
    for var in ("KUE_URL", "KUE_BACKEND", "KUE_QUEUES", "KUE_IMPORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = admin.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_prints_the_id_and_peek_shows_the_most_urgent_job(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--url", sqlite_url, "put", "emails", "later", "--priority", "9")
    assert code == 0
    code, out, _ = run(capsys, "put", "emails", "first", "--priority", "1", "--url", sqlite_url)
    assert code == 0
    urgent_id = out.strip()

    code, out, _ = run(capsys, "--url", sqlite_url, "peek", "emails")
    assert code == 0
    shown = dict(line.split(":", 1) for line in out.splitlines())
    assert {k: v.strip() for k, v in shown.items()} == {
        "id": urgent_id, "queue": "emails", "state": "ready", "priority": "1",
        "attempts": "0", "body": "first",
    }
    # peek reserves nothing: both jobs are still ready.
    assert kue.connect(sqlite_url, queue="emails").stats() == kue.QueueStats(ready=2)


def test_put_json_checks_the_body_and_keeps_its_json_form(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "--url", sqlite_url, "put", "q", '"hi"', "--json")
    assert code == 0
    code, _, _ = run(capsys, "--url", sqlite_url, "put", "q", '{"video": 4871}', "--json")
    assert code == 0
    q = kue.connect(sqlite_url, queue="q")
    first, second = q.reserve(timeout=0), q.reserve(timeout=0)
    assert first is not None and second is not None
    assert first.body == b'"hi"'
    assert second.json() == {"video": 4871}


def test_put_takes_delay_and_ttr(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--url", sqlite_url, "put", "q", "x", "--delay", "600",
                       "--ttr", "5")
    assert code == 0
    code, out, _ = run(capsys, "--url", sqlite_url, "peek", "q", "--state", "delayed", "--json")
    assert code == 0
    assert json.loads(out)["state"] == "delayed"


def test_stats_table_and_json_count_every_state(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    q = kue.connect(sqlite_url, queue="videos")
    for n in range(3):
        q.put({"n": n})
    q.put("later", delay=600)
    reserved = q.reserve(timeout=0)
    assert reserved is not None

    code, out, _ = run(capsys, "--url", sqlite_url, "stats", "videos", "empty")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["queue", "ready", "delayed", "reserved", "buried"],
        ["videos", "2", "1", "1", "0"],
        ["empty", "0", "0", "0", "0"],
    ]
    code, out, _ = run(capsys, "--url", sqlite_url, "stats", "--json", "videos")
    assert code == 0
    assert json.loads(out) == {"videos": {"ready": 2, "delayed": 1, "reserved": 1, "buried": 0}}


def test_buried_job_is_peeked_then_kicked_back_to_ready(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    q = kue.connect(sqlite_url, queue="jobs")
    job_id = q.put({"broken": True})
    job = q.reserve(timeout=0)
    assert job is not None
    job.bury()

    code, out, _ = run(capsys, "--url", sqlite_url, "peek", "jobs", "--state", "buried", "--json")
    assert code == 0
    assert json.loads(out) == {"id": job_id, "queue": "jobs", "state": "buried",
                               "priority": kue.DEFAULT_PRIORITY, "attempts": 1,
                               "body": '{"broken":true}'}
    code, out, _ = run(capsys, "--url", sqlite_url, "kick", "jobs", "5")
    assert (code, out) == (0, "kicked 1 job on queue 'jobs'\n")
    assert q.stats() == kue.QueueStats(ready=1)


def test_peek_of_an_empty_state_exits_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--url", sqlite_url, "peek", "jobs", "--state", "buried")
    assert (code, out) == (1, "")
    assert err == "queue 'jobs' has no buried job\n"


def test_without_url_it_uses_kue_url_then_the_default_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(capsys, "put", "default", "x")
    assert code == 0
    assert kue.connect(f"sqlite:///{tmp_path}/kue.sqlite3").stats().ready == 1

    monkeypatch.setenv("KUE_URL", f"sqlite:///{tmp_path}/other.sqlite3")
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0
    assert json.loads(out) == {"default": {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}}


def test_delete_removes_a_job_by_id_and_refuses_a_reserved_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = kue.connect(sqlite_url, queue="q")
    doomed, kept, busy = queue.put("doomed"), queue.put("kept"), queue.put("busy", priority=0)
    held = queue.reserve(timeout=0)
    assert held is not None and held.id == busy
    code, out, _ = run(capsys, "--url", sqlite_url, "delete", "q", doomed)
    assert (code, out) == (0, f"deleted job {doomed} from queue 'q'\n")
    code, _, err = run(capsys, "--url", sqlite_url, "delete", "q", "999999")
    assert (code, err) == (1, "queue 'q' has no job 999999\n")
    code, out, err = run(capsys, "--url", sqlite_url, "delete", "q", busy)
    assert (code, out) == (2, "")
    assert "is reserved by a worker" in err and len(err.splitlines()) == 1
    assert queue.stats() == kue.QueueStats(ready=1, reserved=1)
    assert queue.peek("ready") is not None and queue.peek("ready").id == kept  # type: ignore[union-attr]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--url", "nosuch://x", "stats"], "kue stats: no kue backend named 'nosuch'"),
        (["put", "q", "{bad", "--json"], "kue put: BODY is not valid JSON"),
        (["put", "q", "NaN", "--json"], "kue put: BODY is not valid JSON: NaN"),
        (["put", "q", "x", "--priority", "-1"], "kue put: priority -1 is out of range"),
        (["kick", "q", "0"], "kue kick: count 0 must be at least 1"),
        (["--url", "redis://127.0.0.1:{port}/0", "stats"],
         "kue stats: backend at redis://127.0.0.1:{port}/0 is unavailable"),
    ],
    ids=["unknown-backend", "bad-json", "nan-json", "negative-priority", "kick-zero",
         "redis-refused"],
)
def test_errors_print_one_line_without_traceback_and_exit_two(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "redis" in expected:
        pytest.importorskip("kue_redis")
        port = str(_free_port())  # nothing listens here: the connection is refused
        argv = [a.replace("{port}", port) for a in argv]
        expected = expected.replace("{port}", port)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(expected), err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_verbose_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-v", "--url", "nosuch://x", "stats")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("kue stats: no kue backend named 'nosuch'")


def test_backends_lists_each_with_its_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backends", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert {"memory", "sqlite", "redis"} <= set(rows)
    assert rows["sqlite"]["distribution"].startswith("kue ")
    assert rows["sqlite"]["configured"] is True  # the default backend
    assert rows["sqlite"]["capabilities"]["durable"] is True
    assert rows["memory"]["capabilities"]["shared"] is False
    # A server backend is not contacted without --url.
    assert rows["redis"]["distribution"].startswith("kue-redis ")
    assert rows["redis"]["capabilities"] is None
    assert "kue backends --url redis://" in rows["redis"]["note"]

    code, out, _ = run(capsys, "backends")
    assert code == 0
    assert "sqlite  (configured)  [kue " in out
    assert "supports: priority, fifo" in out


def test_backends_with_url_shows_that_backend_only(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "backends", "--url", sqlite_url, "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["name"] == "sqlite" and row["capabilities"]["name"] == "sqlite"


def test_the_installed_kue_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("kue")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("backends", "stats", "queues", "put", "peek", "status", "buried", "kick",
                    "retry", "delete"):
        assert f"\n    {command} " in proc.stdout
    proc = subprocess.run([str(script), "--url", f"sqlite:///{tmp_path}/k.sqlite3", "put", "q",
                           "hello"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert kue.connect(f"sqlite:///{tmp_path}/k.sqlite3", queue="q").peek() is not None


@pytest.mark.parametrize("argv", [["put", "}mail", "x"], ["peek", "a.b"], ["stats", "ok", "{s}m"],
                                  ["buried", "-x"], ["kick", "a b"]])
def test_a_queue_name_outside_the_rule_is_refused_before_connecting(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # A URL that cannot be opened: the name is refused before anything tries.
    code, out, err = run(capsys, "--url", "redis://127.0.0.1:1/0", *argv[:1], "--", *argv[1:])
    assert code == 2 and out == ""
    bad = next(a for a in argv[1:] if a not in ("ok", "x"))
    assert err.startswith(f"kue {argv[0]}: queue name {bad!r} is not valid: a queue name is 1 "
                          "to 48 ASCII letters"), err
