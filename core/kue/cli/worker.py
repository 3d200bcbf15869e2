"""``kue-worker``: run jobs from the configured queues in this process."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

import pluggy

from kue.backend import MAX_BATCH_RESERVE, Backend
from kue.config import Settings, backend_name, load_settings, mask_url
from kue.errors import ConfigError, KueError
from kue.job import DEFAULT_TIME_LIMIT, check_time_limit, registry
from kue.plugins import get_plugin_manager, import_modules, load_backend_plugin, open_backend
from kue.queue import open_results
from kue.records import DEFAULT_RESULT_TTL
from kue.schedules import schedules_for
from kue.status import Records
from kue.validation import check_queue_name
from kue.worker import Worker
from kue.worker.concurrent import ConcurrentWorker
from kue.worker.logs import configure_logging
from kue.worker.scheduler import Scheduler
from kue.worker.supervisor import Supervisor
from kue.worker.threads import ThreadedWorker
from kue.worker.worker import DEFAULT_PREFETCH, PREFETCH_WINDOW

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kue-worker``."""
    p = argparse.ArgumentParser(
        prog="kue-worker",
        description="Take jobs off kue queues and run them. Settings not given here come from "
        "KUE_* environment variables, kue.toml, [tool.kue] in pyproject.toml, or the default "
        "SQLite file ./kue.sqlite3.",
    )
    p.add_argument("--url", help="backend URL, e.g. redis://localhost:6379/0 (default: config)")
    p.add_argument(
        "-q", "--queue", dest="queues", action="append", metavar="NAME",
        help="queue to take jobs from; repeat for several, most urgent first: a job in an "
        "earlier queue is taken before any in a later one (default: config, else 'default')",
    )
    p.add_argument(
        "--results", metavar="URL",
        help="where job records (status, result, last error) live for a backend that keeps "
        "none itself (beanstalk, sqs): a sqlite:///, redis:// or postgresql:// URL (default: "
        "config)",
    )
    p.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE",
        help="module that defines jobs; repeat for several. Only registered jobs run.",
    )
    p.add_argument(
        "--scheduler", action="store_true",
        help="also put the ticks of periodic jobs (@kue.periodic, [[schedules]] in kue.toml) "
        "on their queues: in a thread, or with -c in the supervisor. Safe, and meant, to turn "
        "on in every worker of a fleet: each tick is put once however many schedulers run",
    )
    p.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty instead of waiting"
    )
    p.add_argument("--max-jobs", type=_positive_int, metavar="N", help="exit after N jobs")
    p.add_argument(
        "-c", "--concurrency", type=_positive_int, metavar="N",
        help="fork N worker processes under a supervisor that replaces any that die "
        "(default: run jobs in this process)",
    )
    p.add_argument(
        "--threads", type=_positive_int, metavar="N",
        help="run up to N jobs at once in this process, one per thread, for jobs that wait on "
        "the network (default 1; not with -c or --max-jobs)",
    )
    p.add_argument(
        "--coroutines", type=_positive_int, metavar="N",
        help="run up to N jobs at once in this process on an event loop: async def jobs on the "
        "loop, other jobs on --threads threads (default: one job at a time per thread or "
        "child; async def jobs still run, one at a time; not with -c)",
    )
    p.add_argument(
        "--prefetch", type=_prefetch, default=DEFAULT_PREFETCH, metavar="N",
        help="most jobs one worker process (or --threads thread, or -c child) holds at once; "
        "with --coroutines, most jobs one round trip reserves. It takes more than one per "
        "round trip only while the queue is deep, keeps every "
        "held job's lease renewed, starts a held job only within "
        f"{PREFETCH_WINDOW * 1000:g} ms of reserving it (so a more urgent job waits at "
        "most that plus one job's run) and gives back the jobs it has not started when "
        "stopped. Used with one queue on backends that reserve in batches (memory, sqlite, "
        f"redis). 1 turns it off (default {DEFAULT_PREFETCH})",
    )
    p.add_argument(
        "--time-limit", type=_time_limit, default=DEFAULT_TIME_LIMIT, metavar="SECONDS",
        help="longest one attempt of a job that sets no time_limit may run before it is "
        f"stopped and counted as failed (default {DEFAULT_TIME_LIMIT:g}; 0 for no limit)",
    )
    p.add_argument(
        "--result-ttl", type=_non_negative, default=DEFAULT_RESULT_TTL, metavar="SECONDS",
        help="how long the record of a done job (status, result) is kept, for jobs that set "
        f"no result_ttl (default {DEFAULT_RESULT_TTL:g}; 0 keeps none)",
    )
    p.add_argument(
        "--max-jobs-per-child", type=_positive_int, metavar="N",
        help="with -c: replace each child after it ran N jobs",
    )
    p.add_argument(
        "--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
        help="with -c: after SIGTERM, how long children may finish their jobs before they are "
        "killed and their jobs released (default 30)",
    )
    p.add_argument(
        "--ttr-grace", type=float, default=2.0, metavar="SECONDS",
        help="with -c: kill a child that renewed no lease of its job for the job's ttr plus "
        "this long: it is frozen (default 2)",
    )
    p.add_argument(
        "-v", "--log-level", default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="how much to log (default INFO)",
    )
    p.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="log lines as text or as one JSON object each (default text)",
    )
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _prefetch(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_BATCH_RESERVE:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_BATCH_RESERVE} jobs, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def _time_limit(text: str) -> float:
    value = float(text)
    if value == 0:
        return math.inf
    try:
        return check_time_limit(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refusal(args: argparse.Namespace) -> str | None:
    """Why these flags cannot run together, or None."""
    threads = args.threads or 1
    if args.scheduler and args.burst:
        return "--scheduler runs until the worker is stopped: it cannot be combined with --burst"
    if args.coroutines is not None:
        if args.concurrency is not None or args.max_jobs is not None:
            return (f"--coroutines {args.coroutines} runs in this process and counts no jobs: "
                    "it cannot be combined with -c or --max-jobs")
    elif threads > 1 and (args.concurrency is not None or args.max_jobs is not None):
        return (f"--threads {threads} runs in this process and counts no jobs: it cannot be "
                "combined with -c or --max-jobs")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; exits 0 after a clean stop, 2 on bad configuration."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    log = logging.getLogger("kue.worker")
    sys.path.insert(0, os.getcwd())
    try:
        settings = load_settings(
            {"url": args.url, "queues": args.queues, "import": args.imports,
             "results": args.results}
        )
        for queue in settings.queues:
            check_queue_name(queue)
        import_modules(settings.imports)
        pm = get_plugin_manager()
        name = backend_name(settings.url)
        load_backend_plugin(name, pm)
    except (KueError, ValueError, TypeError) as exc:
        print(f"kue-worker: {exc}", file=sys.stderr)
        return 2

    def connect() -> Backend:
        return open_backend(name, settings.url, settings.options, pm)

    def records_for(backend: Backend) -> Records:
        results = settings.results
        return Records.of(backend, open_results(results, backend, pm) if results else None,
                          settings.result_ttls)

    refusal = _refusal(args)
    if refusal is None and not registry():
        refusal = ("no jobs are registered: name the modules that define them with --import "
                   "MODULE (or `import` in kue.toml)")
    if refusal is not None:
        print(f"kue-worker: {refusal}", file=sys.stderr)
        return 2
    scheduler: Scheduler | None = None
    if args.scheduler:
        try:
            scheduler = _scheduler(settings, connect, records_for, pm)
        except KueError as exc:
            print(f"kue-worker: {exc}", file=sys.stderr)
            return 2
    threads = args.threads or 1
    log.info("kue-worker on %s, queues %s, jobs %s", mask_url(settings.url),
             ", ".join(settings.queues), ", ".join(sorted(registry())))
    started = time.monotonic()
    if args.concurrency is not None:
        supervisor = Supervisor(
            connect, settings.queues, args.concurrency, plugin_manager=pm, burst=args.burst,
            max_jobs=args.max_jobs, max_jobs_per_child=args.max_jobs_per_child,
            shutdown_timeout=args.shutdown_timeout, ttr_grace=args.ttr_grace,
            time_limit=args.time_limit, result_ttl=args.result_ttl, records_for=records_for,
            scheduler=scheduler, prefetch=args.prefetch,
        )
        status = supervisor.run()
        if args.burst:
            log.info("burst done: %s", supervisor.totals.summary(time.monotonic() - started))
        return status
    try:
        backend = connect()
        records = records_for(backend)
    except KueError as exc:
        print(f"kue-worker: {exc}", file=sys.stderr)
        return 2
    worker: Worker | ThreadedWorker | ConcurrentWorker
    name = f"pid {os.getpid()}"
    if args.coroutines is not None:
        worker = ConcurrentWorker(backend, settings.queues, args.coroutines, threads=threads,
                                  plugin_manager=pm, name=name, time_limit=args.time_limit,
                                  records=records, result_ttl=args.result_ttl,
                                  prefetch=args.prefetch)
    elif threads > 1:
        worker = ThreadedWorker(backend, settings.queues, threads, plugin_manager=pm,
                                name=name, time_limit=args.time_limit, records=records,
                                result_ttl=args.result_ttl, prefetch=args.prefetch)
    else:
        worker = Worker(backend, settings.queues, plugin_manager=pm, name=name,
                        time_limit=args.time_limit, records=records, result_ttl=args.result_ttl,
                        prefetch=args.prefetch)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if worker.stopping:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            if isinstance(worker, ConcurrentWorker):
                # Its jobs run on threads and tasks that an exception here cannot end
                # cleanly; their leases lapse and the jobs come back after their ttr.
                logging.shutdown()
                os._exit(1)
            raise SystemExit(1)
        log.info(
            "%s: finishing the current job, then stopping (send again to stop now)",
            signal.Signals(signum).name,
        )
        if isinstance(worker, Worker):
            worker.interrupt()
        else:
            worker.stop()  # idle threads notice within a second

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if scheduler is not None:
        scheduler.start()
    try:
        if isinstance(worker, Worker):
            stats = worker.run(burst=args.burst, max_jobs=args.max_jobs)
        else:
            stats = worker.run(burst=args.burst)
    finally:
        if scheduler is not None:
            scheduler.stop()
        backend.close()
        if records.store is not None and not records.native:
            records.store.close()  # type: ignore[attr-defined]
    if args.burst:
        log.info("burst done: %s", stats.summary(time.monotonic() - started))
    return 0


def _scheduler(settings: Settings, connect: Callable[[], Backend],
               records_for: Callable[[Backend], Records], pm: pluggy.PluginManager) -> Scheduler:
    """The scheduler of ``--scheduler``, on a backend of its own; ConfigError if it cannot run."""
    schedules = schedules_for(settings.schedules, settings.schedules_source or "configuration")
    if not schedules:
        raise ConfigError("--scheduler: no schedules are declared; declare them with "
                          "@kue.periodic in a module given to --import, or [[schedules]] in "
                          "kue.toml")
    backend = connect()
    return Scheduler(backend, schedules, records=records_for(backend), plugin_manager=pm)


if __name__ == "__main__":
    raise SystemExit(main())
