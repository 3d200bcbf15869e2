"""When a store with expiring entries sweeps them out: every Nth write.

Reads skip expired entries anyway; the sweep only keeps tables from growing with them. Each
backend counts its writes of one kind (unique keys and claims, done records) on one
:class:`Sweep` and, when :meth:`Sweep.count` says so, removes a batch of expired entries.
"""

from __future__ import annotations

__all__ = ["Sweep"]


class Sweep:
    """A count of writes that comes due once every ``every`` writes.

    Not thread-safe: the caller holds its store's lock, or accepts that a lost increment
    only moves one sweep by one write.
    """

    def __init__(self, every: int) -> None:
        """Come due at the ``every``-th write, then at each multiple of it."""
        if every < 1:
            raise ValueError(f"a sweep comes due every 1 or more writes, not {every!r}")
        self.every = every
        self.writes = 0

    def count(self, n: int = 1) -> bool:
        """Count ``n`` more writes; True when they reach a multiple of ``every``."""
        before = self.writes
        self.writes += n
        return self.writes // self.every != before // self.every
