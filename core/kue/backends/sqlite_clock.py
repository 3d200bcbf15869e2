"""The sqlite backend's clock: due times of delayed jobs and leases are on the file's own clock.

On Linux that is the kernel's boot-time clock (``CLOCK_BOOTTIME``: the same for every process
of one boot, never stepped by NTP or an administrator, counting suspended time) plus an offset
stored in the file per boot id, so a forward step of the wall clock neither hands a running job
to a second worker nor brings delayed jobs forward. After a reboot the offset is taken again
from the wall clock, so delays span reboots as wall-clock time. Where no boot id is known (not
Linux), the clock is the wall clock, and a step of it moves every due time by the step.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["FileClock", "boot_id"]

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def boot_id() -> str | None:
    """The id of the running boot (Linux), or None where the system tells none."""
    try:
        return _BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def _since_boot() -> float:
    assert _BOOTTIME is not None
    return time.clock_gettime(_BOOTTIME)


class FileClock:
    """Seconds on one queue file's clock, the same for every process of one boot.

    With a boot id and ``CLOCK_BOOTTIME`` (Linux): the boot-time clock plus an offset that the
    first process of a boot to open the file stores in table ``kue_clock`` (the wall clock's
    reading then, so due times written before carry on). Otherwise: the wall clock.
    """

    def __init__(self, conn: sqlite3.Connection, boot: str | None = None) -> None:
        """Read (or, first in this boot, write) the file's offset through ``conn``."""
        boot = boot_id() if boot is None else boot
        self.offset: float | None = None
        if boot is None or _BOOTTIME is None:
            return
        conn.execute("CREATE TABLE IF NOT EXISTS kue_clock (boot TEXT NOT NULL, base REAL "
                     "NOT NULL)")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT boot, base FROM kue_clock").fetchone()
            if row is not None and row[0] == boot:
                self.offset = float(row[1])
            else:
                self.offset = time.time() - _since_boot()
                conn.execute("DELETE FROM kue_clock")
                conn.execute("INSERT INTO kue_clock (boot, base) VALUES (?, ?)",
                             (boot, self.offset))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def now(self) -> float:
        """The file's time: boot-time clock plus offset, or the wall clock."""
        if self.offset is None:
            return time.time()
        return _since_boot() + self.offset
