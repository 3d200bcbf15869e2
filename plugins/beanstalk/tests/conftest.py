"""A real beanstalkd per test, started on a free 127.0.0.1 port and stopped after."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from kue_beanstalk.backend import BeanstalkBackend
from kue_beanstalk.connection import Connection
from kue_beanstalk.server import SERVER
from kue_contract.servers import LocalServer


@pytest.fixture
def make_server() -> Iterator[Callable[..., LocalServer]]:
    """Start beanstalkd processes with extra arguments; all are stopped after the test."""
    started: list[LocalServer] = []

    def make(*args: str) -> LocalServer:
        server = LocalServer(SERVER, *args)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.remove()


@pytest.fixture
def server(make_server: Callable[..., LocalServer]) -> LocalServer:
    """A beanstalkd of this test's own."""
    return make_server()


@pytest.fixture
def backend(server: LocalServer) -> Iterator[BeanstalkBackend]:
    """A backend on this test's beanstalkd."""
    b = BeanstalkBackend(server.url)
    yield b
    b.close()


@pytest.fixture
def tube() -> str:
    """A fresh tube name."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every write a connection makes (a pipeline or a single request), by what it was for."""
    seen: list[str] = []
    pipeline, request = Connection.pipeline, Connection.request

    def counting_pipeline(self: Connection, commands: list[object], what: str) -> object:
        seen.append(what)
        return pipeline(self, commands, what)  # type: ignore[arg-type]

    def counting_request(self: Connection, data: bytes, what: str) -> bytes:
        seen.append(what)
        return request(self, data, what)

    monkeypatch.setattr(Connection, "pipeline", counting_pipeline)
    monkeypatch.setattr(Connection, "request", counting_request)
    yield seen
