"""The pluggy plugin behind the ``filequeue`` entry point of group ``kue.backends``.

kue imports this module only when configuration names the ``filequeue`` backend; it imports the
backend itself only when a queue is opened, as a plugin with a heavy client library would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl
from kue_filequeue.settings import SCHEME, FileQueueSettings

if TYPE_CHECKING:
    from kue_filequeue.backend import FileQueueBackend

__all__ = ["kue_backend", "kue_contract_server"]

@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> FileQueueBackend | None:
    """Open ``filequeue:///path/to/dir``; None for any other backend name."""
    if name != SCHEME:
        return None
    from kue_filequeue.backend import FileQueueBackend

    settings = FileQueueSettings.from_url(url, options)
    return FileQueueBackend(settings.root, max_body=settings.max_body)


@hookimpl
def kue_contract_server(name: str) -> str | None:
    """No server to start, just a URL: kue_contract fills in a scratch directory it removes."""
    return f"{SCHEME}://{{scratch}}" if name == SCHEME else None
