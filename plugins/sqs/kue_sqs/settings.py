"""What an ``sqs://`` URL (and ``[tool.kue.options]``) says, checked before any client exists.

``sqs://[ACCESS_KEY:SECRET@]/?region=R&endpoint=URL&prefix=P&create=1&bands=0,100,1000&wait=20``
(and ``&fifo=1&fifo_group=queue`` for FIFO queues)

- ``region``: the AWS region; default: boto3's usual chain (``AWS_DEFAULT_REGION``, config file).
- ``endpoint``: the SQS endpoint URL (moto, ElasticMQ, a VPC endpoint); default: AWS's own.
- ``prefix``: put before every queue name (``kue-`` makes queue ``emails`` the SQS queue
  ``kue-emails``).
- ``create``: ``1`` creates missing SQS queues; default ``0``: a missing queue is an error.
- ``bands``: priority band boundaries, for example ``0,100,1000``; default off (no priority).
- ``wait``: the longest single long poll in seconds, 1..20 (default 20).
- ``fifo``: ``1`` makes every kue queue of this backend an SQS FIFO queue
  (``<prefix><queue>.fifo``); default ``0``: standard queues.
- ``fifo_group``: with ``fifo=1``, which jobs share an SQS message group: ``queue`` (default: one
  group per kue queue, strict put order, one job of a queue in flight at a time) or ``job`` (each
  job its own group: consumers run jobs in parallel, no order is promised).

Credentials come from boto3's usual chain unless the URL carries ``ACCESS_KEY:SECRET@``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from kue.spi import MAX_PRIORITY, ConfigError, Option, OptionValues, mask_url, read_options

__all__ = ["FIFO_GROUPS", "MAX_BANDS", "OPTIONS", "SqsSettings", "parse_bands", "parse_settings"]

#: The most priority bands a URL may ask for; each band is one more queue to poll.
MAX_BANDS = 8
#: Values of ``fifo_group``: one SQS message group per kue queue, or one per job.
FIFO_GROUPS = ("queue", "job")
#: The options an sqs URL or configuration may set (the module's docstring says what each does).
OPTIONS = (
    Option("region", "str", "", "the AWS region (default: boto3's usual chain)"),
    Option("endpoint", "str", "", "the SQS endpoint URL (default: AWS's own)"),
    Option("prefix", "str", "", "put before every SQS queue name"),
    Option("create", "bool", False, "create missing SQS queues"),
    Option("bands", "str", "", "priority band boundaries, e.g. 0,100,1000"),
    Option("wait", "int", 20, "the longest single long poll in seconds", low=1, high=20),
    Option("fifo", "bool", False, "make every queue an SQS FIFO queue"),
    Option("fifo_group", "choice", "queue", "which jobs share a FIFO message group",
           choices=FIFO_GROUPS),
)


@dataclass(frozen=True)
class SqsSettings:
    """The parsed settings of one ``sqs://`` URL."""

    region: str | None = None
    endpoint: str | None = None
    prefix: str = ""
    create: bool = False
    bands: tuple[int, ...] = ()
    wait: int = 20
    fifo: bool = False
    fifo_group: str = "queue"
    access_key: str | None = None
    secret_key: str | None = None


def parse_bands(text: str) -> tuple[int, ...]:
    """Band boundaries from ``"0,100,1000"``: increasing priorities, 0 added if missing.

    Returns ``()`` (bands off) when fewer than two bands result.
    """
    try:
        bounds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"bands={text!r} must be comma-separated integer priorities, e.g. bands=0,100,1000"
        ) from exc
    for bound in bounds:
        if not 0 <= bound <= MAX_PRIORITY:
            raise ConfigError(f"band boundary {bound} is outside priorities 0..{MAX_PRIORITY}")
    if bounds != sorted(set(bounds)):
        raise ConfigError(f"bands={text!r} must be strictly increasing, e.g. bands=0,100,1000")
    if bounds and bounds[0] != 0:
        bounds.insert(0, 0)
    if len(bounds) > MAX_BANDS:
        raise ConfigError(
            f"bands={text!r} makes {len(bounds)} bands; at most {MAX_BANDS} are allowed, "
            "since reserve polls one SQS queue per band"
        )
    return tuple(bounds) if len(bounds) > 1 else ()


def _check_fifo_group(values: OptionValues) -> None:
    if "fifo_group" in values.given and not values["fifo"]:
        # A setting that silently does nothing would let someone believe they have FIFO order.
        raise ConfigError(
            f"fifo_group={values['fifo_group']} applies to FIFO queues only: add fifo=1 as well "
            "(or drop fifo_group)"
        )


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> SqsSettings:
    """Parse ``url``; query values override ``options`` of the same name. Raises ConfigError."""
    parts = urlsplit(url)
    shown = mask_url(url)
    if parts.scheme.lower() != "sqs":
        raise ConfigError(f"URL {shown!r} is not an sqs:// URL")
    if parts.hostname:
        raise ConfigError(
            f"URL {shown!r} names host {parts.hostname!r}; an sqs:// URL takes no host: write "
            "sqs://?region=REGION&endpoint=URL (endpoint only for a non-AWS server)"
        )
    values = read_options("sqs", OPTIONS, url, options)
    endpoint = values["endpoint"] or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"endpoint={endpoint!r} must be an http:// or https:// URL")
    _check_fifo_group(values)
    access = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    if (access is None) != (secret is None):
        raise ConfigError(f"URL {shown!r} must give both ACCESS_KEY:SECRET@ or neither")
    return SqsSettings(
        region=values["region"] or None,
        endpoint=endpoint,
        prefix=values["prefix"],
        create=values["create"],
        bands=parse_bands(values["bands"]),
        wait=values["wait"],
        fifo=values["fifo"],
        fifo_group=values["fifo_group"],
        access_key=access,
        secret_key=secret,
    )
