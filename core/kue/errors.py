"""Every error kue raises, in one place. All derive from :class:`KueError`."""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "DecodeError",
    "JobFailed",
    "JobTooBig",
    "KueError",
    "ReservationLost",
    "ResultTimeout",
    "UnknownBackend",
    "UnknownJob",
    "Unsupported",
    "WorkerDied",
]


class KueError(Exception):
    """Base class of every error kue raises on purpose."""


class JobTooBig(KueError, ValueError):
    """A body is larger than the backend accepts; raised before anything is sent."""

    def __init__(self, size: int, limit: int, backend: str) -> None:
        self.size = size
        self.limit = limit
        self.backend = backend
        super().__init__(
            f"job body is {size} bytes, over the {backend} backend's limit of {limit} bytes; "
            "store large payloads elsewhere and put a reference to them in the job"
        )


class ReservationLost(KueError):
    """The reservation acted on is no longer held: its ttr ran out, or the job is gone."""

    def __init__(self, queue: str, job_id: str, detail: str = "") -> None:
        self.queue = queue
        self.job_id = job_id
        reason = detail or "its ttr ran out or the job was deleted"
        super().__init__(
            f"job {job_id} on queue {queue!r} is no longer reserved by this consumer ({reason}); "
            "another consumer may run it again (a worker renews its jobs' leases while they run; "
            "by hand, touch() a job held for longer than its ttr)"
        )


class Unsupported(KueError):
    """The backend does not offer this operation; its capabilities say so."""

    def __init__(self, backend: str, feature: str) -> None:
        self.backend = backend
        self.feature = feature
        super().__init__(
            f"the {backend} backend does not support {feature}; "
            "check Backend.capabilities before relying on it"
        )


class BackendUnavailable(KueError):
    """The backend's server refused or dropped the connection, or is draining."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"backend at {url} is unavailable: {detail}")


class UnknownBackend(KueError):
    """No installed plugin provides the backend a URL or configuration names."""

    def __init__(self, name: str, installed: list[str]) -> None:
        self.name = name
        self.installed = installed
        names = ", ".join(sorted(installed)) or "none"
        super().__init__(
            f"no kue backend named {name!r} is installed (installed: {names}); "
            f"install its plugin, for example `pip install kue[{name}]`"
        )


class UnknownJob(KueError):
    """A job name that no registered job carries."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"no job is registered under the name {name!r}; import the module that defines it "
            "(kue-worker --import MODULE)"
        )


class ConfigError(KueError):
    """Configuration that cannot be used: bad URL, bad file, bad value."""


class JobFailed(KueError):
    """``result()`` of a job that will not finish by itself: it was buried (or is gone)."""

    def __init__(self, queue: str, job_id: str, state: str,
                 error: dict[str, str] | None) -> None:
        self.queue = queue
        self.job_id = job_id
        self.state = state
        #: The last failure: ``type``, ``message`` and ``traceback`` (None if none was kept).
        self.error = error
        last = f": last error {error.get('type', '?')}: {error.get('message', '')}" if error \
            else ""
        super().__init__(
            f"job {job_id} on queue {queue!r} is {state} and will not finish{last}; "
            "kick or retry it to run it again"
        )


class ResultTimeout(KueError, TimeoutError):
    """``result(timeout=...)`` ran out before the job was done or buried."""

    def __init__(self, queue: str, job_id: str, timeout: float, state: str) -> None:
        self.queue = queue
        self.job_id = job_id
        self.state = state
        super().__init__(
            f"job {job_id} on queue {queue!r} was not done within {timeout:g} s "
            f"(it is {state}); wait longer, or check kue status {job_id}"
        )


class WorkerDied(KueError):
    """Why a job was buried without failing itself: its worker died running it too often.

    Never raised into a job; it is the error kept in the buried job's record.
    """


class DecodeError(KueError, ValueError):
    """A body that is not a kue envelope; the worker buries it at once."""
