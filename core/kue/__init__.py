"""kue: background jobs with the same promises on every backend.

>>> import kue
>>> q = kue.connect("memory://doctest", queue="videos")
>>> job_id = q.put({"processVideo": 4871}, priority=10)
>>> job = q.reserve(timeout=0)
>>> job.json()
{'processVideo': 4871}
>>> job.delete()
"""

from kue.backend import (
    MAX_PRIORITY,
    Backend,
    Capabilities,
    JobInfo,
    JobState,
    PutItem,
    QueueStats,
    Reservation,
)
from kue.codec import DecodeError, Envelope
from kue.config import Settings, load_settings
from kue.errors import (
    BackendUnavailable,
    ConfigError,
    JobTooBig,
    KueError,
    ReservationLost,
    TimeLimitExceeded,
    UnknownBackend,
    UnknownJob,
    Unsupported,
)
from kue.hookspecs import hookimpl, hookspec
from kue.job import DEFAULT_PRIORITY, DEFAULT_TIME_LIMIT, DEFAULT_TTR, Job, JobFunction, job
from kue.plugins import get_plugin_manager
from kue.queue import Queue, ReservedJob, connect
from kue.worker.worker import current_job

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_TIME_LIMIT",
    "DEFAULT_TTR",
    "MAX_PRIORITY",
    "Backend",
    "BackendUnavailable",
    "Capabilities",
    "ConfigError",
    "DecodeError",
    "Envelope",
    "Job",
    "JobFunction",
    "JobInfo",
    "JobState",
    "JobTooBig",
    "KueError",
    "PutItem",
    "Queue",
    "QueueStats",
    "Reservation",
    "ReservationLost",
    "ReservedJob",
    "Settings",
    "TimeLimitExceeded",
    "UnknownBackend",
    "UnknownJob",
    "Unsupported",
    "connect",
    "current_job",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "job",
    "load_settings",
]
