"""The record of a finished job, encoded once: its text must say what its fields say."""

from __future__ import annotations

import json
import math
import time
from enum import IntEnum
from typing import Any

import pytest

from kue.backend import Reservation
from kue.worker.done_record import done_record


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
