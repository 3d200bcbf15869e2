"""What each ``kue`` subcommand does, given parsed arguments; printing stays here too.

Each command returns the process's exit status: 0 done, 1 nothing found (``peek`` of an empty
state, ``delete`` of an unknown id), like grep. Errors are raised and reported by ``main``.
The commands about job records and buried jobs are in :mod:`kue.cli.admin_records`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, TextIO

from kue.backend import Backend, JobInfo, QueueStats
from kue.cli.admin_backends import describe_url, format_capabilities, installed_backends
from kue.config import Settings, backend_name, load_settings
from kue.errors import ConfigError, KueError, Unsupported
from kue.job import Job
from kue.plugins import get_plugin_manager, open_backend
from kue.queue import Queue, connect

__all__ = [
    "COMMANDS",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "KICK_BATCH",
    "TRUNCATE_AT",
    "body_fields",
    "connected",
    "kick_all",
    "parse_json_body",
    "print_counts",
    "shorten",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
#: Characters of a body (or result) shown before it is cut short, unless ``--full``.
TRUNCATE_AT = 200
#: Most jobs one ``kick`` call of ``kue kick --all`` moves.
KICK_BATCH = 1000


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[Settings, Backend]]:
    """The configured backend (``--url``, KUE_URL, kue.toml, ...), closed afterwards."""
    settings = load_settings({"url": args.url})
    backend = open_backend(backend_name(settings.url), settings.url, settings.options)
    try:
        yield settings, backend
    finally:
        backend.close()


@contextmanager
def connected(args: argparse.Namespace, queue: str = "default") -> Iterator[Queue]:
    """``kue.connect()`` to the configured backend (with its ``results`` store), closed after."""
    opened = connect(args.url, queue=queue)
    try:
        yield opened
    finally:
        opened.close()


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


def shorten(text: str, full: bool) -> tuple[str, bool]:
    """``text`` cut to :data:`TRUNCATE_AT` characters unless ``full``; and whether it was."""
    if full or len(text) <= TRUNCATE_AT:
        return text, False
    return text[:TRUNCATE_AT], True


def _more(text: str, shown: str) -> str:
    return f"... ({len(text) - len(shown)} more characters; --full shows all)"


def body_fields(body: bytes, full: bool) -> tuple[str, dict[str, Any]]:
    """A body as one line of text for people, and as JSON fields, cut short unless ``full``.

    The JSON has ``body`` (the text, or None if it is not UTF-8, with ``body_hex`` instead)
    and, when cut short, ``body_truncated: true`` and ``body_size`` in bytes.
    """
    text = _body_text(body)
    whole = body.hex() if text is None else text
    shown, cut = shorten(whole, full)
    doc: dict[str, Any] = {"body": shown if text is not None else None}
    if text is None:
        doc["body_hex"] = shown
    if cut:
        doc["body_truncated"] = True
        doc["body_size"] = len(body)
    line = shown if text is not None else f"(not UTF-8, {len(body)} bytes) hex {shown}"
    return (line + _more(whole, shown) if cut else line), doc


def print_counts(stats: Mapping[str, QueueStats], as_json: bool, out: TextIO) -> None:
    """Counts per queue: a table, or a JSON object of one object per queue."""
    if as_json:
        doc = {name: {"ready": s.ready, "delayed": s.delayed, "reserved": s.reserved,
                      "buried": s.buried} for name, s in stats.items()}
        print(json.dumps(doc, indent=2), file=out)
        return
    header = ("queue", "ready", "delayed", "reserved", "buried")
    rows = [(n, *(str(v) for v in (s.ready, s.delayed, s.reserved, s.buried)))
            for n, s in stats.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                       strict=True))]
        print("  ".join(cells).rstrip(), file=out)


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
    print_counts(stats, args.json, out)
    return EXIT_OK


def _json_argument(option: str, text: str, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """The value of a JSON option, which must be an array (list) or an object (dict)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        want = """array, e.g. '[1, "two"]'""" if kind is list else """object, e.g. '{"hd": true}'"""
        raise ValueError(f"{option} must be a JSON {want}; got {text!r}")
    return value


def _named_job(name: str, args: list[Any], kwargs: dict[str, Any]) -> Job:
    """A Job that travels as an envelope naming ``name``, built without registering anything.

    The worker looks the name up in its own registry; here it only names the job.
    """

    class Named(Job, register=False):
        pass

    Named.name = name
    return Named(*args, **kwargs)


