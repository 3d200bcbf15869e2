"""Where a job lives on disk: one JSON file whose directory is its state and whose name sorts it.

A queue is a directory with one subdirectory per state (``ready``, ``delayed``, ``reserved``,
``buried``), a ``tmp`` directory for files being written, and a ``.lock`` file. A job is one
JSON file holding what never changes (id, ttr, body). Everything that does change is in the
file's name::

    {key:020d}.{seq:020d}.{priority:010d}.{attempts:010d}.json

so every state change is a single ``rename(2)``, which is atomic: whenever a process dies, each
job is in exactly one state. ``key`` orders a directory so that sorting names sorts jobs: the
priority in ``ready`` (then ``seq``, the put order), the due time in microseconds in ``delayed``
and ``reserved``, the bury order in ``buried``.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kue.spi import JobState

__all__ = [
    "Entry",
    "QueueDir",
    "due_key",
    "new_record",
    "read_record",
    "record_body",
    "write_record",
]

_WIDTHS = (20, 20, 10, 10)
_SUFFIX = ".json"


@dataclass(frozen=True)
class Entry:
    """What a job file's name says: its sort key, put order, priority and attempts so far."""

    key: int
    seq: int
    priority: int
    attempts: int

    @property
    def name(self) -> str:
        """The file name that encodes this entry."""
        fields = zip((self.key, self.seq, self.priority, self.attempts), _WIDTHS, strict=True)
        return ".".join(f"{value:0{width}d}" for value, width in fields) + _SUFFIX

    @classmethod
    def parse(cls, name: str) -> Entry:
        """The entry a file name encodes (names come only from :attr:`name`)."""
        key, seq, priority, attempts = (int(part) for part in name[: -len(_SUFFIX)].split("."))
        return cls(key, seq, priority, attempts)

    def ready(self) -> Entry:
        """The same job as it is named in ``ready``: keyed by its priority."""
        return Entry(self.priority, self.seq, self.priority, self.attempts)


def due_key(microseconds: int) -> str:
    """The prefix a name keyed by this time has: names below it are due."""
    return f"{microseconds:0{_WIDTHS[0]}d}"


class QueueDir:
    """The directories of one queue under a store's root; created on first use."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.path = root / name
        self.lock = self.path / ".lock"
        self.tmp = self.path / "tmp"
        for state in JobState:
            (self.path / state.value).mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)

    def dir(self, state: JobState) -> Path:
        """The directory of jobs in ``state``."""
        return self.path / state.value

    def names(self, state: JobState) -> list[str]:
        """The job file names in ``state``, unsorted."""
        return [n for n in os.listdir(self.dir(state)) if n.endswith(_SUFFIX)]

    def first(self, state: JobState) -> Entry | None:
        """The job that leaves ``state`` next, or None if there is none."""
        names = self.names(state)
        return Entry.parse(min(names)) if names else None

    def find(self, state: JobState, seq: int) -> Entry | None:
        """The job ``seq`` if it is in ``state`` (a reserved directory holds only a few)."""
        for name in self.names(state):
            entry = Entry.parse(name)
            if entry.seq == seq:
                return entry
        return None

    def move(self, entry: Entry, state: JobState, to: Entry, to_state: JobState) -> None:
        """Rename the job's file into its new state and name, in one atomic step."""
        os.rename(self.dir(state) / entry.name, self.dir(to_state) / to.name)

    def file(self, state: JobState, entry: Entry) -> Path:
        """The path of the job's file."""
        return self.dir(state) / entry.name


def write_record(queue: QueueDir, state: JobState, entry: Entry, record: dict[str, Any]) -> None:
    """Write a new job's file under ``tmp`` and rename it into place, so no reader sees half."""
    tmp = queue.tmp / f"{entry.seq}-{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(json.dumps(record, ensure_ascii=False).encode())
    os.rename(tmp, queue.file(state, entry))


def read_record(queue: QueueDir, state: JobState, entry: Entry) -> dict[str, Any]:
    """The JSON document of a job's file."""
    document: dict[str, Any] = json.loads(queue.file(state, entry).read_bytes())
    return document


def new_record(job_id: str, body: bytes, ttr: float) -> dict[str, Any]:
    """The document of a new job: its body as text when it is UTF-8, else as base64."""
    try:
        return {"id": job_id, "ttr": ttr, "body": body.decode(), "encoding": "utf-8"}
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode()
        return {"id": job_id, "ttr": ttr, "body": text, "encoding": "base64"}


def record_body(record: dict[str, Any]) -> bytes:
    """The body bytes a job's document holds."""
    text = str(record["body"])
    return base64.b64decode(text) if record["encoding"] == "base64" else text.encode()
