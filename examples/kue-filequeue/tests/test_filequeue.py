"""The file queue's own tests: a part of the contract by subclassing, and what is its own.

Run with the contract suite's plugin loaded (it provides the fixtures and options)::

    pytest -p kue_contract examples/kue-filequeue/tests
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import kue
from kue_contract.suite import BasicsContract, BuryContract, OrderContract, PeekContract
from kue_filequeue.backend import FileQueueBackend
from kue_filequeue.settings import path_from_url, url_for_path


@pytest.fixture(scope="session")
def kue_backend_name() -> str:
    return "filequeue"


@pytest.fixture(scope="session")
def kue_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield url_for_path(tmp_path_factory.mktemp("store"))


class TestContract(BasicsContract, OrderContract, BuryContract, PeekContract):
    """Four of the contract's mixins; the full suite runs with --pyargs kue_contract."""


def test_a_url_names_a_local_directory(tmp_path: Path) -> None:
    assert path_from_url("filequeue:///var/lib/jobs") == Path("/var/lib/jobs")
    assert path_from_url(url_for_path(tmp_path / "a b")) == tmp_path / "a b"
    with pytest.raises(kue.ConfigError, match="local directory"):
        path_from_url("filequeue://example.com/jobs")
    with pytest.raises(kue.ConfigError, match="names no directory"):
        path_from_url("filequeue://")


def test_max_body_comes_from_the_url_over_the_configuration(tmp_path: Path) -> None:
    queue = kue.connect(url_for_path(tmp_path) + "?max_body=8", queue="small",
                        options={"max_body": 100})
    assert queue.capabilities.max_body == 8
    queue.put(b"12345678")
    with pytest.raises(kue.JobTooBig, match="8"):
        queue.put(b"123456789")
    assert queue.stats().ready == 1
    with pytest.raises(kue.ConfigError, match=r"filequeue option 'colour'.*known: max_body"):
        kue.connect(url_for_path(tmp_path) + "?colour=blue", queue="small")


def test_kue_connect_finds_the_backend_through_its_entry_point(tmp_path: Path) -> None:
    queue = kue.connect(url_for_path(tmp_path), queue="emails")
    assert isinstance(queue.backend, FileQueueBackend)
    assert queue.capabilities.name == "filequeue"


def test_a_job_is_a_readable_json_file_in_its_state_directory(tmp_path: Path) -> None:
    queue = kue.Queue(FileQueueBackend(tmp_path), "emails")
    job_id = queue.put({"to": "ada@example.com"}, priority=3)
    [name] = os.listdir(tmp_path / "emails" / "ready")
    document = json.loads((tmp_path / "emails" / "ready" / name).read_text())
    assert document["id"] == job_id
    assert json.loads(document["body"]) == {"to": "ada@example.com"}
    job = queue.reserve(timeout=0)
    assert job is not None
    assert os.listdir(tmp_path / "emails" / "ready") == []
    assert len(os.listdir(tmp_path / "emails" / "reserved")) == 1


def test_a_queue_name_that_is_no_plain_directory_name_is_refused(tmp_path: Path) -> None:
    # kue refuses such a name before it reaches the backend; the backend checks it too,
    # for a caller that goes around kue.Queue.
    with pytest.raises(ValueError, match="queue name"):
        kue.Queue(FileQueueBackend(tmp_path), "../escape")
    with pytest.raises(ValueError, match="directory name"):
        FileQueueBackend(tmp_path).put("../escape", b"x", 0, 0.0, 60.0)
    assert not (tmp_path.parent / "escape").exists()


def _crash_holding_a_job(root: str) -> None:
    queue = kue.Queue(FileQueueBackend(root), "work")
    assert queue.reserve(timeout=5) is not None
    os._exit(1)  # die without a word, as a killed worker would


def test_the_job_of_a_process_that_died_comes_back_after_its_ttr(tmp_path: Path) -> None:
    queue = kue.Queue(FileQueueBackend(tmp_path), "work")
    job_id = queue.put("survivor", ttr=1)
    child = multiprocessing.get_context("spawn").Process(
        target=_crash_holding_a_job, args=(str(tmp_path),))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 1
    assert queue.stats().reserved == 1
    again = queue.reserve(timeout=5)
    assert again is not None and again.id == job_id and again.attempts == 2
