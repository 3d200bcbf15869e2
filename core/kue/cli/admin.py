"""``kue``: look at and manage queues and jobs from the shell.

Commands: backends, stats, queues, put, peek, status, buried, kick, retry, delete, schedules.

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
from kue.cli import admin_commands, admin_records, admin_schedules
from kue.cli.admin_commands import EXIT_OK
from kue.errors import KueError
from kue.job import DEFAULT_PRIORITY, DEFAULT_TTR
from kue.validation import check_queue_name

__all__ = ["COMMANDS", "EXIT_ERROR", "build_parser", "main"]

#: Subcommand name -> its function.
COMMANDS = {**admin_commands.COMMANDS, **admin_records.COMMANDS,
            **admin_schedules.COMMANDS}

#: Exit status of a command that failed (bad input, unknown backend, server down).
EXIT_ERROR = 2
#: Errors that are the user's to fix: reported in one line, the traceback only with -v.
USER_ERRORS = (KueError, ValueError, OSError)

_DESCRIPTION = """\
Look at and manage kue queues and jobs: list backends and queues, count jobs, put,
peek, ask a job's status, list buried jobs, kick or retry them, and delete.

The backend comes from --url, else KUE_URL, else kue.toml, else [tool.kue] in
pyproject.toml, else the SQLite file ./kue.sqlite3 (the same settings as kue-worker)."""

_EPILOG = """\
examples:
  kue backends
  kue queues
  kue put emails --job app.send_welcome --args '["ada@example.com"]' --priority 10
  kue status 17 --queue emails
  kue buried emails
  kue retry emails 17
  kue kick emails --all

