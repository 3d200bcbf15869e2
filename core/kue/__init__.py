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
    JobFailed,
    JobTooBig,
    KueError,
    ReservationLost,
    ResultTimeout,
    UnknownBackend,
    UnknownJob,
    Unsupported,
)
from kue.hookspecs import WorkerInfo, hookimpl, hookspec
from kue.interrupts import TimeLimitExceeded
from kue.job import DEFAULT_PRIORITY, DEFAULT_TIME_LIMIT, DEFAULT_TTR, Job
from kue.job_function import JobFunction, job
from kue.plugins import get_plugin_manager
from kue.queue import JobHandle, Queue, ReservedJob, connect
from kue.records import DEFAULT_RESULT_TTL, JobStatus, RecordState
from kue.schedules import Schedule, periodic
from kue.worker.current import RunningJob, current_job

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_RESULT_TTL",
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
    "JobFailed",
    "JobFunction",
    "JobHandle",
    "JobInfo",
    "JobState",
    "JobStatus",
    "JobTooBig",
    "KueError",
    "PutItem",
    "Queue",
    "QueueStats",
    "RecordState",
    "Reservation",
    "ReservationLost",
    "ReservedJob",
    "ResultTimeout",
    "RunningJob",
    "Schedule",
    "Settings",
    "TimeLimitExceeded",
    "UnknownBackend",
    "UnknownJob",
    "Unsupported",
    "WorkerInfo",
    "connect",
    "current_job",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "job",
    "load_settings",
    "periodic",
]
