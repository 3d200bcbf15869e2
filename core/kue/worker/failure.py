"""What a failed attempt leaves behind: the error's type, message and traceback, capped.

The worker logs it (the JSON log format carries the traceback as a field) and hands it to the
``kue_job_failed`` and ``kue_job_buried`` hooks, so a record store can keep it with the job.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from kue.interrupts import TimeLimitExceeded

__all__ = ["TRACEBACK_LIMIT", "Failure"]

#: Most characters of a traceback kept; the end (where it was raised) is what is kept.
TRACEBACK_LIMIT = 8192


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as a person reading it later needs it."""

    type: str  #: the exception's qualified class name, e.g. ``builtins.RuntimeError``
    message: str  #: ``str(exc)``
    traceback: str  #: the formatted traceback, its last TRACEBACK_LIMIT characters

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """Describe ``exc``, with its traceback."""
        kind = TimeLimitExceeded if isinstance(exc, TimeLimitExceeded) else type(exc)
        text = "".join(traceback.format_exception(exc))
        if len(text) > TRACEBACK_LIMIT:
            text = "...\n" + text[-TRACEBACK_LIMIT:]
        return cls(f"{kind.__module__}.{kind.__qualname__}", str(exc), text)

    @property
    def summary(self) -> str:
        """``Type: message`` on one line, as bury reasons and log lines show it."""
        name = self.type.rpartition(".")[2]
        first = self.message.splitlines()[0] if self.message else ""
        return f"{name}: {first}" if first else name

    def as_dict(self) -> dict[str, str]:
        """The fields as a JSON-able mapping."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback}
