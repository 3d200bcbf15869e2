"""The ``kue`` commands for when something failed: status, queues, buried and retry.

``status`` reads a job's record (:mod:`kue.status`); ``queues``, ``buried`` and ``retry`` use the
optional backend protocols of :mod:`kue.listing`, and say so plainly on a backend without them.
Exit statuses as in :mod:`kue.cli.admin_commands`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from typing import Any, TextIO

from kue.backend import JobInfo
from kue.cli.admin_commands import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    body_fields,
    connected,
    print_counts,
    shorten,
)
from kue.codec import DecodeError, decode
from kue.config import load_settings
from kue.errors import KueError, Unsupported
from kue.listing import JobBrowser, QueueListing, declared_unsupported
from kue.queue import Queue
from kue.records import NOTES_TTL, JobStatus, RecordState

__all__ = ["COMMANDS", "DEFAULT_LIMIT", "describe_time", "status_json"]

#: Buried jobs ``kue buried`` shows when no ``--limit`` is given.
DEFAULT_LIMIT = 20


# -- formatting -------------------------------------------------------------------------------


def _span(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def describe_time(when: float, now: float) -> str:
    """An epoch time as local date and time with its offset, and how long ago or ahead."""
    stamp = datetime.fromtimestamp(when).astimezone().isoformat(sep=" ", timespec="seconds")
    delta = now - when
    relative = f"{_span(delta)} ago" if delta >= 0 else f"in {_span(-delta)}"
    return f"{stamp} ({relative})"


def _error_type(error: dict[str, Any]) -> str:
    kind = str(error.get("type", "?"))
    return kind.removeprefix("builtins.")


def _error_lines(error: dict[str, Any], verbose: bool) -> list[tuple[str, str]]:
    """``error``, ``reason`` and with -v ``traceback`` rows of a record's last error."""
    message = str(error.get("message", ""))
    rows = [("error", f"{_error_type(error)}: {message}" if message else _error_type(error))]
    if error.get("reason"):
        rows.append(("reason", str(error["reason"])))
    if verbose and error.get("traceback"):
        rows.append(("traceback", "\n" + str(error["traceback"]).rstrip()))
    return rows


def _print_rows(rows: list[tuple[str, str]], out: TextIO, indent: str = "",
                width: int = 12) -> None:
    pad = indent + " " * width
    for key, value in rows:
        first, *rest = value.split("\n")
        print(f"{indent}{key + ':':<{width}}{first}".rstrip(), file=out)
        for line in rest:
            print(f"{pad}{line}".rstrip(), file=out)


def _job_call(info: JobInfo, full: bool) -> tuple[str, str, str | None]:
    """(label, text) showing what the job runs: its name and arguments, or its body; and name."""
    try:
        envelope = decode(info.body)
    except DecodeError:
        return "body", body_fields(info.body, full)[0], None
    arguments = json.dumps(envelope.args, ensure_ascii=False)
    if envelope.kwargs:
        arguments += " " + json.dumps(envelope.kwargs, ensure_ascii=False)
    shown, cut = shorten(arguments, full)
    if cut:
        shown += f"... ({len(arguments) - len(shown)} more characters; --full shows all)"
    return "job", f"{envelope.job} {shown}", envelope.job


# -- kue status -------------------------------------------------------------------------------


def status_json(status: JobStatus) -> dict[str, Any]:
    """Every field of a status as a JSON-able dict (the state as its name)."""
    doc = dataclasses.asdict(status)
    doc["state"] = status.state.value
    return doc


