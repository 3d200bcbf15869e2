"""The ``kue`` commands for when something failed: status, queues, buried, kick --all, retry,
put --job and peek's truncation; run through ``kue.cli.admin.main`` in this process."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import kue
from kue.backends.memory import MemoryBackend
from kue.cli import admin, admin_records
from kue.codec import decode
from kue.errors import Unsupported
from kue.plugins import new_plugin_manager
from kue.worker import Worker

import sample_jobs

LONG = "x" * 500


@kue.job(name="tests.records.long_result")
def long_result() -> str:
    return LONG


@kue.job(name="tests.records.reports")
def reports(total: int) -> dict[str, int]:
    return {"total": total}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger: Path) -> None:
    """No KUE_* variables or config files of the developer's leak in; jobs write a ledger."""
    for var in ("KUE_URL", "KUE_BACKEND", "KUE_QUEUES", "KUE_IMPORT", "KUE_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def memory_url() -> str:
    return f"memory://cli-records-{uuid.uuid4().hex[:12]}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = admin.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def settle(queue: kue.Queue) -> None:
    """Run a worker in this process until no job of ``queue`` is ready, delayed or reserved."""
    deadline = time.monotonic() + 20
    while True:
        Worker(queue.backend, [queue.name], plugin_manager=new_plugin_manager()).run(burst=True)
        stats = queue.stats()
        if stats.ready == stats.delayed == stats.reserved == 0:
            return
        assert time.monotonic() < deadline, f"jobs did not settle: {stats}"
        time.sleep(0.02)


def rows(out: str) -> dict[str, str]:
    """``key: value`` lines of ``kue status`` as a dict."""
    found = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            found[key] = value.strip()
    return found


# -- kue put --job ----------------------------------------------------------------------------


def test_put_job_puts_an_envelope_a_worker_runs(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], ledger: Path
) -> None:
    before = time.time()
    code, out, err = run(capsys, "--url", sqlite_url, "put", "jobs", "--job", "tests.add",
                         "--args", "[2]", "--kwargs", '{"b": 3}', "--priority", "7")
    assert (code, err) == (0, "")
    job_id = out.strip()
    queue = kue.connect(sqlite_url, queue="jobs")
    seen = queue.peek()
    assert seen is not None and seen.id == job_id and seen.priority == 7
    envelope = decode(seen.body)
    assert (envelope.job, envelope.args, envelope.kwargs, envelope.attempt) == (
        "tests.add", [2], {"b": 3}, 0)
    assert len(envelope.id) == 32 and before <= envelope.enqueued_at <= time.time()

    settle(queue)
    assert ledger.read_text() == "add 5\n"
    code, out, _ = run(capsys, "--url", sqlite_url, "status", job_id, "--queue", "jobs")
    assert code == 0
    shown = rows(out)
    assert (shown["state"], shown["job"], shown["result"], shown["attempts"]) == (
        "done", "tests.add", "5", "1")


