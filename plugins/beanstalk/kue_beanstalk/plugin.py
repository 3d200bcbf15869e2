"""The pluggy plugin behind the ``beanstalk`` entry point of ``kue.backends``.

greenstalk is imported only when a backend is opened, so installing kue-beanstalk costs nothing
to programs that use another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl

if TYPE_CHECKING:
    from kue_beanstalk.backend import BeanstalkBackend
    from kue_contract.servers import ServerSpec

__all__ = ["SCHEME", "kue_backend", "kue_contract_server"]

#: The backend name (URL scheme) this plugin serves.
SCHEME = "beanstalk"


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> BeanstalkBackend | None:
    """Open a beanstalkd backend for ``beanstalk://host:port`` URLs."""
    if name != SCHEME:
        return None
    from kue_beanstalk.backend import BeanstalkBackend

    return BeanstalkBackend(url, options)


@hookimpl
def kue_contract_server(name: str) -> ServerSpec | None:
    """The throwaway beanstalkd of the contract suite, described (kue_contract runs it)."""
    if name != SCHEME:
        return None
    from kue_beanstalk.server import SERVER

    return SERVER
