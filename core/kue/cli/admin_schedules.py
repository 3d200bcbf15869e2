"""``kue schedules``: each periodic job's schedule, its next run and the last tick put."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, TextIO

from kue.cli.admin_commands import EXIT_OK, connected
from kue.cli.admin_records import describe_time
from kue.config import load_settings
from kue.plugins import import_modules
from kue.schedules import schedules_for
from kue.worker.scheduler import read_state

__all__ = ["COMMANDS", "cmd_schedules"]


def cmd_schedules(args: argparse.Namespace, out: TextIO) -> int:
    """List the schedules of the imported modules and configuration, with their state."""
    sys.path.insert(0, os.getcwd())
    settings = load_settings({"url": args.url, "import": args.imports})
    import_modules(settings.imports)
    schedules = schedules_for(settings.schedules, settings.schedules_source or "configuration")
    now = time.time()
    rows: list[dict[str, Any]] = []
    with connected(args) as queue:
        store = queue.records.store
        for s in schedules:
            state = read_state(store, s.name) if store is not None else {}
            next_run = s.next_after(now)
            rows.append({
                "name": s.name, "job": s.job, "queue": s.queue_name(), "when": s.describe(),
                "catch_up": s.catch_up, "args": list(s.args), "kwargs": dict(s.kwargs),
                "next_run": next_run if math.isfinite(next_run) else None,
                "last_put": state.get("last_put"), "last_job": state.get("last_job"),
            })
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return EXIT_OK
    if not rows:
        out.write("no schedules: declare them with @kue.periodic in a module given to --import "
                  "(or import in kue.toml), or [[schedules]] in kue.toml\n")
        return EXIT_OK
    for row in rows:
        out.write(f"{row['name']}: {row['job']} on queue {row['queue']}, {row['when']}\n")
        nxt = row["next_run"]
        out.write(f"  next run   {describe_time(nxt, now) if nxt is not None else 'never'}\n")
        if row["last_put"] is None:
            last = "none yet" if store is not None else "unknown: the backend keeps no " \
                "records (give it a results URL)"
        else:
            last = f"{describe_time(row['last_put'], now)}, job {row['last_job']}"
        out.write(f"  last put   {last}\n")
    return EXIT_OK


COMMANDS = {"schedules": cmd_schedules}
