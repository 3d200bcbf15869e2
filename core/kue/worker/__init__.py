"""The worker: takes jobs off queues and runs them (``kue-worker`` wraps it)."""

from kue.worker.worker import Worker, WorkerStats, current_job

__all__ = ["Worker", "WorkerStats", "current_job"]
