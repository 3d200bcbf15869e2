"""The record of a finished job, encoded once: its JSON text, and its fields where asked.

Every job a worker finishes with records on writes this record with its delete, so it is
built for every job: the JSON text is formatted here directly (the fixed names, the numbers,
the job's name encoded once per name) and only a result that is not a scalar goes through
the JSON encoder, one made once. A backend that stores the text as it is gets the text alone
(:class:`kue.records.DoneRecord`); one that reads the fields gets them too
(:class:`kue.records.EncodedFields`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from kue.backend import Reservation
from kue.records import DoneRecord, EncodedFields, done_json

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


@functools.lru_cache(maxsize=256)
def _name_json(name: str) -> str:
    """A job's name as JSON text (a worker runs few job names, each many times)."""
    return encode_basestring_ascii(name)


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


def _enqueued_json(enqueued_at: float) -> str:
    """The envelope's time as JSON text; null for one JSON cannot hold or that is unset (0).

    A time of this era is written from its whole microseconds' digits, as the record's own
    times are: a float's repr costs twice as much, for digits below a microsecond that the
    clock that made it does not have. Any other finite value (json.loads takes Infinity too)
    is its repr, which is its JSON text.
    """
    if 1.0 <= enqueued_at < 1e12:
        e = str(int(enqueued_at * 1e6 + 0.5))
        return f"{e[:-6]}.{e[-6:]}"
    return repr(enqueued_at) if enqueued_at and math.isfinite(enqueued_at) else "null"


def _members(finished: int, began: int, name: str, enqueued: str, value: str) -> str:
    """The done record's members from ``"finished_at"`` on, closing brace included.

    ``finished`` and ``began`` are whole microseconds, their text made from the digits:
    cheaper than a float's repr, and exact (it parses to the float nearest the microseconds
    over 1e6). ``enqueued`` and ``value`` are JSON text already.
    """
    f, b = str(finished), str(began)
    return (f'"finished_at":{f[:-6]}.{f[-6:]},"started_at":{b[:-6]}.{b[-6:]},'
            f'"name":{_name_json(name)},"enqueued_at":{enqueued},"error":null,'
            f'"result":{value}}}')


def done_record(job: Reservation, name: str, enqueued_at: float, started: float,
                result: Any, *, row: bool = False) -> DoneRecord:
    """The record of ``job``, finished now after starting at ``started`` (monotonic clock).

    Its times are whole microseconds. A result JSON cannot hold is kept as None, with the
    reason in ``result_error``. With ``row`` the text made is :attr:`DoneRecord.row_json`
    (for a backend that stores that), else the whole record.
    """
    finished = time.time_ns() // 1000
    began = finished - int((time.monotonic() - started) * 1e6)
    try:
        value = result_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        value = 'null,"result_error":' + encode_basestring_ascii(_why_not_kept(job, name, exc))
    members = _members(finished, began, name, _enqueued_json(enqueued_at), value)
    if row:
        return DoneRecord.of_row("{" + members, job.attempts, job.priority)
    return DoneRecord(done_json(job.attempts, job.priority, members), job.attempts,
                      job.priority)


def done_fields(job: Reservation, name: str, enqueued_at: float, started: float,
                result: Any) -> EncodedFields:
    """As :func:`done_record`, as the dict of the record's fields with the same text.

    For a backend that reads the fields rather than the text (see
    :func:`kue.records.takes_done_records`): the result is the job's own value, the times
    the floats the text says.
    """
    finished = time.time_ns() // 1000
    began = finished - int((time.monotonic() - started) * 1e6)
    enqueued = _enqueued_json(enqueued_at)
    fields = {
        "state": "done", "attempts": job.attempts, "priority": job.priority,
        "finished_at": finished / 1e6, "started_at": began / 1e6, "name": name,
        "enqueued_at": None if enqueued == "null" else float(enqueued),
        "error": None, "result": result,
    }
    try:
        value = result_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        fields["result"] = None
        fields["result_error"] = _why_not_kept(job, name, exc)
        value = 'null,"result_error":' + encode_basestring_ascii(fields["result_error"])
    return EncodedFields(fields, done_json(job.attempts, job.priority,
                                           _members(finished, began, name, enqueued, value)))