def _status_rows(st: JobStatus, verbose: bool, full: bool) -> list[tuple[str, str]]:
    now = time.time()
    rows = [("id", st.id), ("queue", st.queue), ("state", st.state.value)]
    if st.name:
        rows.append(("job", st.name))
    rows.append(("attempts", str(st.attempts)))
    if st.priority is not None:
        rows.append(("priority", str(st.priority)))
    times = [("enqueued", st.enqueued_at), ("started", st.started_at),
             ("finished", st.finished_at)]
    if st.state is RecordState.DELAYED:
        times.append(("due", st.due_at))
    elif st.state is RecordState.RESERVED:
        times.append(("lease ends", st.due_at))
    elif st.state is RecordState.BURIED:
        buried_at = st.extra.get("buried_at")
        times.append(("buried", buried_at if isinstance(buried_at, int | float) else None))
    rows += [(label, describe_time(t, now)) for label, t in times if t is not None]
    if st.progress is not None:
        note = f" {st.progress_note}" if st.progress_note else ""
        rows.append(("progress", f"{st.progress:.0%}{note}"))
    if st.state is RecordState.DONE:
        if st.extra.get("result_error"):
            rows.append(("result", f"(not kept: {st.extra['result_error']})"))
        else:
            text = json.dumps(st.result, ensure_ascii=False)
            shown, cut = shorten(text, full)
            more = f"... ({len(text) - len(shown)} more characters; --full shows all)"
            rows.append(("result", shown + more if cut else shown))
    if st.error:
        rows += _error_lines(st.error, verbose)
    return rows


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    """Show a job's status by id; exit 1 if nothing is known of it."""
    names = [args.queue] if args.queue else load_settings({"url": args.url}).queues
    found: JobStatus | None = None
    with connected(args, names[0]) as queue:
        for name in names:
            found = queue.records.status(name, args.job_id)
            if found is not None:
                break
    if found is None:
        where = f"queue {names[0]!r}" if len(names) == 1 else \
            f"queues {', '.join(repr(n) for n in names)}"
        print(f"nothing is known of job {args.job_id} on {where} (a wrong id or queue, or "
              "its record expired)", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(status_json(found), indent=2, default=str), file=out)
        return EXIT_OK
    _print_rows(_status_rows(found, args.verbose, args.full), out)
    return EXIT_OK


# -- kue queues -------------------------------------------------------------------------------


def cmd_queues(args: argparse.Namespace, out: TextIO) -> int:
    """Every queue the backend lists, with its counts."""
    with connected(args) as queue:
        backend = queue.backend
        if not isinstance(backend, QueueListing):
            raise KueError(
                f"the {backend.capabilities.name} backend cannot list its queues (it has no "
                "list_queues); kue stats QUEUE... counts the queues you name"
            )
        stats = {name: backend.stats(name) for name in backend.list_queues()}
    if not stats and not args.json:
        print("no queues", file=out)
        return EXIT_OK
    print_counts(stats, args.json, out)
    return EXIT_OK


# -- kue buried -------------------------------------------------------------------------------


def _buried_page(queue: Queue, limit: int, offset: int) -> tuple[list[JobInfo], str | None]:
    """A page of buried jobs, newest first, and a note if the backend can show only some.

    A backend that cannot list them but can peek shows the one buried longest ago.
    """
    backend = queue.backend
    name = backend.capabilities.name
    reason = declared_unsupported(backend).get("buried")
    if isinstance(backend, JobBrowser) and reason is None:
        return backend.buried(queue.name, limit, offset), None
    reason = reason or "listing buried jobs (it has no buried method)"
    if not backend.capabilities.peek:
        buried = queue.stats().buried
        raise KueError(
            f"the {name} backend does not support {reason}; {buried} "
            f"job{'' if buried == 1 else 's'} buried on queue {queue.name!r} (kue stats counts "
            f"them); kue kick {queue.name} --all moves them back to ready"
        )
    note = (f"the {name} backend does not support {reason}; shown is only the job buried "
            "longest ago, the next one kue kick moves")
    oldest = queue.peek("buried") if offset == 0 else None
    return ([] if oldest is None else [oldest]), note


def _buried_json(queue: Queue, info: JobInfo, full: bool) -> dict[str, Any]:
    st = queue.records.status(queue.name, info.id)
    try:
        job_name: str | None = decode(info.body).job
    except DecodeError:
        job_name = None
    buried_at = st.extra.get("buried_at") if st is not None else None
    doc: dict[str, Any] = {
        "id": info.id, "name": job_name, "priority": info.priority, "attempts": info.attempts,
        "buried_at": buried_at, "error": st.error if st is not None else None,
    }
    doc.update(body_fields(info.body, full)[1])
    return doc


