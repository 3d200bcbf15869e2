"""A moto_server on a free loopback port for the whole session; never real AWS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kue_contract.servers import serve
from kue_sqs.backend import SqsBackend
from kue_sqs.server import SERVER
from kue_sqs.settings import parse_settings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "moto_differs(reason): shows where moto behaves unlike real SQS"
    )


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with serve(SERVER, "local") as server:
        url = server.url
        endpoint = parse_qs(urlsplit(url).query)["endpoint"][0]
        host = urlsplit(endpoint).hostname
        if host != "127.0.0.1":  # refuse to run against anything but the loopback moto
            raise RuntimeError(f"tests must run against a loopback moto_server, not {endpoint}")
        yield url


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


OpenBackend = Callable[..., SqsBackend]


@pytest.fixture
def open_backend() -> Iterator[OpenBackend]:
    """Open SqsBackends on a URL, with constructor keywords; all closed after the test."""
    opened: list[SqsBackend] = []

    def make(url: str, **kwargs: Any) -> SqsBackend:
        b = SqsBackend(parse_settings(url), url=url, **kwargs)
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


@pytest.fixture
def backend(moto_url: str, open_backend: OpenBackend) -> SqsBackend:
    return open_backend(moto_url)
