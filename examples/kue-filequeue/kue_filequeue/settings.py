"""What a ``filequeue:///path/to/dir`` URL (and configuration options) ask of the backend.

``filequeue:///var/lib/jobs?max_body=65536``: the store's directory, and the largest body in
bytes (default 1 MiB, at most 16 MiB: a file per job is cheap for small jobs; large payloads
belong elsewhere). ``max_body`` is also accepted in configuration (``[tool.kue.options]``); the
URL wins, and any other option is refused by kue's one reader, :func:`kue.spi.read_options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kue.spi import ConfigError, Option, mask_url, read_options

__all__ = ["OPTIONS", "SCHEME", "FileQueueSettings", "path_from_url", "url_for_path"]

#: The backend's name: the entry point's name and the URL scheme.
SCHEME = "filequeue"

#: The options a filequeue URL or configuration may set.
OPTIONS = (
    Option("max_body", "int", 2**20, "largest body in bytes", low=1, high=16 * 2**20),
)


@dataclass(frozen=True)
class FileQueueSettings:
    """The store's directory and the body limit, read from a URL and options."""

    root: Path
    max_body: int

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, Any] | None = None) -> FileQueueSettings:
        """Read ``url`` and ``options``; ConfigError names what is wrong."""
        values = read_options(SCHEME, OPTIONS, url, options)
        return cls(path_from_url(url), values["max_body"])


def path_from_url(url: str) -> Path:
    """The directory ``filequeue:///path/to/dir`` names (``filequeue:relative/dir`` too)."""
    parts = urlsplit(url)
    shown = mask_url(url)
    if parts.scheme != SCHEME:
        raise ConfigError(f"the filequeue backend takes filequeue:// URLs, not {shown!r}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"{shown!r} names the host {parts.netloc!r}; a filequeue store is a local "
            "directory: write filequeue:///path/to/dir"
        )
    path = unquote(parts.path)
    if not path:
        raise ConfigError(f"{shown!r} names no directory; write filequeue:///path/to/dir")
    return Path(path)


def url_for_path(path: str | Path) -> str:
    """The URL of the store at ``path`` (made absolute)."""
    return f"{SCHEME}://{quote(str(Path(path).resolve()))}"
