"""Log setup for workers: plain text or one JSON object per line (``--log-format json``).

Job log lines carry ``job``, ``id``, ``queue``, ``attempt`` and ``duration`` as fields, so a
JSON line can be filtered on them and a text line names them too.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from kue.backend import Reservation

__all__ = ["JOB_FIELDS", "JsonFormatter", "configure_logging", "job_fields"]

#: Fields a job's log records carry (through ``extra=``).
JOB_FIELDS = ("job", "id", "queue", "attempt", "duration")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message and any job fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for field in JOB_FIELDS:
            if hasattr(record, field):
                doc[field] = getattr(record, field)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
            doc["error_type"] = getattr(record.exc_info[0], "__qualname__", "?")
        return json.dumps(doc, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send kue's logs to stderr at ``level``, as ``text`` or ``json`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def job_fields(name: str, job: Reservation, duration: float | None = None) -> dict[str, object]:
    """The structured fields of a job's log line."""
    fields: dict[str, object] = {
        "job": name, "id": job.id, "queue": job.queue, "attempt": job.attempts,
    }
    if duration is not None:
        fields["duration"] = round(duration, 6)
    return fields
