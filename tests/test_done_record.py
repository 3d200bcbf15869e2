"""The record of a finished job, encoded once: its text must say what its fields say."""

from __future__ import annotations

import json
import math
import time
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from kue.backend import PutItem, Reservation
from kue.backends.memory import MemoryBackend
from kue.backends.sqlite import SQLiteBackend
from kue.codec import decode
from kue.job import Job
from kue.plugins import get_plugin_manager
from kue.records import DoneRecord, EncodedFields, takes_done_records
from kue.worker.done_record import done_fields, done_record
from kue.worker.settle import Admitted, JobSettler


class Size(IntEnum):
    BIG = 3


JOB = Reservation(queue="q", id="17", body=b"{}", priority=2**31, attempts=2, ttr=60.0,
                  receipt="2")


@pytest.mark.parametrize("result", [
    None, True, False, 0, -7, 2**70, 1.5, -0.0, 1e300, "text", "naïve \"quoted\"\n", [],
    {"n": 1}, [1, "two", {"3": [4.5, None, True]}], Size.BIG, {"é": "ü"},
])
def test_the_text_is_the_json_of_the_fields(result: Any) -> None:
    started = time.monotonic() - 0.25
    record = done_record(JOB, "jobs.nämed \"x\"", 1764377000.5, started, result)
    assert json.loads(record.json) == json.loads(json.dumps(dict(record)))
    assert record["result"] == result and record["state"] == "done"
    assert record["attempts"] == 2 and record["priority"] == 2**31
    assert record["enqueued_at"] == 1764377000.5 and record["error"] is None
    assert 0.2 < record["finished_at"] - record["started_at"] < 5


def _holds_itself() -> list[Any]:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    return loop


@pytest.mark.parametrize("result", [object(), math.nan, math.inf, {"x": {1, 2}}, _holds_itself()])
def test_a_result_json_cannot_hold_is_kept_as_none_with_the_reason(result: Any) -> None:
    record = done_record(JOB, "jobs.odd", 0.0, time.monotonic(), result)
    assert record["result"] is None
    assert record["result_error"].startswith("not JSON-able: ")
    assert json.loads(record.json) == json.loads(json.dumps(dict(record)))


@pytest.mark.parametrize("enqueued_at", [0.0, math.inf, -math.inf])
def test_an_envelope_time_json_cannot_hold_is_left_out(enqueued_at: float) -> None:
    record = done_record(JOB, "jobs.odd", enqueued_at, time.monotonic(), 1)
    assert record["enqueued_at"] is None
    assert json.loads(record.json)["enqueued_at"] is None


@pytest.mark.parametrize("result", [None, 7, "text", {"n": [1, 2.5]}, object()])
def test_sqlite_keeps_the_parts_in_columns_and_reads_back_what_the_text_says(
    tmp_path: Path, result: Any
) -> None:
    """The parts go to the done row's columns as they are; the record read is the text's."""
    backend = SQLiteBackend(tmp_path / "parts.db")
    try:
        backend.put("q", b"{}", 5, 0, 60)
        job = backend.reserve(["q"], 0)
        assert job is not None
        record = done_record(job, "jobs.nämed", 1764377000.1234567, time.monotonic() - 0.5,
                             result)
        backend.complete(job, record, 60)
        assert record._json is None  # finishing the job made no record text
        assert backend.read_record("q", job.id) == {
            k: v for k, v in json.loads(record.json).items() if v is not None}
    finally:
        backend.close()


def test_times_are_whole_microseconds_whose_text_is_their_float() -> None:
    record = done_record(JOB, "jobs.x", 1764377000.5, time.monotonic() - 1.0, None)
    text = record.json
    for name in ("finished_at", "started_at"):
        digits = text.split(f'"{name}":', 1)[1].split(",", 1)[0]
        whole, _, micros = digits.partition(".")
        assert len(micros) == 6 and record[name] == int(whole + micros) / 1e6


@pytest.mark.parametrize("result", [{"n": (1, 2)}, object()])
def test_done_fields_hold_the_jobs_own_result_and_the_same_text(result: Any) -> None:
    fields = done_fields(JOB, "jobs.x", 1764377000.5, time.monotonic(), result)
    assert isinstance(fields, EncodedFields)
    assert fields["result"] is (result if type(result) is dict else None)
    assert json.loads(fields.json) == json.loads(json.dumps(dict(fields)))


def test_only_backends_that_say_so_get_the_text_alone(tmp_path: Path) -> None:
    sqlite = SQLiteBackend(tmp_path / "q.db")
    try:
        assert takes_done_records(sqlite) and not takes_done_records(MemoryBackend())
        for backend, kind in ((sqlite, DoneRecord), (MemoryBackend(), EncodedFields)):
            settler = JobSettler(backend, get_plugin_manager())
            assert backend.put_many("q", [PutItem(b'{"job": "jobs.x"}')])
            job = backend.reserve(["q"], 0)
            assert job is not None
            admitted = Admitted(decode(job.body), Job, 60.0)
            ack = settler.succeeded_later(job, admitted, time.monotonic(), 7)
            assert type(ack.fields) is kind and ack.fields["result"] == 7
    finally:
        sqlite.close()