def _put_job(args: argparse.Namespace, out: TextIO) -> int:
    """``kue put QUEUE --job NAME``: push a kue envelope, as ``Queue.push`` does."""
    if args.body is not None:
        raise ValueError("give BODY or --job NAME, not both")
    if args.json:
        raise ValueError("--json checks a plain BODY; a --job envelope is always JSON")
    name = args.job.strip()
    if not name:
        raise ValueError("--job needs the name of a registered job, e.g. app.send_welcome")
    job = _named_job(
        name,
        _json_argument("--args", args.args or "[]", list),
        _json_argument("--kwargs", args.kwargs or "{}", dict),
    )
    with connected(args, args.queue) as queue:
        # push stamps the envelope with a fresh id and the time, fires kue_job_pushed and
        # notes the job in a results store that cannot see the queue.
        handle = queue.push(job, priority=args.priority, delay=args.delay, ttr=args.ttr)
    print(handle, file=out)
    return EXIT_OK


def cmd_put(args: argparse.Namespace, out: TextIO) -> int:
    """Put a job on QUEUE (a kue envelope with --job, else BODY) and print its id."""
    if args.job is not None:
        return _put_job(args, out)
    if args.args is not None or args.kwargs is not None:
        raise ValueError("--args and --kwargs go with --job NAME")
    if args.body is None:
        raise ValueError(
            "give --job NAME (with --args JSON) for a job a kue worker runs, or a plain BODY"
        )
    text = sys.stdin.read() if args.body == "-" else args.body
    body = parse_json_body(text) if args.json else text.encode()
    with _opened(args) as (_, backend):
        job_id = Queue(backend, args.queue).put(
            body, priority=args.priority, delay=args.delay, ttr=args.ttr
        )
    print(job_id, file=out)
    return EXIT_OK


def _peek_json(info: JobInfo, full: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": info.id, "queue": info.queue, "state": str(info.state),
                           "priority": info.priority, "attempts": info.attempts}
    doc.update(body_fields(info.body, full)[1])
    return doc


def cmd_peek(args: argparse.Namespace, out: TextIO) -> int:
    """Show the next job in a state without reserving it; exit 1 if there is none."""
    with _opened(args) as (_, backend):
        info = Queue(backend, args.queue).peek(args.state)
    if info is None:
        print(f"queue {args.queue!r} has no {args.state} job", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(_peek_json(info, args.full), indent=2), file=out)
        return EXIT_OK
    fields = [("id", info.id), ("queue", info.queue), ("state", str(info.state)),
              ("priority", str(info.priority)), ("attempts", str(info.attempts)),
              ("body", body_fields(info.body, args.full)[0])]
    for key, value in fields:
        print(f"{key + ':':<10}{value}", file=out)
    return EXIT_OK


def kick_all(queue: Queue) -> int:
    """Kick every buried job of ``queue`` back to ready, and no delayed one; returns how many.

    ``kick`` moves delayed jobs once nothing is buried, so each round asks for at most the
    number ``stats`` counts buried (kick takes buried jobs first while any are left). Should
    others kick them all between the two calls, that one round moves delayed jobs instead.
    Where kick never moves delayed jobs (``kick_delayed`` False: SQS, whose counts lag) it
    simply runs until a kick moves nothing.
    """
    reaches_delayed = queue.capabilities.kick_delayed
    total = 0
    while True:
        batch = KICK_BATCH
        if reaches_delayed:
            batch = min(batch, queue.stats().buried)
            if batch == 0:
                return total
        try:
            moved = queue.kick(batch)
        except Unsupported:
            if reaches_delayed:
                raise
            return total  # SQS: nothing buried is left, only delayed jobs it cannot kick
        if moved == 0:
            return total
        total += moved


def cmd_kick(args: argparse.Namespace, out: TextIO) -> int:
    """Move up to N buried jobs (or, with none buried, delayed jobs) to ready; or all buried."""
    if args.all and args.count is not None:
        raise ValueError("give N or --all, not both")
    with connected(args, args.queue) as queue:
        if args.all:
            moved = kick_all(queue)
            what = "buried job"
        else:
            moved = queue.kick(1 if args.count is None else args.count)
            what = "job"
    print(f"kicked {moved} {what}{'' if moved == 1 else 's'} on queue {args.queue!r}", file=out)
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