def _print_buried(queue: Queue, info: JobInfo, args: argparse.Namespace, out: TextIO) -> None:
    st = queue.records.status(queue.name, info.id)
    head = [info.id]
    buried_at = st.extra.get("buried_at") if st is not None else None
    if isinstance(buried_at, int | float):
        head.append(f"buried {describe_time(buried_at, time.time())}")
    head += [f"attempts {info.attempts}", f"priority {info.priority}"]
    print("  ".join(head), file=out)
    label, text, _ = _job_call(info, args.full)
    rows = [(label, text)]
    if st is not None and st.error:
        rows += _error_lines(st.error, args.verbose)
    elif queue.records.store is None:
        rows.append(("error", f"(not kept: the {queue.capabilities.name} backend keeps no "
                              "job records; a results URL in the configuration keeps them)"))
    else:
        rows.append(("error", "(none kept: buried by hand, or its record expired)"))
    _print_rows(rows, out, indent="    ", width=8)


def cmd_buried(args: argparse.Namespace, out: TextIO) -> int:
    """A page of a queue's buried jobs, newest first, with their last errors."""
    if args.limit < 1:
        raise ValueError(f"--limit {args.limit} must be at least 1")
    if args.offset < 0:
        raise ValueError(f"--offset {args.offset} must be at least 0")
    with connected(args, args.queue) as queue:
        jobs, note = _buried_page(queue, args.limit, args.offset)
        total = queue.stats().buried
        if args.json:
            doc = {"queue": queue.name, "buried": total, "offset": args.offset,
                   "limit": args.limit, "complete": note is None, "note": note,
                   "jobs": [_buried_json(queue, info, args.full) for info in jobs]}
            print(json.dumps(doc, indent=2, default=str), file=out)
            return EXIT_OK
        if note is not None:
            print(f"note: {note}", file=sys.stderr)
        if not jobs:
            past = f" past the first {args.offset}" if args.offset and total else ""
            print(f"queue {queue.name!r} has no buried jobs{past}", file=out)
            return EXIT_OK
        first, last = args.offset + 1, args.offset + len(jobs)
        if note is None:
            print(f"queue {queue.name!r}: {total} buried, newest first; showing "
                  f"{first}-{last}", file=out)
        else:
            print(f"queue {queue.name!r}: {total} buried; showing the one buried longest ago",
                  file=out)
        for info in jobs:
            print(file=out)
            _print_buried(queue, info, args, out)
        if note is None and last < total:
            print(f"\nnext page: kue buried {queue.name} --offset {last}"
                  + (f" --limit {args.limit}" if args.limit != DEFAULT_LIMIT else ""), file=out)
    return EXIT_OK


# -- kue retry --------------------------------------------------------------------------------


def cmd_retry(args: argparse.Namespace, out: TextIO) -> int:
    """Move one buried job back to ready by id; exit 1 if the queue has no such buried job."""
    with connected(args, args.queue) as queue:
        backend = queue.backend
        name = backend.capabilities.name
        reason = declared_unsupported(backend).get("kick_job")
        if not isinstance(backend, JobBrowser) or reason is not None:
            raise KueError(
                f"the {name} backend does not support "
                f"{reason or 'kicking one job by id (it has no kick_job)'}"
                + ("" if reason and "kue kick" in reason else
                   f"; kue kick {args.queue} N moves the jobs buried longest ago")
            )
        try:
            moved = backend.kick_job(args.queue, args.job_id)
        except Unsupported as exc:
            raise KueError(f"the {name} backend does not support {exc.feature}") from exc
        if moved:
            if queue.records.store is not None and not queue.records.native:
                # A results store cannot see the queue: tell it the job waits again.
                queue.records.write(args.queue, args.job_id, {"state": "ready"}, NOTES_TTL)
            print(f"job {args.job_id} on queue {args.queue!r} is ready again", file=out)
            return EXIT_OK
        st = queue.records.status(args.queue, args.job_id)
    why = "no such job" if st is None else f"it is {st.state.value}"
    print(f"queue {args.queue!r} has no buried job {args.job_id} ({why})", file=sys.stderr)
    return EXIT_NOT_FOUND


#: Subcommand name -> its function, for ``main``.
COMMANDS = {
    "status": cmd_status,
    "queues": cmd_queues,
    "buried": cmd_buried,
    "retry": cmd_retry,
}
