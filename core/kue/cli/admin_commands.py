"""What each ``kue`` subcommand does, given parsed arguments; printing stays here too.

Each command returns the process's exit status: 0 done, 1 nothing found (``peek`` of an empty
state, ``delete`` of an unknown id), like grep. Errors are raised and reported by ``main``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

from kue.backend import Backend, JobInfo
from kue.cli.admin_backends import describe_url, format_capabilities, installed_backends
from kue.config import Settings, backend_name, load_settings
from kue.errors import ConfigError, KueError
from kue.plugins import get_plugin_manager, open_backend
from kue.queue import Queue

__all__ = ["COMMANDS", "EXIT_NOT_FOUND", "EXIT_OK", "parse_json_body"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Settings, Backend]]:
    """The configured backend (``--url``, KUE_URL, kue.toml, ...), closed afterwards."""
    settings = load_settings({"url": args.url})
    backend = open_backend(backend_name(settings.url), settings.url, settings.options)
    try:
        yield settings, backend
    finally:
        backend.close()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(text: str) -> bytes:
    """``text`` checked as JSON and re-encoded compactly; ValueError says what is wrong.

    Re-encoding (rather than putting the parsed value) keeps a JSON string a JSON string:
    ``'"hi"'`` is put as the 4 bytes ``"hi"``, not as ``hi``.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"BODY is not valid JSON: {exc}") from None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _body_text(body: bytes) -> str | None:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def cmd_backends(args: argparse.Namespace, out: TextIO) -> int:
    """List installed backends; with ``--url``, open that one and show what it reports."""
    pm = get_plugin_manager()
    if args.url:
        rows = [describe_url(args.url, load_settings({"url": args.url}).options, pm)]
    else:
        try:
            configured: str | None = load_settings().backend
        except ConfigError:
            configured = None  # a broken config must not hide what is installed
        rows = installed_backends(configured, pm)
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=2, default=str), file=out)
        return EXIT_OK
    for row in rows:
        mark = "  (configured)" if row.configured else ""
        print(f"{row.name}{mark}  [{row.distribution}: {row.module}]", file=out)
        if row.capabilities is None:
            print(f"    {row.note}", file=out)
        else:
            for line in format_capabilities(row.capabilities):
                print(f"    {line}", file=out)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    """Counts per state of the named queues (default: the configured ones)."""
    with _opened(args) as (settings, backend):
        names = args.queues or settings.queues
        stats = {name: Queue(backend, name).stats() for name in names}
    if args.json:
        doc = {name: {"ready": s.ready, "delayed": s.delayed, "reserved": s.reserved,
                      "buried": s.buried} for name, s in stats.items()}
        print(json.dumps(doc, indent=2), file=out)
        return EXIT_OK
    header = ("queue", "ready", "delayed", "reserved", "buried")
    rows = [(n, *(str(v) for v in (s.ready, s.delayed, s.reserved, s.buried)))
            for n, s in stats.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                       strict=True))]
        print("  ".join(cells).rstrip(), file=out)
    return EXIT_OK


def cmd_put(args: argparse.Namespace, out: TextIO) -> int:
    """Put BODY on QUEUE and print the new job's id."""
    text = sys.stdin.read() if args.body == "-" else args.body
    body = parse_json_body(text) if args.json else text.encode()
    with _opened(args) as (_, backend):
        job_id = Queue(backend, args.queue).put(
            body, priority=args.priority, delay=args.delay, ttr=args.ttr
        )
    print(job_id, file=out)
    return EXIT_OK


def _peek_json(info: JobInfo) -> dict[str, Any]:
    text = _body_text(info.body)
    doc: dict[str, Any] = {"id": info.id, "queue": info.queue, "state": str(info.state),
                           "priority": info.priority, "attempts": info.attempts, "body": text}
    if text is None:
        doc["body_hex"] = info.body.hex()
    return doc


def cmd_peek(args: argparse.Namespace, out: TextIO) -> int:
    """Show the next job in a state without reserving it; exit 1 if there is none."""
    with _opened(args) as (_, backend):
        info = Queue(backend, args.queue).peek(args.state)
    if info is None:
        print(f"queue {args.queue!r} has no {args.state} job", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(_peek_json(info), indent=2), file=out)
        return EXIT_OK
    text = _body_text(info.body)
    fields = [("id", info.id), ("queue", info.queue), ("state", str(info.state)),
              ("priority", str(info.priority)), ("attempts", str(info.attempts)),
              ("body", repr(info.body) if text is None else text)]
    for key, value in fields:
        print(f"{key + ':':<10}{value}", file=out)
    return EXIT_OK


def cmd_kick(args: argparse.Namespace, out: TextIO) -> int:
    """Move up to N buried jobs (or, with none buried, delayed jobs) to ready."""
    with _opened(args) as (_, backend):
        moved = Queue(backend, args.queue).kick(args.count)
    print(f"kicked {moved} job{'' if moved == 1 else 's'} on queue {args.queue!r}", file=out)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    """Delete a job by id, on backends that offer ``delete_by_id(queue, job_id)``.

    The Backend protocol deletes only jobs the caller has reserved; a job sitting ready, delayed
    or buried can be deleted by id only where the backend adds that optional method.
    """
    with _opened(args) as (_, backend):
        delete_by_id = getattr(backend, "delete_by_id", None)
        if not callable(delete_by_id):
            raise KueError(
                f"the {backend.capabilities.name} backend cannot delete a job it has not "
                "reserved (it has no delete_by_id); reserve it from Python and delete() it, "
                "or let a worker run it"
            )
        found = delete_by_id(args.queue, args.job_id)
    if found is False:
        print(f"queue {args.queue!r} has no job {args.job_id}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(f"deleted job {args.job_id} from queue {args.queue!r}", file=out)
    return EXIT_OK


#: Subcommand name -> its function, for ``main``.
COMMANDS = {
    "backends": cmd_backends,
    "stats": cmd_stats,
    "put": cmd_put,
    "peek": cmd_peek,
    "kick": cmd_kick,
    "delete": cmd_delete,
}
