"""kue's Amazon SQS backend, registered as entry point ``sqs`` in group ``kue.backends``.

``kue.connect("sqs://?region=us-east-1&prefix=kue-&create=1", queue="emails")``. The URL's
parameters are described in :mod:`kue_sqs.settings`, the mapping of kue's verbs onto SQS in
:mod:`kue_sqs.backend`. Importing this module does not import boto3; opening a queue does.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from kue.hookspecs import hookimpl
from kue_sqs.errors import PutManyFailed, SqsError

if TYPE_CHECKING:
    from kue_sqs.backend import SqsBackend

__all__ = ["PutManyFailed", "SqsError", "kue_backend", "kue_contract_server"]


@hookimpl
def kue_backend(name: str, url: str, options: dict[str, Any]) -> SqsBackend | None:
    """Open ``sqs://...``; None for any other backend name."""
    if name != "sqs":
        return None
    from kue_sqs.backend import SqsBackend
    from kue_sqs.settings import parse_settings

    return SqsBackend(parse_settings(url, options), url=url)


@hookimpl
def kue_contract_server(name: str, mode: str) -> AbstractContextManager[str] | None:
    """A throwaway moto server for the contract suite: local process or container."""
    if name != "sqs":
        return None
    from kue_sqs.server import moto_server

    return moto_server(mode)
