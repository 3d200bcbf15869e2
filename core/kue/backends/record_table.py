"""Job records held in this process's memory, with expiry: the memory backend's record store.

Expired records are dropped lazily, oldest first, on each write, so a table under steady
traffic holds no more than the records of the last ``ttl`` seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["RecordTable", "merge_fields"]

_Key = tuple[str, str]


def merge_fields(record: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with ``fields`` laid over it, key by key; a field set to None is removed.

    Top-level keys only: a new ``error`` replaces the old one whole, on every backend.
    """
    merged = dict(record)
    for name, value in fields.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


class RecordTable:
    """Records by (queue, job id); not thread-safe: the caller holds its store's lock.

    :param clock: monotonic seconds, the clock expiry is counted on.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._records: dict[_Key, tuple[dict[str, Any], float]] = {}
        self._expiry: list[tuple[float, _Key]] = []

    def __len__(self) -> int:
        return len(self._records)

    def update(self, key: _Key, fields: Mapping[str, Any], ttl: float | None) -> None:
        """Merge ``fields`` into the record at ``key``; it expires ``ttl`` s from now."""
        now = self.clock()
        self._purge(now)
        current = self._records.get(key)
        merged = merge_fields(current[0] if current else {}, fields)
        expires = float("inf") if ttl is None else now + ttl
        self._records[key] = (merged, expires)
        if ttl is not None:
            heapq.heappush(self._expiry, (expires, key))

    def read(self, key: _Key) -> dict[str, Any] | None:
        """A copy of the record at ``key``, unless it expired."""
        entry = self._records.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return dict(entry[0])

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires, key = heapq.heappop(self._expiry)
            entry = self._records.get(key)
            if entry is not None and entry[1] == expires:  # not renewed since
                del self._records[key]
