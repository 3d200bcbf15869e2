"""Everything a backend plugin needs from kue, in one module: ``from kue.spi import ...``.

A backend plugin (see ``docs/plugins.md`` and ``examples/kue-filequeue``) implements the
:class:`Backend` protocol, declares what it can do in :class:`Capabilities`, raises kue's
errors, reads its options through :func:`read_options`, retries through :class:`Backoff`, and
may keep job records (:class:`RecordingBackend`), list queues and jobs (:class:`QueueListing`,
:class:`JobBrowser`) and report a job by id (:class:`InspectableBackend`). Importing anything
else of kue's from a plugin ties it to kue's inner layout, which may change between releases;
what is here is the contract.
"""

from __future__ import annotations

from kue.backend import (
    MAX_BATCH_RESERVE,
    MAX_PRIORITY,
    Ack,
    Backend,
    BatchBackend,
    BatchReply,
    Capabilities,
    DeletableBackend,
    FusedBackend,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
    TransactionalBackend,
)
from kue.backoff import Backoff
from kue.config import mask_url
from kue.deferred_acks import DeferredAckBackend
from kue.errors import (
    BackendUnavailable,
    ConfigError,
    JobTooBig,
    KueError,
    ReservationLost,
    Unsupported,
)
from kue.hookspecs import hookimpl
from kue.job import DEFAULT_PRIORITY, DEFAULT_TTR
from kue.listing import JobBrowser, QueueListing, declared_unsupported
from kue.options import Option, OptionValues, parse_bool, read_options
from kue.process import current_pid
from kue.records import (
    DEFAULT_RESULT_TTL,
    NOTES_TTL,
    DoneRecord,
    EncodedFields,
    RecordingBackend,
    RecordState,
    RecordStore,
)
from kue.status import InspectableBackend
from kue.validation import MAX_QUEUE_NAME, QUEUE_NAME_RULE, check_queue_name, check_reserve_n

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_RESULT_TTL",
    "DEFAULT_TTR",
    "MAX_BATCH_RESERVE",
    "MAX_PRIORITY",
    "MAX_QUEUE_NAME",
    "NOTES_TTL",
    "QUEUE_NAME_RULE",
    "Ack",
    "Backend",
    "BackendUnavailable",
    "Backoff",
    "BatchBackend",
    "BatchReply",
    "Capabilities",
    "ConfigError",
    "DeferredAckBackend",
    "DeletableBackend",
    "DoneRecord",
    "EncodedFields",
    "FusedBackend",
    "InspectableBackend",
    "JobBrowser",
    "JobInfo",
    "JobState",
    "JobTooBig",
    "KueError",
    "Option",
    "OptionValues",
    "PutItem",
    "QueueListing",
    "QueueStats",
    "RecordState",
    "RecordStore",
    "RecordingBackend",
    "Reservation",
    "ReservationLost",
    "TransactionalBackend",
    "Unsupported",
    "check_queue_name",
    "check_reserve_n",
    "current_pid",
    "declared_unsupported",
    "hookimpl",
    "mask_url",
    "parse_bool",
    "read_options",
]
