"""A job on a one-second schedule, for the scheduler fleet tests (imported by kue-worker)."""

from __future__ import annotations

import kue


@kue.periodic(every=1, name="every-second")
@kue.job(name="periodic_jobs.tick", queue="ticks")
def tick() -> None:
    """Does nothing: the tests count the jobs its ticks put."""
