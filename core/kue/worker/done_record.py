"""The record of a finished job, encoded once: the fields and their JSON text together.

Every job a worker finishes with records on writes this record with its delete, so it is
built for every job: the JSON text is formatted here directly (the fixed names, the numbers,
the job's name encoded once per name) and only a result that is not a scalar goes through
the JSON encoder, one made once. A backend that keeps records stores the text as it is
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
from kue.records import EncodedFields

__all__ = ["done_record"]

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


def done_record(job: Reservation, name: str, enqueued_at: float, started: float,
                result: Any) -> EncodedFields:
    """The record of ``job``, finished now after starting at ``started`` (monotonic clock).

    A result JSON cannot hold is kept as None, with the reason in ``result_error`` (the job
    succeeded; only its value cannot be kept).
    """
    now = time.time()
    started_at = now - (time.monotonic() - started)
    # An envelope's time is whatever its JSON said (json.loads takes Infinity too).
    enqueued = enqueued_at if enqueued_at and math.isfinite(enqueued_at) else None
    fields = {
        "state": "done", "finished_at": now, "started_at": started_at,
        "attempts": job.attempts, "priority": job.priority, "name": name,
        "enqueued_at": enqueued, "error": None, "result": result,
    }
    try:
        value = result_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        log.warning("job %s %s returned a value that is not JSON-able (%s); its record keeps "
                    "None", name, job.id, exc)
        fields["result"] = None
        fields["result_error"] = f"not JSON-able: {exc}"
        return EncodedFields(fields, _encode(fields))
    # One f-string: a finite float's repr is its JSON text, an int's decimal digits too.
    enqueued_json = "null" if enqueued is None else repr(enqueued)
    text = (f'{{"state":"done","finished_at":{now!r},"started_at":{started_at!r},'
            f'"attempts":{job.attempts:d},"priority":{job.priority:d},'
            f'"name":{_name_json(name)},"enqueued_at":{enqueued_json},'
            f'"error":null,"result":{value}}}')
    return EncodedFields(fields, text)