exit status: 0 done, 1 nothing found (peek, status, retry, delete), 2 error."""


_URL_HELP = (
    "backend URL, e.g. redis://localhost:6379/0 or sqlite:///kue.sqlite3 "
    "(default: KUE_URL, kue.toml, [tool.kue], else ./kue.sqlite3)"
)


_VERBOSE_HELP = "on an error, print the full traceback as well as the message"


def _common_options(
    parser: argparse.ArgumentParser, *, suppress: bool, url_help: str = _URL_HELP,
    verbose_help: str = _VERBOSE_HELP,
) -> None:
    """--url and -v, accepted before or after the command name."""
    # On subcommands the defaults are suppressed so they do not overwrite a value given
    # before the command name (``kue --url X stats``).
    url_default: object = argparse.SUPPRESS if suppress else None
    verbose_default: object = argparse.SUPPRESS if suppress else False
    parser.add_argument("--url", metavar="URL", default=url_default, help=url_help)
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=verbose_default, help=verbose_help,
    )


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps paragraphs as argparse does, but keeps a paragraph with indented lines as written.

    So a subcommand's description is filled to the terminal and its examples stay one per line.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith("  ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


def _subparser(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
    description: str, url_help: str = _URL_HELP, *, examples: Sequence[str] = (),
    verbose_help: str = _VERBOSE_HELP,
) -> argparse.ArgumentParser:
    epilog = None
    if examples:
        label = "example:" if len(examples) == 1 else "examples:"
        epilog = "\n".join([label, *(f"  {line}" for line in examples)])
    p = subs.add_parser(name, help=summary, description=description, epilog=epilog,
                        formatter_class=_HelpFormatter)
    _common_options(p, suppress=True, url_help=url_help, verbose_help=verbose_help)
    return p


def _add_full(parser: argparse.ArgumentParser, what: str, *, json_too: bool = True) -> None:
    also = "with --json too, which then says so" if json_too else "--json shows it whole"
    parser.add_argument(
        "--full", action="store_true",
        help=f"show {what} whole; without it, text over {admin_commands.TRUNCATE_AT} "
        f"characters is cut short ({also})",
    )


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
        examples=["kue backends", "kue backends --url redis://localhost:6379/0 --json"],
    )
    _add_json(b, "the list")

    s = _subparser(
        subs, "stats", "count ready, delayed, reserved and buried jobs per queue",
        "Print a table of ready, delayed, reserved and buried jobs for each QUEUE.",
        examples=["kue stats emails videos", "kue stats --json"],
    )
    s.add_argument("queues", nargs="*", metavar="QUEUE",
                   help="queues to count (default: the configured queues, else 'default')")
    _add_json(s, "the counts, one object per queue,")

    qs = _subparser(
        subs, "queues", "list every queue the backend holds, with its counts",
        "List the queues the backend knows, with their ready, delayed, reserved and buried "
        "jobs: on memory, sqlite and redis the queues that hold a job; on beanstalkd its "
        "tubes (an empty tube is listed while a worker watches it); on SQS the queues whose "
        "names start with the URL's prefix. A queue whose jobs are all done is not listed "
        "on the first three; kue stats QUEUE counts any queue by name.",
        examples=["kue queues", "kue queues --json --url redis://localhost:6379/0"],
    )
    _add_json(qs, "the counts, one object per queue,")

    put = _subparser(
        subs, "put", "put a job on a queue and print its id",
        "Put a job on QUEUE and print its id. With --job, the job is a kue envelope naming "
        "a registered job and its arguments, which a kue worker runs (the name is not "
        "checked here: a worker that has no job of that name buries it, saying so). Without "
        "--job, BODY is put as it is (the bytes of the text, or checked as JSON with "
        "--json): a plain body is for consumers that reserve jobs themselves, since a kue "
        "worker buries any body that is not an envelope.",
        examples=[
            """kue put emails --job app.send_welcome --args '["ada@example.com"]'""",
            """kue put videos --job app.transcode --args '[4871]' --kwargs '{"hd": true}' """
            "--delay 60",
            """kue put raw '{"video": 4871}' --json""",
        ],
    )
    put.add_argument("queue", metavar="QUEUE", help="queue to put the job on")
    put.add_argument("body", metavar="BODY", nargs="?",
                     help="a plain body, instead of --job; - reads it from stdin")
    put.add_argument("--job", metavar="NAME",
                     help="the registered name of the job a worker should run "
                     "(@kue.job(name=...) or Job.name)")
    put.add_argument("--args", metavar="JSON",
                     help="with --job: the job's positional arguments as a JSON array "
                     "(default [])")
    put.add_argument("--kwargs", metavar="JSON",
                     help="with --job: the job's keyword arguments as a JSON object "
                     "(default {})")
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
        examples=["kue peek emails", "kue peek emails --state buried --full"],
    )
    peek.add_argument("queue", metavar="QUEUE", help="queue to look at")
    peek.add_argument("--state", default="ready", metavar="STATE",
                      choices=[s.value for s in JobState if s is not JobState.RESERVED],
                      help="ready, delayed or buried (default ready)")
    _add_full(peek, "the body")
    _add_json(peek, "the job")

    st = _subparser(
        subs, "status", "show a job's state, result, last error and progress by id",
        "Show what kue knows of the job ID: its state (ready, delayed, reserved, buried, "
        "done, or gone once deleted or its record expired), job name, attempts, priority, "
        "when it was enqueued, started, finished, buried or is due, its result, its last "
        "error (type and message; the traceback too with -v or --json) and its progress. "
        "Backends that keep no records (beanstalk, sqs) know results and errors only through "
        "a results URL in the configuration. Exits 1 if nothing is known of ID on the queue.",
        examples=["kue status 17", "kue status 17 --queue emails --json"],
        verbose_help="show the traceback of the job's last error; on an error of kue's own, "
        "print its traceback as well as the message",
    )
    st.add_argument("job_id", metavar="ID", help="the job's id, as put printed it")
    st.add_argument("--queue", "-q", metavar="QUEUE",
                    help="the queue the job was put on (default: each configured queue in "
                    "turn, else 'default')")
    _add_full(st, "the result", json_too=False)
    _add_json(st, "the status")

    bu = _subparser(
        subs, "buried", "list a queue's buried jobs, newest first, with their last errors",
        "List the buried jobs of QUEUE, the most recently buried first, with each one's id, "
        "job name and arguments, attempts, when it was buried and its last error (type and "
        "message; the traceback too with -v). --limit and --offset page through them. "
        "beanstalkd can show only the job buried longest ago, which is shown with a note; "
        "SQS can list none (kue stats counts them, kue kick moves them).",
        examples=["kue buried emails", "kue buried emails --limit 50 --offset 50 --json",
                  "kue retry emails 17"],
        verbose_help="show the traceback of each job's last error; on an error of kue's own, "
        "print its traceback as well as the message",
    )
    bu.add_argument("queue", metavar="QUEUE", help="queue whose buried jobs to list")
    bu.add_argument("--limit", type=int, default=admin_records.DEFAULT_LIMIT, metavar="N",
                    help=f"most jobs to show (default {admin_records.DEFAULT_LIMIT})")
    bu.add_argument("--offset", type=int, default=0, metavar="N",
                    help="skip the N most recently buried first (default 0)")
    _add_full(bu, "each job's arguments or body")
    _add_json(bu, "the page")

    kick = _subparser(
        subs, "kick", "move buried (or else delayed) jobs back to ready",
        "Move up to N jobs to ready: those buried longest ago, or, with none buried, the "
        "delayed jobs due soonest. With --all, every buried job and no delayed one. A kicked "
        "buried job gets its max_attempts afresh where a record store counted its attempts "
        "at burial. Prints how many moved.",
        examples=["kue kick emails 5", "kue kick emails --all"],
    )
    kick.add_argument("queue", metavar="QUEUE", help="queue whose jobs to kick")
    kick.add_argument("count", nargs="?", type=int, default=None, metavar="N",
                      help="most jobs to move (default 1)")
    kick.add_argument("--all", action="store_true",
                      help="move every buried job back to ready (delayed jobs stay delayed)")

    retry = _subparser(
        subs, "retry", "move one buried job back to ready by id",
        "Move the buried job ID of QUEUE back to ready, so a worker runs it again. It keeps "
        "its priority, and gets its max_attempts afresh where a record store counted its "
        "attempts at burial. Exits 1 if QUEUE has no buried job ID. The sqs "
        "backend cannot reach one buried job (kue kick QUEUE N moves them in no order).",
        examples=["kue buried emails", "kue retry emails 17"],
    )
    retry.add_argument("queue", metavar="QUEUE", help="queue that holds the buried job")
    retry.add_argument("job_id", metavar="ID", help="the job's id, as kue buried shows it")

    delete = _subparser(
        subs, "delete", "delete a job by id (on backends that support it)",
        "Delete the job ID from QUEUE whatever its state. Only backends that offer "
        "delete_by_id can do this; on others kue delete fails with a clear message. "
        "Exits 1 if the backend has no such job.",
        examples=["kue delete emails 17"],
    )
    delete.add_argument("queue", metavar="QUEUE", help="queue that holds the job")
    delete.add_argument("job_id", metavar="ID", help="the job's id, as put or peek printed it")

    sc = _subparser(
        subs, "schedules", "list periodic jobs with their next run and the last tick put",
        "List each schedule (@kue.periodic in the modules given with --import or in the "
        "configuration's import list, and [[schedules]] in kue.toml): its job and queue, "
        "when it runs, its next run, and the last tick a scheduler put, with that job's id "
        "(kept in the backend's record store, or the results store of beanstalk and sqs).",
        examples=["kue schedules --import app.jobs", "kue schedules --json"],
    )
    sc.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                    help="module that declares schedules; repeat for several (default: "
                    "the configuration's import list)")
    _add_json(sc, "the schedules")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kue`` command; returns the exit status (0 done, 1 nothing found, 2 error)."""
    args = build_parser().parse_args(argv)
    command = COMMANDS[args.command]
    try:
        # Queue names on the command line follow the portable rule: refused before connecting.
        for queue in [getattr(args, "queue", None), *(getattr(args, "queues", None) or [])]:
            if queue is not None:
                check_queue_name(queue)
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
