"""The pluggy plugin behind the ``sqs`` entry point of ``kue.backends``.

boto3 is imported only when a backend is opened, so installing kue-sqs costs nothing to
programs that use another backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kue.spi import hookimpl

if TYPE_CHECKING:
    from kue_contract.servers import ServerSpec
    from kue_sqs.backend import SqsBackend

__all__ = ["kue_backend", "kue_contract_server"]


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> SqsBackend | None:
    """Open ``sqs://...``; None for any other backend name."""
    if name != "sqs":
        return None
    from kue_sqs.backend import SqsBackend
    from kue_sqs.settings import parse_settings

    return SqsBackend(parse_settings(url, options), url=url)


@hookimpl
def kue_contract_server(name: str) -> ServerSpec | None:
    """The throwaway moto server of the contract suite, described (kue_contract runs it)."""
    if name != "sqs":
        return None
    from kue_sqs.server import SERVER

    return SERVER
