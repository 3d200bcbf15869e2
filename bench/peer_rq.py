"""The RQ side of the peer comparison: the shared no-op job, as an RQ function."""

from __future__ import annotations

from bench_jobs import bump


def incr() -> None:
    """One INCR on the benchmark's counter key."""
    bump()
