"""The record of a finished job, made once: its parts, its JSON text, its fields where asked.

Every job a worker finishes with records on writes this record with its delete, so it is
built for every job. The result is made into JSON text here, a scalar directly and anything
else by a JSON encoder made once. A backend that says it takes a
:class:`kue.records.DoneRecord` gets the parts, and makes the record's text only if it stores
text (formatted directly: the fixed names, the numbers, the job's name encoded once per name);
one that reads the fields gets them too (:class:`kue.records.EncodedFields`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from kue.backend import Reservation
from kue.records import DoneRecord, EncodedFields, done_json, done_members, enqueued_json

__all__ = ["done_fields", "done_record", "result_json"]

log = logging.getLogger("kue.worker")

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: ``_encode`` without its per-call setup (it makes a new C encoder each time: two thirds of
#: the cost of a small result such as ``{"n": 1}``): the C encoder made once. It keeps no
#: record of the containers it is in, so a result that holds itself ends in RecursionError,
#: which done_record catches as it does the encoder's other refusals. None where the C
#: accelerator is missing.
_c_encode: Callable[[Any, int], Any] | None = (
    None if c_make_encoder is None else c_make_encoder(
        None, _not_json, encode_basestring_ascii, None, ":", ",", False, False, False)
)

#: JSON text of the results jobs return most, as ``json.dumps`` writes them, without the
#: encoder's per-call work. Exact types only: a bool is not an int here, an IntEnum not either.
_SCALARS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "null",
    bool: lambda v: "true" if v else "false",
    int: int.__repr__,
    str: encode_basestring_ascii,
}


def result_json(result: Any) -> str:
    """The JSON text of a job's result; TypeError or ValueError if JSON cannot hold it."""
    scalar = _SCALARS.get(type(result))
    if scalar is not None:
        return scalar(result)
    if type(result) is float and math.isfinite(result):
        return float.__repr__(result)
    if _c_encode is not None:
        return "".join(_c_encode(result, 0))
    return _encode(result)


def _why_not_kept(job: Reservation, name: str, exc: Exception) -> str:
    """Why a result is kept as None (JSON cannot hold it); the log says it too.

    The job succeeded; only its value cannot be kept.
    """
    log.warning("job %s %s returned a value that is not JSON-able (%s); its record keeps "
                "None", name, job.id, exc)
    return f"not JSON-able: {exc}"


def done_record(job: Reservation, name: str, enqueued_at: float, started: float,
                result: Any) -> DoneRecord:
    """The record of ``job``, finished now after starting at ``started`` (monotonic clock).

    Its times are whole microseconds; only the result is made into text here, the rest when
    a backend asks for the record's JSON. A result JSON cannot hold is kept as None, with the
    reason in ``result_error``.
    """
    finished = time.time_ns() // 1000
    began = finished - int((time.monotonic() - started) * 1e6)
    try:
        value = result_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        return DoneRecord(job.attempts, job.priority, finished, began, name, enqueued_at,
                          "null", _why_not_kept(job, name, exc))
    return DoneRecord(job.attempts, job.priority, finished, began, name, enqueued_at, value)


def done_fields(job: Reservation, name: str, enqueued_at: float, started: float,
                result: Any) -> EncodedFields:
    """As :func:`done_record`, as the dict of the record's fields with the same text.

    For a backend that reads the fields rather than the text (see
    :func:`kue.records.takes_done_records`): the result is the job's own value, the times
    the floats the text says.
    """
    finished = time.time_ns() // 1000
    began = finished - int((time.monotonic() - started) * 1e6)
    enqueued = enqueued_json(enqueued_at)
    fields = {
        "state": "done", "attempts": job.attempts, "priority": job.priority,
        "finished_at": finished / 1e6, "started_at": began / 1e6, "name": name,
        "enqueued_at": None if enqueued == "null" else float(enqueued),
        "error": None, "result": result,
    }
    error = None
    try:
        value = result_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        fields["result"] = None
        fields["result_error"] = error = _why_not_kept(job, name, exc)
        value = "null"
    return EncodedFields(fields, done_json(job.attempts, job.priority, done_members(
        finished, began, name, enqueued, value, error)))
