"""Jobs whose records the record tests read: one returns a value, one fails for good."""

from __future__ import annotations

import kue


@kue.job(name="records.total", max_attempts=1)
def total(numbers: list[int]) -> dict[str, int]:
    """Returns the sum: the result a web app would show its user."""
    return {"total": sum(numbers)}


@kue.job(name="records.broken", max_attempts=1)
def broken(reason: str) -> None:
    """Fails at once and for good, so it is buried with its error."""
    raise ValueError(reason)
