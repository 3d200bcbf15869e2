"""What runs in a prefork child: a Worker that reports each job's start and end.

Reports go to the supervisor over a pipe, one JSON line per event; writes under PIPE_BUF are
atomic, so lines never interleave.
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

import pluggy

from kue.backend import Backend, Reservation
from kue.backoff import Backoff
from kue.codec import Envelope
from kue.errors import BackendUnavailable, UnknownJob
from kue.hookspecs import hookimpl
from kue.job import DEFAULT_TIME_LIMIT, lookup
from kue.records import DEFAULT_RESULT_TTL
from kue.status import Records
from kue.worker.lease import LeaseKeeper
from kue.worker.worker import DEFAULT_PREFETCH, Worker

__all__ = ["Reporter", "child_main"]

log = logging.getLogger("kue.worker")
PR_SET_PDEATHSIG = 1
#: Largest body a child passes to the supervisor for settling its job should the child die.
BODY_REPORT_LIMIT = 64 * 1024
#: Bytes of held jobs per report line: well under PIPE_BUF (4096), so each line is atomic.
HELD_LINE = 3000


class Reporter:
    """A plugin, registered only in the child, that tells the supervisor what runs."""

    def __init__(self, fd: int, worker: Worker) -> None:
        self.fd = fd
        self.worker = worker

    def _send(self, doc: dict[str, object]) -> None:
        try:
            os.write(self.fd, (json.dumps(doc) + "\n").encode())
        except OSError:
            # The supervisor is gone: finish this job and stop, as after SIGTERM.
            self.worker.stop()

    @hookimpl
    def kue_job_started(self, job: Reservation, envelope: Envelope) -> None:
        """Report the job this child now runs, with what the supervisor needs to judge it."""
        limit = self.worker.settler.time_limit
        try:
            job_class = lookup(envelope.job)
            max_attempts = job_class.max_attempts
            if job_class.time_limit is not None:
                limit = job_class.time_limit
        except UnknownJob:
            max_attempts = 1
        self._send({
            "event": "start", "job": envelope.job, "id": job.id, "queue": job.queue,
            "receipt": job.receipt, "attempts": job.attempts, "priority": job.priority,
            "ttr": job.ttr, "max_attempts": max_attempts,
            # The child stops the job at its limit itself (SIGALRM, or cancelling a coroutine)
            # and settles it on its own connection; the supervisor kills it only if it fails
            # to, after a grace period (a C call that ignores signals).
            "time_limit": None if limit == float("inf") else limit, "self_limited": True,
            # Backends that settle by re-sending (SQS) need the body; big ones are left to ttr.
            "body": base64.b64encode(job.body).decode() if len(job.body) <= BODY_REPORT_LIMIT
            else None,
            "t": time.monotonic(),
        })

    def renewed(self, job: Reservation) -> None:
        """Tell the supervisor this child renewed its job's lease: it is alive, not frozen."""
        self._send({"event": "beat", "id": job.id, "t": time.monotonic()})

    def batch(self, jobs: Sequence[Reservation]) -> None:
        """Tell the supervisor the jobs this child's last round trip reserved (prefetch)."""
        rows = [[j.queue, j.id, j.receipt, j.attempts, j.priority, j.ttr] for j in jobs]
        event = "held"
        # Lines under PIPE_BUF are written atomically: a long batch goes in several.
        while True:
            chunk: list[list[object]] = []
            size = 0
            while rows and (not chunk or size + len(json.dumps(rows[0])) < HELD_LINE):
                size += len(json.dumps(rows[0])) + 1
                chunk.append(rows.pop(0))
            self._send({"event": event, "jobs": chunk})
            event = "held+"
            if not rows:
                return

    def ready(self) -> None:
        """Tell the supervisor this child has its backend and is about to take jobs."""
        self._send({"event": "ready", "t": time.monotonic()})

    @hookimpl
    def kue_job_settled(self, job: Reservation, outcome: str) -> None:
        """Report that the job in hand is settled, whatever the outcome."""
        self._send({"event": "end", "outcome": outcome, "t": time.monotonic()})


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the supervisor dies, so no orphan keeps working."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def _open_with_retry(open_backend: Callable[[], Backend], stop: list[bool]) -> Backend | None:
    """Open the backend, retrying with capped backoff while its server is unavailable."""
    backoff = Backoff()
    while not stop:
        try:
            return open_backend()
        except BackendUnavailable as exc:
            if backoff.first_failure:
                log.warning("%s; retrying until it answers", exc)
            time.sleep(backoff.next())
    return None


def child_main(
    report_fd: int,
    open_backend: Callable[[], Backend],
    queues: list[str],
    pm: pluggy.PluginManager,
    *,
    burst: bool,
    max_jobs: int | None,
    name: str,
    time_limit: float = DEFAULT_TIME_LIMIT,
    result_ttl: float = DEFAULT_RESULT_TTL,
    records_for: Callable[[Backend], Records] | None = None,
    signal_mask: set[int | signal.Signals] | None = None,
    prefetch: int = DEFAULT_PREFETCH,
) -> int:
    """Run a worker in this (forked) child until stopped; returns the exit status.

    ``signal_mask`` is the mask to restore once this child's signal handlers are installed
    (the supervisor forks with SIGTERM and SIGINT blocked). ``records_for`` opens where
    the child writes job records (a results store is opened anew in each child).
    """
    _die_with_parent()
    stop: list[bool] = []
    worker: Worker | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop:
            os._exit(1)  # second signal: stop now; the job comes back through its ttr
        stop.append(True)
        if worker is not None:
            worker.interrupt()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if signal_mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
    backend = _open_with_retry(open_backend, stop)
    if backend is None:
        return 0
    keeper = LeaseKeeper(backend)
    records = records_for(backend) if records_for is not None else Records.of(backend)
    worker = Worker(backend, queues, plugin_manager=pm, name=name, time_limit=time_limit,
                    keeper=keeper, records=records, result_ttl=result_ttl, prefetch=prefetch)
    reporter = Reporter(report_fd, worker)
    keeper.on_renew = reporter.renewed
    worker.on_batch = reporter.batch
    pm.register(reporter, name="kue.supervisor-reporter")
    reporter.ready()
    if stop:
        worker.stop()
    try:
        worker.run(burst=burst, max_jobs=max_jobs)
    finally:
        keeper.close()
        backend.close()
    return 0
