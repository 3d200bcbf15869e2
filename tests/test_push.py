"""``fn.push()`` keeps one open queue per process; ``apush`` pushes without blocking a loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kue
from kue.plugins import get_plugin_manager

import sample_jobs
from support import HERE


class OpenCounter:
    """A plugin that counts every ``kue_backend`` call and leaves the opening to the backend."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    @kue.hookimpl(tryfirst=True)  # before backends loaded later, which answer first
    def kue_backend(self, name: str, url: str, options: dict[str, Any]) -> None:
        self.opened.append(url)


@pytest.fixture
def opens() -> Iterator[list[str]]:
    """The URLs of every backend opened through the process's plugin manager meanwhile."""
    counter = OpenCounter()
    pm = get_plugin_manager()
    pm.register(counter)
    try:
        yield counter.opened
    finally:
        pm.unregister(counter)


@pytest.fixture
def configured(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sqlite_url`` as the configured backend (KUE_URL)."""
    monkeypatch.setenv("KUE_URL", sqlite_url)
    return sqlite_url


def ready(url: str, queue: str = "default") -> int:
    with kue.connect(url, queue=queue) as q:
        return q.stats().ready


def test_pushes_in_a_row_open_the_backend_once(configured: str, opens: list[str]) -> None:
    first = sample_jobs.add.push(1, 2)
    second = sample_jobs.add.push(3, 4)
    assert first and second and first != second
    assert opens == [configured]
    assert ready(configured) == 2


def test_wrong_arguments_fail_before_anything_is_opened(
    configured: str, opens: list[str]
) -> None:
    with pytest.raises(TypeError):
        sample_jobs.add.push(1)  # type: ignore[call-arg]
    assert opens == []


def test_a_changed_kue_url_pushes_to_the_new_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opens: list[str]
) -> None:
    one, two = (f"sqlite:///{tmp_path}/{name}.sqlite3" for name in ("one", "two"))
    monkeypatch.setenv("KUE_URL", one)
    sample_jobs.add.push(1, 1)
    monkeypatch.setenv("KUE_URL", two)
    sample_jobs.add.push(2, 2)
    sample_jobs.add.push(3, 3)
    assert opens == [one, two]
    assert (ready(one), ready(two)) == (1, 2)


def test_a_changed_kue_toml_is_seen_once_its_recheck_interval_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opens: list[str]
) -> None:
    from kue import shared_queues

    for var in ("KUE_URL", "KUE_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(shared_queues, "FILE_RECHECK", 0.0)
    # Names of different lengths: the file's size changes even within one mtime tick.
    one, two = (f"sqlite:///{tmp_path}/{name}.sqlite3" for name in ("one", "second"))
    (tmp_path / "kue.toml").write_text(f'url = "{one}"\n')
    sample_jobs.add.push(1, 1)
    (tmp_path / "kue.toml").write_text(f'url = "{two}"\n')
    sample_jobs.add.push(2, 2)
    assert opens == [one, two]
    assert (ready(one), ready(two)) == (1, 1)


def test_each_queue_name_has_its_own_open_queue(configured: str, opens: list[str]) -> None:
    @kue.job(name="tests.push.elsewhere", queue="elsewhere")
    def elsewhere(n: int) -> None: ...

    sample_jobs.add.push(1, 2)
    elsewhere.push(1)
    elsewhere.push(2)
    assert opens == [configured, configured]
    assert (ready(configured), ready(configured, "elsewhere")) == (1, 2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_pushes_through_its_own_queue_and_the_parent_keeps_its_own(
    configured: str, opens: list[str]
) -> None:
    assert sample_jobs.add.push(1, 1)  # the parent's queue is open before the fork
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it pushed through a backend it opened itself
        code = 1
        try:
            before = len(opens)
            pushed = sample_jobs.add.push(2, 2)
            code = 0 if pushed and len(opens) == before + 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sample_jobs.add.push(3, 3)  # the parent's queue still works
    assert opens == [configured]
    assert ready(configured) == 3


def test_close_all_closes_the_open_queues_and_a_later_push_opens_again(
    configured: str, opens: list[str]
) -> None:
    from kue.shared_queues import close_all

    sample_jobs.add.push(1, 2)
    close_all()
    sample_jobs.add.push(3, 4)
    assert opens == [configured, configured]
    assert ready(configured) == 2


def test_the_open_queues_are_closed_at_interpreter_exit(configured: str) -> None:
    script = (
        "import sample_jobs\n"
        "from kue.shared_queues import shared_queue\n"
        "sample_jobs.add.push(1, 2)\n"
        "backend = shared_queue('default').backend\n"
        "close = backend.close\n"
        "def spy():\n"
        "    print('closed at exit')\n"
        "    close()\n"
        "backend.close = spy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout == "closed at exit\n"
    assert ready(configured) == 1


def test_apush_returns_the_id_of_the_job_it_put_on_the_queue(configured: str) -> None:
    job_id = asyncio.run(sample_jobs.add.apush(2, 3))
    with kue.connect(configured) as q:
        job = q.reserve(timeout=1)
        assert job is not None and job.id == job_id
        assert job.envelope().job == "tests.add" and job.envelope().args == [2, 3]
        job.delete()


def test_queue_apush_returns_the_id_and_takes_push_options(sqlite_url: str) -> None:
    with kue.connect(sqlite_url, queue="jobs") as q:
        job_id = asyncio.run(q.apush(sample_jobs.Greet("ada"), priority=7, delay=0))
        peeked = q.peek("ready")
        assert peeked is not None and (peeked.id, peeked.priority) == (job_id, 7)


class Gate:
    """Holds each push inside its ``kue_job_pushed`` hook until the event loop has run."""

    def __init__(self) -> None:
        self.pushing = threading.Event()
        self.loop_ran = threading.Event()
        self.loop_ran_during_push: list[bool] = []

    @kue.hookimpl
    def kue_job_pushed(self, queue: str, job_id: str, envelope: object) -> None:
        self.pushing.set()
        self.loop_ran_during_push.append(self.loop_ran.wait(timeout=10))


@pytest.mark.parametrize("form", ["function", "queue"])
def test_apush_does_not_block_the_event_loop(configured: str, form: str) -> None:
    gate = Gate()
    pm = get_plugin_manager()
    pm.register(gate)

    async def main() -> str | None:
        if form == "function":
            push = asyncio.create_task(sample_jobs.add.apush(1, 2))
        else:
            push = asyncio.create_task(kue.connect(configured).apush(sample_jobs.add.message(1, 2)))
        deadline = time.monotonic() + 10
        while not gate.pushing.is_set():  # this task runs while the push waits in its hook
            assert time.monotonic() < deadline, "the push never reached its hook"
            await asyncio.sleep(0.001)
        gate.loop_ran.set()
        return await push

    try:
        job_id = asyncio.run(main())
    finally:
        pm.unregister(gate)
    assert gate.loop_ran_during_push == [True]
    assert job_id is not None and ready(configured) == 1
