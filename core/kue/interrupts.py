"""Exceptions that interrupt a job rather than report an error.

They derive from BaseException, so they sit apart from :mod:`kue.errors` (whose every class is
a :class:`~kue.errors.KueError`): a job's own ``except Exception`` must not swallow the
interruption and carry on past its limit, as with Dramatiq's ``TimeLimitExceeded``.
"""

from __future__ import annotations

__all__ = ["TimeLimitExceeded"]


class TimeLimitExceeded(BaseException):
    """Raised into a job that ran past its ``time_limit``; the attempt counts as failed.

    A BaseException, not a :class:`~kue.errors.KueError`: see the module's docstring.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        super().__init__(f"time limit of {limit:g} s exceeded")
