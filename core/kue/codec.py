"""The JSON envelope a Job travels in. No pickle: a body can only name a registered job.

``{"job": name, "args": [...], "kwargs": {...}, "attempt": n, "enqueued_at": epoch seconds,
"id": client-chosen id}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kue.errors import DecodeError

__all__ = ["DecodeError", "Envelope", "decode", "encode"]



@dataclass(frozen=True)
class Envelope:
    """A job's name and arguments, as they travel."""

    job: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    enqueued_at: float = 0.0
    id: str = ""



def encode(envelope: Envelope) -> bytes:
    """Compact JSON bytes; a TypeError names the argument that is not JSON-able."""
    doc = {
        "job": envelope.job,
        "args": envelope.args,
        "kwargs": envelope.kwargs,
        "attempt": envelope.attempt,
        "enqueued_at": envelope.enqueued_at,
        "id": envelope.id,
    }
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"the arguments of job {envelope.job!r} must be JSON-able "
            f"(str, int, float, bool, None, list, dict): {exc}"
        ) from exc


def decode(body: bytes) -> Envelope:
    """Parse an envelope; DecodeError says what is wrong with it."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"body is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("job"), str):
        raise DecodeError("body is JSON but not a kue envelope (no string 'job' field)")
    args, kwargs = doc.get("args", []), doc.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise DecodeError("envelope 'args' must be a list and 'kwargs' an object")
    attempt, enqueued_at = doc.get("attempt", 0), doc.get("enqueued_at", 0.0)
    if not isinstance(attempt, int) or not isinstance(enqueued_at, int | float):
        raise DecodeError("envelope 'attempt' must be an int and 'enqueued_at' a number")
    return Envelope(
        job=doc["job"],
        args=args,
        kwargs=kwargs,
        attempt=attempt,
        enqueued_at=float(enqueued_at),
        id=str(doc.get("id", "")),
    )
