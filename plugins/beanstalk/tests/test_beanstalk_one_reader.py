"""Each socket has one reader, the Connection's; greenstalk is used only through public names."""

from __future__ import annotations

import ast
import signal
import time
from pathlib import Path
from typing import NoReturn

import greenstalk
import pytest

import kue
import kue_beanstalk
from kue.backend import PutItem, Reservation
from kue_beanstalk.backend import BeanstalkBackend
from kue_beanstalk.connection import Connection
from kue_contract.servers import LocalServer


def _forbidden(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("kue_beanstalk must not make a greenstalk Client or Job")


def test_every_operation_runs_without_a_greenstalk_client_or_job(
    server: LocalServer, tube: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(greenstalk, "Client", _forbidden)
    monkeypatch.setattr(greenstalk, "Job", _forbidden)
    backend = BeanstalkBackend(server.url)
    assert backend.capabilities.max_body == 65_535
    backend.put(tube, b"one", 5, 0, 60)
    backend.put_many(tube, [PutItem(b"two", 6), PutItem(b"three", 7)])
    job = backend.reserve([tube], 0)
    assert job is not None and job.body == b"one"
    backend.touch(job)
    backend.release(job, 5, 0)
    job = backend.reserve([tube], 0)
    assert job is not None and job.body == b"one" and job.attempts == 2
    backend.bury(job, None)
    assert backend.peek(tube, kue.JobState.BURIED) is not None
    assert backend.kick_job(tube, job.id)
    job = backend.reserve([tube], 0)
    assert job is not None and job.body == b"one"
    nxt = backend.delete_and_reserve(job, [tube], 0)
    assert nxt is not None and nxt.body == b"two"
    info = backend.job_info(tube, nxt.id)
    assert info is not None and info.state == kue.JobState.RESERVED
    assert backend.stats(tube) == kue.QueueStats(ready=1, reserved=1)
    assert tube in backend.list_queues()
    backend.delete(nxt)
    assert backend.kick(tube, 1) == 0
    backend.close()


def test_the_plugin_names_nothing_private_of_greenstalk() -> None:
    package = Path(kue_beanstalk.__file__).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                base = node.value
                assert not (isinstance(base, ast.Name) and base.id == "greenstalk"), (
                    f"{path.name}:{node.lineno} uses greenstalk.{node.attr}"
                )
                # The old swap: a private attribute of the greenstalk client (conn.client._x).
                assert not (isinstance(base, ast.Attribute) and base.attr == "client"), (
                    f"{path.name}:{node.lineno} reaches into a client's {node.attr}"
                )
            if isinstance(node, ast.ImportFrom) and node.module == "greenstalk":
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name}:{node.lineno} imports {private}"


def _reserved_then_gone(backend: BeanstalkBackend, tube: str) -> Reservation:
    """A reservation kue still remembers whose job beanstalkd no longer has."""
    backend.put(tube, b"gone", 0, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    with backend._pool.connection() as conn:
        assert conn.request(b"delete %s\r\n" % job.id.encode(), "delete") == b"DELETED\r\n"
    return job


@pytest.mark.parametrize("op", ["touch", "release", "bury"])
def test_touch_release_and_bury_of_a_job_beanstalkd_no_longer_has_are_lost(
    backend: BeanstalkBackend, tube: str, op: str
) -> None:
    job = _reserved_then_gone(backend, tube)
    with backend._pool.connection() as conn:
        token = conn.token
    with pytest.raises(kue.ReservationLost, match="ttr ran out"):
        if op == "touch":
            backend.touch(job)
        elif op == "release":
            backend.release(job, 0, 0)
        else:
            backend.bury(job, None)
    with backend._pool.connection() as conn:  # NOT_FOUND is an answer: the connection stays
        assert conn.token == token and conn.alive()
    assert backend.stats(tube) == kue.QueueStats()


def test_a_release_the_server_buries_raises_backend_unavailable(
    backend: BeanstalkBackend, tube: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.put(tube, b"x", 0, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    real = Connection.request

    def out_of_memory(self: Connection, data: bytes, what: str) -> bytes:
        if what == "release":  # what beanstalkd answers when it cannot grow its heap
            real(self, b"bury %s 0\r\n" % job.id.encode(), "bury")
            return b"BURIED %s\r\n" % job.id.encode()
        return real(self, data, what)

    monkeypatch.setattr(Connection, "request", out_of_memory)
    with pytest.raises(kue.BackendUnavailable, match="out of memory and buried job"):
        backend.release(job, 0, 0)
    monkeypatch.undo()
    with pytest.raises(kue.ReservationLost):
        backend.touch(job)
    assert backend.stats(tube).buried == 1


def test_a_touch_the_server_does_not_answer_loses_the_reservation_naming_the_url(
    server: LocalServer, tube: str
) -> None:
    backend = BeanstalkBackend(server.url, {"socket_timeout": 0.5})
    backend.put(tube, b"x", 0, 0, 60)
    job = backend.reserve([tube], 0)
    assert job is not None
    server.send(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(kue.ReservationLost, match=r"no reply to touch within 0\.5 s"):
            backend.touch(job)
        assert time.monotonic() - started < 2
    finally:
        server.send(signal.SIGCONT)
    # The connection was dropped, so beanstalkd gives the job back.
    again = backend.reserve([tube], 2)
    assert again is not None and again.id == job.id and again.attempts == 2
    backend.delete(again)
    backend.close()


def test_list_queues_shows_the_default_tube_only_while_it_holds_a_job(
    backend: BeanstalkBackend, tube: str
) -> None:
    backend.put(tube, b"x", 0, 0, 60)
    assert tube in backend.list_queues()
    assert "default" not in backend.list_queues()
    backend.put("default", b"y", 0, 0, 60)
    assert "default" in backend.list_queues()
    job = backend.reserve(["default"], 0)
    assert job is not None
    assert "default" in backend.list_queues()  # reserved still counts
    backend.delete(job)
    assert "default" not in backend.list_queues()
