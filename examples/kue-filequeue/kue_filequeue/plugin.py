"""The pluggy plugin behind the ``filequeue`` entry point of group ``kue.backends``.

kue imports this module only when configuration names the ``filequeue`` backend; it imports the
backend itself only when a queue is opened, as a plugin with a heavy client library would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from kue import ConfigError, hookimpl

if TYPE_CHECKING:
    from kue_filequeue.backend import FileQueueBackend

__all__ = ["SCHEME", "kue_backend", "kue_contract_server", "path_from_url", "url_for_path"]

#: The backend's name: the entry point's name and the URL scheme.
SCHEME = "filequeue"


def path_from_url(url: str) -> Path:
    """The directory ``filequeue:///path/to/dir`` names (``filequeue:relative/dir`` too)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ConfigError(f"the filequeue backend takes filequeue:// URLs, not {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"{url!r} names the host {parts.netloc!r}; a filequeue store is a local directory: "
            "write filequeue:///path/to/dir"
        )
    path = unquote(parts.path)
    if not path:
        raise ConfigError(f"{url!r} names no directory; write filequeue:///path/to/dir")
    return Path(path)


def url_for_path(path: str | Path) -> str:
    """The URL of the store at ``path`` (made absolute)."""
    return f"{SCHEME}://{quote(str(Path(path).resolve()))}"


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> FileQueueBackend | None:
    """Open ``filequeue:///path/to/dir``; None for any other backend name."""
    if name != SCHEME:
        return None
    from kue_filequeue.backend import FileQueueBackend

    return FileQueueBackend(path_from_url(url))


@hookimpl
def kue_contract_server(name: str) -> str | None:
    """No server to start, just a URL: kue_contract fills in a scratch directory it removes."""
    return f"{SCHEME}://{{scratch}}" if name == SCHEME else None
