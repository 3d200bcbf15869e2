"""A Jepsen-style total-queue check over the ledger the fault jobs write."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    event: str
    key: str
    attempt: int
    pid: int
    t: float


@dataclass
class Verdict:
    enqueued: set[str]
    ended: Counter[str]
    started: Counter[str]
    entries: list[Entry] = field(default_factory=list)

    @property
    def lost(self) -> set[str]:
        return self.enqueued - set(self.ended)

    @property
    def unexpected(self) -> set[str]:
        return (set(self.ended) | set(self.started)) - self.enqueued

    @property
    def duplicated(self) -> set[str]:
        return {key for key, n in self.ended.items() if n > 1}

    def interrupted_by(self, pids: set[int], batch: int = 1) -> set[str]:
        """The last ``batch`` keys each killed pid started: the only jobs allowed to run twice.

        A kill can land after the job's last line but before its delete reached the backend,
        so a job that logged its end may still run again; one that was not among the last its
        process started may not. A worker that prefetches acks a batch of finished jobs with
        its next reserve, so up to ``batch`` (its ``--prefetch``) jobs of a killed process may
        have finished unacked.
        """
        last: dict[int, list[str]] = {}
        for e in self.entries:
            if e.event == "start" and e.pid in pids:
                last.setdefault(e.pid, []).append(e.key)
        return {key for keys in last.values() for key in keys[-batch:]}

    def summary(self) -> str:
        return (
            f"enqueued={len(self.enqueued)} done={len(self.ended)} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)} unexpected={len(self.unexpected)}"
        )


def read(path: Path, enqueued: set[str]) -> Verdict:
    entries = []
    for line in path.read_text().splitlines():
        event, key, attempt, pid, t = line.split()
        entries.append(Entry(event, key, int(attempt), int(pid), float(t)))
    return Verdict(
        enqueued=enqueued,
        ended=Counter(e.key for e in entries if e.event == "end"),
        started=Counter(e.key for e in entries if e.event == "start"),
        entries=entries,
    )
