"""``kue-worker``: run jobs from the configured queues in this process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from kue.config import backend_name, load_settings, mask_url
from kue.errors import KueError
from kue.plugins import get_plugin_manager, import_modules, open_backend
from kue.worker import Worker

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
        help="queue to take jobs from; repeat for several (default: config, else 'default')",
    )
    p.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE",
        help="module that defines jobs; repeat for several. Only registered jobs run.",
    )
    p.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty instead of waiting"
    )
    p.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
    p.add_argument(
        "-v", "--log-level", default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="how much to log (default INFO)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; exits 0 after a clean stop, 2 on bad configuration."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("kue.worker")
    sys.path.insert(0, os.getcwd())
    try:
        settings = load_settings(
            {"url": args.url, "queues": args.queues, "import": args.imports}
        )
        import_modules(settings.imports)
        pm = get_plugin_manager()
        backend = open_backend(backend_name(settings.url), settings.url, settings.options, pm)
    except KueError as exc:
        print(f"kue-worker: {exc}", file=sys.stderr)
        return 2
    worker = Worker(backend, settings.queues, plugin_manager=pm, name=f"pid {os.getpid()}")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if worker.stopping:
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            raise SystemExit(1)
        log.info(
            "%s: finishing the current job, then stopping (send again to stop now)",
            signal.Signals(signum).name,
        )
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("kue-worker on %s", mask_url(settings.url))
    try:
        worker.run(burst=args.burst, max_jobs=args.max_jobs)
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