def test_each_put_job_gets_its_own_envelope_id(
    memory_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        code, _, _ = run(capsys, "--url", memory_url, "put", "q", "--job", "tests.add",
                         "--args", "[1, 2]")
        assert code == 0
    queue = kue.connect(memory_url, queue="q")
    first, second = queue.reserve(timeout=0), queue.reserve(timeout=0)
    assert first is not None and second is not None
    assert first.envelope().id != second.envelope().id
    assert first.envelope().kwargs == {}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["put", "q", "--job", "a.b", "--args", "{bad"], "kue put: --args is not valid JSON"),
        (["put", "q", "--job", "a.b", "--args", '{"a": 1}'],
         "kue put: --args must be a JSON array, e.g. '[1, \"two\"]'; got '{\"a\": 1}'"),
        (["put", "q", "--job", "a.b", "--kwargs", "[1]"],
         "kue put: --kwargs must be a JSON object"),
        (["put", "q", "--job", "a.b", "--args", "[NaN]"], "kue put: --args is not valid JSON"),
        (["put", "q", "body", "--job", "a.b"], "kue put: give BODY or --job NAME, not both"),
        (["put", "q", "--job", " "], "kue put: --job needs the name of a registered job"),
        (["put", "q", "--job", "a.b", "--json"], "kue put: --json checks a plain BODY"),
        (["put", "q", "body", "--args", "[1]"], "kue put: --args and --kwargs go with --job"),
        (["put", "q"], "kue put: give --job NAME (with --args JSON) for a job a kue worker "
                       "runs, or a plain BODY"),
        (["put", "q", "--job", "a.b", "--args", '[{"x": {1, 2}}]'],
         "kue put: --args is not valid JSON"),
    ],
    ids=["bad-args", "args-not-array", "kwargs-not-object", "nan", "body-and-job", "blank-name",
         "json-with-job", "args-without-job", "nothing", "set-literal"],
)
def test_put_job_refuses_bad_input_in_one_line(
    argv: list[str], expected: str, memory_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--url", memory_url, *argv)
    assert (code, out) == (2, "")
    assert err.startswith(expected), err
    assert len(err.splitlines()) == 1
    assert kue.connect(memory_url, queue="q").stats() == kue.QueueStats()


def test_help_shows_put_with_job_not_a_plain_body_a_worker_buries(
    capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        admin.main(["--help"])
    out = capsys.readouterr().out
    examples = out[out.index("examples:"):]
    assert "kue put emails --job " in examples
    assert not re.search(r"kue put \S+ '", examples), "no plain-body put in the examples"


@pytest.mark.parametrize("command", ["status", "queues", "buried", "kick", "retry", "put",
                                     "peek"])
def test_each_command_has_help_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        admin.main([command, "--help"])
    out = capsys.readouterr().out
    assert re.search(r"\nexamples?:\n  kue ", out), out
    assert f"\n  kue {command} " in out.split("example")[-1], out


# -- kue status -------------------------------------------------------------------------------


def test_status_of_a_buried_job_shows_its_last_error_and_the_traceback_with_v(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = kue.connect(sqlite_url, queue="jobs")
    handle = queue.push(sample_jobs.always_fails.message("x"))
    assert handle is not None
    job_id = str(handle)  # as a shell passes it
    settle(queue)

    code, out, _ = run(capsys, "--url", sqlite_url, "status", job_id, "-q", "jobs")
    assert code == 0
    shown = rows(out)
    assert shown["state"] == "buried" and shown["attempts"] == "3"
    assert shown["error"] == "RuntimeError: failing on purpose: x"
    assert shown["reason"].startswith("failed 3 times")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d \(\d+ s ago\)",
                        shown["buried"]), shown["buried"]
    assert "Traceback" not in out

    code, out, err = run(capsys, "--url", sqlite_url, "status", job_id, "-q", "jobs", "-v")
    assert code == 0, err
    assert "traceback:" in out and "failing on purpose: x" in out.split("traceback:")[1]

    code, out, _ = run(capsys, "--url", sqlite_url, "status", job_id, "-q", "jobs", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["id"], doc["queue"], doc["state"], doc["name"]) == (
        job_id, "jobs", "buried", "tests.always_fails")
    assert doc["error"]["type"] == "builtins.RuntimeError"
    assert "Traceback (most recent call last)" in doc["error"]["traceback"]
    assert isinstance(doc["extra"]["buried_at"], float)


def test_status_shows_progress_and_cuts_a_long_result_unless_full(
    memory_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = kue.connect(memory_url, queue="jobs")
    handle = queue.push(sample_jobs.add.message(1, 1))
    assert handle is not None
    waiting = str(handle)
    queue.records.write("jobs", waiting, {"progress": 0.4, "progress_note": "resized 4 of 10"},
                        None)
    code, out, _ = run(capsys, "--url", memory_url, "status", waiting, "-q", "jobs")
    assert code == 0
    assert rows(out)["progress"] == "40% resized 4 of 10"
    assert rows(out)["state"] == "ready"

    pushed = queue.push(long_result.message())
    assert pushed is not None
    done = str(pushed)
    settle(queue)
    code, out, _ = run(capsys, "--url", memory_url, "status", done, "-q", "jobs")
    result = rows(out)["result"]
    assert result.startswith('"xxx') and result.endswith(
        "... (302 more characters; --full shows all)")
    code, out, _ = run(capsys, "--url", memory_url, "status", done, "-q", "jobs", "--full")
    assert rows(out)["result"] == json.dumps(LONG)
    code, out, _ = run(capsys, "--url", memory_url, "status", done, "-q", "jobs", "--json")
    assert json.loads(out)["result"] == LONG


def test_status_of_an_unknown_job_exits_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--url", sqlite_url, "status", "12345", "--queue", "jobs")
    assert (code, out) == (1, "")
    assert err == ("nothing is known of job 12345 on queue 'jobs' (a wrong id or queue, or "
                   "its record expired)\n")
    code, out, _ = run(capsys, "--url", sqlite_url, "status", "12345", "--json")
    assert (code, out) == (1, "")


def test_status_without_queue_looks_in_each_configured_queue(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = kue.connect(sqlite_url, queue="second").push(sample_jobs.add.message(1, 2))
    assert handle is not None
    job_id = str(handle)
    code, _, err = run(capsys, "--url", sqlite_url, "status", job_id)
    assert code == 1 and "on queue 'default'" in err
    monkeypatch.setenv("KUE_QUEUES", "first,second")
    code, out, _ = run(capsys, "--url", sqlite_url, "status", job_id)
    assert code == 0
    assert rows(out)["queue"] == "second" and rows(out)["state"] == "ready"


# -- kue queues -------------------------------------------------------------------------------


def test_queues_lists_each_queue_holding_a_job_with_its_counts(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--url", sqlite_url, "queues")
    assert (code, out) == (0, "no queues\n")
    videos = kue.connect(sqlite_url, queue="videos")
    videos.put("a")
    videos.put("b", delay=600)
    emails = kue.connect(sqlite_url, queue="emails")
    emails.put("poison")
    job = emails.reserve(timeout=0)
    assert job is not None
    job.bury()

    code, out, _ = run(capsys, "--url", sqlite_url, "queues")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["queue", "ready", "delayed", "reserved", "buried"],
        ["emails", "0", "0", "0", "1"],
        ["videos", "1", "1", "0", "0"],
    ]
    code, out, _ = run(capsys, "--url", sqlite_url, "queues", "--json")
    assert json.loads(out) == {
        "emails": {"ready": 0, "delayed": 0, "reserved": 0, "buried": 1},
        "videos": {"ready": 1, "delayed": 1, "reserved": 0, "buried": 0},
    }


def test_queues_on_memory_lists_the_queues_of_that_store(
    memory_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    kue.connect(memory_url, queue="b").put("x")
    kue.connect(memory_url, queue="a").put("y")
    kue.connect(memory_url, queue="empty").stats()  # looked at, never used
    code, out, _ = run(capsys, "--url", memory_url, "queues", "--json")
    assert code == 0
    assert list(json.loads(out)) == ["a", "b"]


# -- kue buried -------------------------------------------------------------------------------


def _bury_three(url: str) -> tuple[kue.Queue, list[str]]:
    """Three buried jobs on queue ``jobs``: two that failed, then a plain body; oldest first."""
    queue = kue.connect(url, queue="jobs")
    ids = []
    for tag in ("first", "second"):
        job_id = queue.push(sample_jobs.always_fails.message(tag))
        assert job_id is not None
        settle(queue)
        ids.append(str(job_id))
    ids.append(queue.put("not an envelope " + LONG))
    settle(queue)
    assert queue.stats() == kue.QueueStats(buried=3)
    return queue, ids


def test_buried_lists_newest_first_with_attempts_errors_and_when(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ids = _bury_three(sqlite_url)
    code, out, _ = run(capsys, "--url", sqlite_url, "buried", "jobs")
    assert code == 0
    blocks = out.split("\n\n")
    assert blocks[0] == "queue 'jobs': 3 buried, newest first; showing 1-3"
    heads = [block.splitlines()[0] for block in blocks[1:]]
    assert [head.split()[0] for head in heads] == ids[::-1]
    assert re.fullmatch(rf"{ids[1]}  buried \S+ \S+ \(\d+ s ago\)  attempts 3  "
                        rf"priority {kue.DEFAULT_PRIORITY}", heads[1]), heads[1]
    second = blocks[2]
    assert '    job:    tests.always_fails ["second"]' in second
    assert "    error:  RuntimeError: failing on purpose: second" in second
    assert "    reason: failed 3 times" in second
    plain = blocks[1]
    assert "    body:   not an envelope xxx" in plain
    assert "... (316 more characters; --full shows all)" in plain
    assert "    error:  kue.errors.DecodeError: body is not JSON" in plain
    assert "Traceback" not in out

    code, out, _ = run(capsys, "--url", sqlite_url, "-v", "buried", "jobs", "--full")
    assert "traceback:" in out and LONG in out


def test_buried_pages_and_prints_json(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, ids = _bury_three(sqlite_url)
    code, out, _ = run(capsys, "--url", sqlite_url, "buried", "jobs", "--limit", "2")
    assert code == 0
    assert out.splitlines()[0] == "queue 'jobs': 3 buried, newest first; showing 1-2"
    assert out.endswith("\nnext page: kue buried jobs --offset 2 --limit 2\n")

    code, out, _ = run(capsys, "--url", sqlite_url, "buried", "jobs", "--limit", "2",
                       "--offset", "2", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {k: v for k, v in doc.items() if k != "jobs"} == {
        "queue": "jobs", "buried": 3, "offset": 2, "limit": 2, "complete": True, "note": None}
    (job,) = doc["jobs"]
    assert (job["id"], job["name"], job["attempts"]) == (ids[0], "tests.always_fails", 3)
    assert job["error"]["message"] == "failing on purpose: first"
    assert isinstance(job["buried_at"], float)
    assert json.loads(job["body"])["args"] == ["first"]

    code, out, _ = run(capsys, "--url", sqlite_url, "buried", "jobs", "--json")
    plain = json.loads(out)["jobs"][0]
    assert (plain["id"], plain["name"], plain["body_truncated"], plain["body_size"]) == (
        ids[2], None, True, len("not an envelope ") + len(LONG))
    assert len(plain["body"]) == 200

    code, out, _ = run(capsys, "--url", sqlite_url, "buried", "jobs", "--offset", "5")
    assert (code, out) == (0, "queue 'jobs' has no buried jobs past the first 5\n")


def test_buried_of_a_queue_without_any(memory_url: str, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    kue.connect(memory_url, queue="jobs").put("ready")
    code, out, _ = run(capsys, "--url", memory_url, "buried", "jobs")
    assert (code, out) == (0, "queue 'jobs' has no buried jobs\n")
    code, out, _ = run(capsys, "--url", memory_url, "buried", "jobs", "--json")
    assert json.loads(out)["jobs"] == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["--limit", "0"], "kue buried: --limit 0 must be at least 1"),
    (["--offset", "-1"], "kue buried: --offset -1 must be at least 0"),
])
def test_buried_refuses_a_bad_page(argv: list[str], expected: str, memory_url: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--url", memory_url, "buried", "jobs", *argv)
    assert (code, out, err) == (2, "", expected + "\n")


class _PeekOnly(MemoryBackend):
    """Like beanstalkd: it can peek the oldest buried job but not list them or kick by id."""

    listing_unsupported = {"buried": "listing buried jobs (it shows only the oldest)",
                           "kick_job": "kicking one buried job by id (for the test)"}

    def buried(self, queue: str, limit: int, offset: int) -> list[kue.JobInfo]:
        raise Unsupported("peek-only", self.listing_unsupported["buried"])

    def kick_job(self, queue: str, job_id: str) -> bool:
        raise Unsupported("peek-only", self.listing_unsupported["kick_job"])


class _Blind(_PeekOnly):
    """Like SQS: it cannot even peek."""

    capabilities = kue.Capabilities(name="blind", peek=False)


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, type[MemoryBackend]], str]:
    """Commands open ``chosen["cls"]`` on one private memory store (``_PeekOnly`` at first)."""
    chosen: dict[str, type[MemoryBackend]] = {"cls": _PeekOnly}
    store = f"cli-fake-{uuid.uuid4().hex[:12]}"

    @contextmanager
    def connected(args: Any, queue: str = "default") -> Iterator[kue.Queue]:
        yield kue.Queue(chosen["cls"](store), queue)

    monkeypatch.setattr(admin_records, "connected", connected)
    return chosen, store


def _fake_buried(store_name: str, n: int) -> None:
    queue = kue.Queue(MemoryBackend(store_name), "jobs")
    for i in range(n):
        queue.put(f"job {i}")
    for _ in range(n):
        job = queue.reserve(timeout=0)
        assert job is not None
        job.bury()


def test_buried_on_a_backend_that_can_only_peek_shows_the_oldest_with_a_note(
    fake_backend: tuple[dict[str, type[MemoryBackend]], str],
    capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_buried(fake_backend[1], 2)
    code, out, err = run(capsys, "buried", "jobs")
    assert code == 0
    assert err == ("note: the memory backend does not support listing buried jobs (it shows "
                   "only the oldest); shown is only the job buried longest ago, the next one "
                   "kue kick moves\n")
    assert out.splitlines()[0] == "queue 'jobs': 2 buried; showing the one buried longest ago"
    assert "    body:   job 0" in out and "next page" not in out
    code, out, _ = run(capsys, "buried", "jobs", "--json")
    doc = json.loads(out)
    assert (doc["complete"], len(doc["jobs"]), doc["buried"]) == (False, 1, 2)
    assert "only the oldest" in doc["note"]


def test_buried_and_retry_on_a_backend_that_cannot_say_why_and_what_works(
    fake_backend: tuple[dict[str, type[MemoryBackend]], str],
    capsys: pytest.CaptureFixture[str]
) -> None:
    chosen, store = fake_backend
    chosen["cls"] = _Blind
    _fake_buried(store, 2)
    code, out, err = run(capsys, "buried", "jobs")
    assert (code, out) == (2, "")
    assert err == ("kue buried: the blind backend does not support listing buried jobs (it "
                   "shows only the oldest); 2 jobs buried on queue 'jobs' (kue stats counts "
                   "them); kue kick jobs --all moves them back to ready\n")
    code, out, err = run(capsys, "retry", "jobs", "1")
    assert (code, out) == (2, "")
    assert err == ("kue retry: the blind backend does not support kicking one buried job by "
                   "id (for the test); kue kick jobs N moves the jobs buried longest ago\n")


# -- kue kick --all and kue retry -------------------------------------------------------------


def test_kick_all_moves_every_buried_job_and_no_delayed_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kue.cli.admin_commands.KICK_BATCH", 2)  # several rounds
    queue = kue.connect(sqlite_url, queue="jobs")
    for i in range(5):
        queue.put(f"bad {i}")
    for _ in range(5):
        job = queue.reserve(timeout=0)
        assert job is not None
        job.bury()
    queue.put("later", delay=600)

    code, out, _ = run(capsys, "--url", sqlite_url, "kick", "jobs", "--all")
    assert (code, out) == (0, "kicked 5 buried jobs on queue 'jobs'\n")
    assert queue.stats() == kue.QueueStats(ready=5, delayed=1)
    code, out, _ = run(capsys, "--url", sqlite_url, "kick", "jobs", "--all")
    assert (code, out) == (0, "kicked 0 buried jobs on queue 'jobs'\n")
    assert queue.stats() == kue.QueueStats(ready=5, delayed=1)
    # Plain kick still takes a delayed job once nothing is buried.
    code, out, _ = run(capsys, "--url", sqlite_url, "kick", "jobs")
    assert (code, out) == (0, "kicked 1 job on queue 'jobs'\n")

    code, out, err = run(capsys, "--url", sqlite_url, "kick", "jobs", "3", "--all")
    assert (code, out, err) == (2, "", "kue kick: give N or --all, not both\n")


def test_retry_moves_one_buried_job_back_to_ready(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, ids = _bury_three(sqlite_url)
    code, out, _ = run(capsys, "--url", sqlite_url, "retry", "jobs", ids[1])
    assert (code, out) == (0, f"job {ids[1]} on queue 'jobs' is ready again\n")
    assert queue.stats() == kue.QueueStats(ready=1, buried=2)
    seen = queue.peek()
    assert seen is not None and seen.id == ids[1] and seen.attempts == 3

    code, out, err = run(capsys, "--url", sqlite_url, "retry", "jobs", ids[1])
    assert (code, out) == (1, "")
    assert err == f"queue 'jobs' has no buried job {ids[1]} (it is ready)\n"
    code, _, err = run(capsys, "--url", sqlite_url, "retry", "jobs", "999999")
    assert (code, err) == (1, "queue 'jobs' has no buried job 999999 (no such job)\n")
    code, _, err = run(capsys, "--url", sqlite_url, "retry", "other", ids[0])
    assert (code, err) == (1, f"queue 'other' has no buried job {ids[0]} (no such job)\n")
    assert queue.stats() == kue.QueueStats(ready=1, buried=2)


def test_a_retried_job_runs_again_with_its_attempts_afresh(
    memory_url: str, capsys: pytest.CaptureFixture[str], ledger: Path
) -> None:
    queue = kue.connect(memory_url, queue="jobs")
    handle = queue.push(sample_jobs.always_fails.message("x"))
    assert handle is not None
    job_id = str(handle)
    settle(queue)
    assert ledger.read_text().count("fail x") == 3
    code, _, _ = run(capsys, "--url", memory_url, "retry", "jobs", job_id)
    assert code == 0
    settle(queue)
    # It ran max_attempts times more and was buried again with its own error, not as a
    # worker death.
    assert ledger.read_text().count("fail x") == 6
    status = queue.status(job_id)
    assert status is not None and status.error is not None
    assert status.error["message"] == "failing on purpose: x"


# -- kue peek ---------------------------------------------------------------------------------


def test_peek_cuts_a_long_body_unless_full(memory_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    queue = kue.connect(memory_url, queue="q")
    queue.put(LONG)
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q")
    assert code == 0
    body = rows(out)["body"]
    assert body == "x" * 200 + "... (300 more characters; --full shows all)"
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q", "--full")
    assert rows(out)["body"] == LONG
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q", "--json")
    doc = json.loads(out)
    assert (doc["body"], doc["body_truncated"], doc["body_size"]) == ("x" * 200, True, 500)
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q", "--json", "--full")
    doc = json.loads(out)
    assert doc["body"] == LONG and "body_truncated" not in doc


def test_peek_shows_a_binary_body_as_hex(memory_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    kue.connect(memory_url, queue="q").put(b"\xff\x00" * 150)
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q")
    assert code == 0
    assert rows(out)["body"] == ("(not UTF-8, 300 bytes) hex " + "ff00" * 50
                                 + "... (400 more characters; --full shows all)")
    code, out, _ = run(capsys, "--url", memory_url, "peek", "q", "--json", "--full")
    assert code == 0
    doc = json.loads(out)
    assert doc["body"] is None and doc["body_hex"] == "ff00" * 150
