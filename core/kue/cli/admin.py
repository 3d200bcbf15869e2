"""``kue``: look at and manage queues from the shell (backends, stats, put, peek, kick, delete).

Every command finds its backend the way ``kue-worker`` does: ``--url``, then ``KUE_URL``, then
``kue.toml``, then ``[tool.kue]`` in ``pyproject.toml``, then the SQLite file ``./kue.sqlite3``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from kue import __version__
from kue.backend import JobState
from kue.cli.admin_commands import COMMANDS, EXIT_OK
from kue.errors import KueError
from kue.job import DEFAULT_PRIORITY, DEFAULT_TTR

__all__ = ["EXIT_ERROR", "build_parser", "main"]

#: Exit status of a command that failed (bad input, unknown backend, server down).
EXIT_ERROR = 2
#: Errors that are the user's to fix: reported in one line, the traceback only with -v.
USER_ERRORS = (KueError, ValueError, OSError)

_DESCRIPTION = """\
Look at and manage kue queues: list backends, count jobs, put, peek, kick and delete.

The backend comes from --url, else KUE_URL, else kue.toml, else [tool.kue] in
pyproject.toml, else the SQLite file ./kue.sqlite3 (the same settings as kue-worker)."""

_EPILOG = """\
examples:
  kue backends
  kue stats --json
  kue put emails '{"to": "ada@example.com"}' --json --priority 10
  kue peek emails --state buried
  kue kick emails 5

exit status: 0 done, 1 nothing found (peek, delete), 2 error."""


_URL_HELP = (
    "backend URL, e.g. redis://localhost:6379/0 or sqlite:///kue.sqlite3 "
    "(default: KUE_URL, kue.toml, [tool.kue], else ./kue.sqlite3)"
)


def _common_options(
    parser: argparse.ArgumentParser, *, suppress: bool, url_help: str = _URL_HELP
) -> None:
    """--url and -v, accepted before or after the command name."""
    # On subcommands the defaults are suppressed so they do not overwrite a value given
    # before the command name (``kue --url X stats``).
    url_default: object = argparse.SUPPRESS if suppress else None
    verbose_default: object = argparse.SUPPRESS if suppress else False
    parser.add_argument("--url", metavar="URL", default=url_default, help=url_help)
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=verbose_default,
        help="on an error, print the full traceback as well as the message",
    )


def _subparser(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
    description: str, url_help: str = _URL_HELP,
) -> argparse.ArgumentParser:
    p = subs.add_parser(name, help=summary, description=description)
    _common_options(p, suppress=True, url_help=url_help)
    return p


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kue`` and its subcommands."""
    p = argparse.ArgumentParser(
        prog="kue", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(p, suppress=False)
    p.add_argument("--version", action="version", version=f"kue {__version__}",
                   help="print kue's version and exit")
    subs = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            title="commands")

    b = _subparser(
        subs, "backends", "list installed backends and their capabilities",
        "List the backends installed as kue.backends entry points, with the distribution "
        "that provides each. Capabilities are shown for the embedded backends (memory, "
        "sqlite), which are opened on a throwaway store; a server backend shows them only "
        "when --url names it, because reading them may connect to the server.",
        url_help="open the backend this URL names and show the capabilities it reports "
        "(may connect to its server); without it, list every installed backend",
    )
    _add_json(b, "the list")

    s = _subparser(
        subs, "stats", "count ready, delayed, reserved and buried jobs per queue",
        "Print a table of ready, delayed, reserved and buried jobs for each QUEUE.",
    )
    s.add_argument("queues", nargs="*", metavar="QUEUE",
                   help="queues to count (default: the configured queues, else 'default')")
    _add_json(s, "the counts, one object per queue,")

    put = _subparser(
        subs, "put", "put a job body on a queue and print its id",
        "Put BODY on QUEUE as it is (the bytes of the text), or checked as JSON with --json, "
        "and print the new job's id.",
    )
    put.add_argument("queue", metavar="QUEUE", help="queue to put the job on")
    put.add_argument("body", metavar="BODY", help="the job's body; - reads it from stdin")
    put.add_argument("--priority", type=int, default=DEFAULT_PRIORITY, metavar="N",
                     help=f"0 (most urgent) to 4294967295 (least) (default {DEFAULT_PRIORITY})")
    put.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                     help="seconds before the job becomes ready (default 0)")
    put.add_argument("--ttr", type=float, default=DEFAULT_TTR, metavar="SECONDS",
                     help="seconds a worker has to finish the job before it is handed to "
                     f"another (default {DEFAULT_TTR:g})")
    put.add_argument("--json", action="store_true",
                     help="parse BODY as JSON first and refuse it if it is not valid")

    peek = _subparser(
        subs, "peek", "show the next job in a state without reserving it",
        "Show the id, priority, state, attempts and body of the job that would leave STATE "
        "next. Nothing is reserved. Exits 1 if there is no such job.",
    )
    peek.add_argument("queue", metavar="QUEUE", help="queue to look at")
    peek.add_argument("--state", default="ready", metavar="STATE",
                      choices=[s.value for s in JobState if s is not JobState.RESERVED],
                      help="ready, delayed or buried (default ready)")
    _add_json(peek, "the job")

    kick = _subparser(
        subs, "kick", "move buried (or else delayed) jobs back to ready",
        "Move up to N jobs to ready: those buried longest ago, or, with none buried, the "
        "delayed jobs due soonest. Prints how many moved.",
    )
    kick.add_argument("queue", metavar="QUEUE", help="queue whose jobs to kick")
    kick.add_argument("count", nargs="?", type=int, default=1, metavar="N",
                      help="most jobs to move (default 1)")

    delete = _subparser(
        subs, "delete", "delete a job by id (on backends that support it)",
        "Delete the job ID from QUEUE whatever its state. Only backends that offer "
        "delete_by_id can do this; on others kue delete fails with a clear message. "
        "Exits 1 if the backend has no such job.",
    )
    delete.add_argument("queue", metavar="QUEUE", help="queue that holds the job")
    delete.add_argument("job_id", metavar="ID", help="the job's id, as put or peek printed it")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kue`` command; returns the exit status (0 done, 1 nothing found, 2 error)."""
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        return command(args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``kue backends | head -1``): not an error. Point stdout at
        # devnull so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        message = str(exc) if isinstance(exc, USER_ERRORS) else (
            f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)"
        )
        print(f"kue {args.command}: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
