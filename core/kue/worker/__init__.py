"""The worker: takes jobs off queues and runs them (``kue-worker`` wraps it)."""

from kue.worker.current import current_job
from kue.worker.threads import ThreadedWorker
from kue.worker.worker import Worker, WorkerStats

__all__ = ["ThreadedWorker", "Worker", "WorkerStats", "current_job"]
