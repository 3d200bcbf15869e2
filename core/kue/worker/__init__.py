"""The worker: takes jobs off queues and runs them (``kue-worker`` wraps it)."""

from kue.worker.threads import ThreadedWorker
from kue.worker.worker import Worker, WorkerStats, current_job

__all__ = ["ThreadedWorker", "Worker", "WorkerStats", "current_job"]
