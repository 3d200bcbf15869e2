"""The sqlite backend's URL and options: which file, how often SQLite syncs, the largest body.

``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; query options
``synchronous=normal|full`` (default normal: a commit survives a crash of the process, ``full``
also a power cut) and ``max_body`` (bytes).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from kue.spi import ConfigError, Option

__all__ = [
    "DEFAULT_MAX_BODY", "OPTIONS", "SQLITE_MAX_LENGTH", "path_from_url", "synchronous_pragma",
]

#: Largest body by default: SQLite can hold up to 1 GB, but a job queue is no blob store.
DEFAULT_MAX_BODY = 64 * 2**20
#: SQLite's own ceiling on one value (SQLITE_MAX_LENGTH as built by default).
SQLITE_MAX_LENGTH = 1_000_000_000

#: The options a sqlite URL (``sqlite:///kue.sqlite3?synchronous=full``) or configuration sets.
OPTIONS = (
    Option("synchronous", "choice", "normal",
           "normal: a commit survives a crash of the program; full: of the machine too",
           choices=("normal", "full")),
    Option("max_body", "int", DEFAULT_MAX_BODY, "largest body in bytes", low=1,
           high=SQLITE_MAX_LENGTH),
)


def path_from_url(url: str) -> Path:
    """The database file of ``sqlite:///relative`` or ``sqlite:////absolute``."""
    parts = urlsplit(url)
    raw = (parts.netloc + parts.path)[1:] if parts.path.startswith("/") else parts.path
    if not raw:
        raise ConfigError(
            f"SQLite URL {url!r} names no file; write sqlite:///kue.sqlite3 (relative) "
            "or sqlite:////var/lib/kue.sqlite3 (absolute)"
        )
    return Path(raw)


def synchronous_pragma(synchronous: str, max_body: int) -> str:
    """The ``PRAGMA synchronous`` value of the options; ConfigError if either is out of range.

    The constructor's check, for a caller that builds the backend without a URL.
    """
    if synchronous.lower() not in ("normal", "full"):
        raise ConfigError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or not (
            1 <= max_body <= SQLITE_MAX_LENGTH):
        raise ConfigError(
            f"max_body must be a whole number of bytes from 1 to {SQLITE_MAX_LENGTH}, "
            f"got {max_body!r}")
    return synchronous.upper()
