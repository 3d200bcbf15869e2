"""The prefork supervisor behind ``kue-worker -c N``.

It keeps N forked children running jobs. Each child reports the job it runs over a pipe, so the
supervisor can:

- replace a child that exits or is killed (at once if it died running a job; with a growing
  delay if children keep dying before they are ready, and giving up with an error after
  :data:`MAX_QUICK_DEATHS` in a row, so a broken job module cannot fork in a tight loop);
- settle the job of a child that died mid-job: release it (with the job's backoff) while
  attempts remain, bury it once ``max_attempts`` children have died running it, so a job that
  segfaults every time cannot crash-loop the pool;
- kill a child whose job ran past its ``time_limit`` plus a grace period (the child stops a
  job at its limit itself, with SIGALRM; the kill is for one stuck in a C call that ignores
  signals), and count that attempt as failed (release for a retry, or bury with the reason
  "time limit of N s exceeded");
- kill a child that stopped renewing its job's lease for the job's ttr plus a grace period: it
  is frozen (SIGSTOP, a deadlock in C), and the backend has handed the job on, or will;
- on SIGTERM or SIGINT stop taking jobs, let each child finish its job within the shutdown
  timeout, then release what is still running and exit 0; a second signal kills the children
  at once (their jobs come back through their ttr).

The loop sleeps in ``select`` on the children's pipes and a signal wake-up pipe: an idle pool
costs no CPU.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import pluggy

from kue.backend import Backend, BatchBackend, Reservation
from kue.errors import BackendUnavailable, KueError, ReservationLost, UnknownJob
from kue.hookcalls import notify
from kue.job import DEFAULT_TIME_LIMIT, lookup
from kue.records import DEFAULT_RESULT_TTL
from kue.status import Records
from kue.validation import check_queue_name, retry_delay_within
from kue.worker.child import child_main
from kue.worker.scheduler import Scheduler
from kue.worker.settle import WorkerStats
from kue.worker.worker import DEFAULT_PREFETCH

__all__ = ["MAX_QUICK_DEATHS", "ChildRecord", "Supervisor"]

log = logging.getLogger("kue.supervisor")

#: Children that die before they are ready to take jobs, in a row, before the supervisor
#: gives up (a job module that fails in a child, say).
MAX_QUICK_DEATHS = 8
#: Longest the loop sleeps when nothing is due (signals and pipes wake it sooner).
IDLE_WAIT = 5.0


@dataclass
class ChildRecord:
    """What the supervisor knows of one child."""

    slot: int
    pid: int
    fd: int
    born: float
    buffer: bytes = b""
    current: dict[str, object] | None = None
    jobs_started: int = 0
    ready: bool = False
    last_beat: float = 0.0
    #: The jobs the child's last round trip reserved, with prefetch: (queue, id, receipt,
    #: attempts, priority, ttr) each.
    held: list[list[object]] = field(default_factory=list)
    #: Why the supervisor killed this child: "frozen", "time limit" or "shutdown".
    killed_for: str = ""


@dataclass
class SupervisorStats:
    """What happened to the pool."""

    spawned: int = 0
    deaths: int = 0
    stale_kills: int = 0
    time_limit_kills: int = 0
    jobs_finished: int = 0
    released_after_death: int = 0
    buried_after_death: int = 0
    exit_codes: list[int] = field(default_factory=list)
    #: Settled jobs the children reported, by outcome (deleted, released, buried, lost).
    outcomes: dict[str, int] = field(default_factory=dict)


class Supervisor:
    """Keep ``concurrency`` forked workers running jobs from ``queues``.

    :param open_backend: opens a fresh backend (called in each child after fork, and lazily
        in the supervisor when it must settle a dead child's job).
    :param queues: queue names the children reserve from.
    :param concurrency: number of children.
    :param plugin_manager: hooks; children inherit it through fork.
    :param burst: children exit once the queues are empty; the supervisor exits after them.
    :param max_jobs: stop the pool after this many jobs in all.
    :param max_jobs_per_child: recycle a child after this many jobs.
    :param shutdown_timeout: seconds children get to finish their jobs after SIGTERM.
    :param ttr_grace: seconds past a job's ttr without a lease renewal before its child is
        killed as frozen; also the grace a coroutine job gets past its time limit, which the
        child enforces itself, before the kill.
    :param time_limit: the limit of jobs that set none (passed to each child).
    :param result_ttl: seconds a done job's record is kept (0: none).
    :param prefetch: most jobs each child holds at once (see :class:`~kue.worker.Worker`).
    :param records_for: opens where a child writes job records, given its backend.
    :param scheduler: puts periodic ticks from the supervisor's own loop (``--scheduler``),
        never from the children, until the pool stops.
    """

    def __init__(
        self,
        open_backend: Callable[[], Backend],
        queues: list[str],
        concurrency: int,
        *,
        plugin_manager: pluggy.PluginManager,
        burst: bool = False,
        max_jobs: int | None = None,
        max_jobs_per_child: int | None = None,
        shutdown_timeout: float = 30.0,
        ttr_grace: float = 2.0,
        time_limit: float = DEFAULT_TIME_LIMIT,
        result_ttl: float = DEFAULT_RESULT_TTL,
        records_for: Callable[[Backend], Records] | None = None,
        scheduler: Scheduler | None = None,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        for queue in queues:
            check_queue_name(queue)
        self.open_backend = open_backend
        self.queues = queues
        self.concurrency = concurrency
        self.pm = plugin_manager
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_jobs_per_child = max_jobs_per_child
        self.shutdown_timeout = shutdown_timeout
        self.ttr_grace = ttr_grace
        self.time_limit = time_limit
        self.result_ttl = result_ttl
        self.prefetch = prefetch
        self.records_for = records_for
        self.scheduler = scheduler
        self.children: dict[int, ChildRecord] = {}
        self.stats = SupervisorStats()
        self.stopping = False
        self.exit_status = 0
        self._signals = 0
        self._shutdown_deadline: float | None = None
        self._quick_deaths = 0
        self._respawn_at = 0.0
        self._finished_slots: set[int] = set()
        self._backend: Backend | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()

    @property
    def totals(self) -> WorkerStats:
        """What the pool did, as one worker's stats: the children's and the supervisor's."""
        out = self.stats.outcomes
        return WorkerStats(
            succeeded=out.get("deleted", 0),
            retried=out.get("released", 0) + self.stats.released_after_death,
            buried=out.get("buried", 0) + self.stats.buried_after_death,
            lost=out.get("lost", 0),
            handled=self.stats.jobs_finished,
        )

    # -- signals ---------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._signals += 1

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    # -- children --------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        read_fd, write_fd = os.pipe()
        # A stop signal must not reach the child while it still runs the supervisor's handler:
        # block them across fork; the child unblocks once its own handlers are in place.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(read_fd)
                self._selector.close()
                for fd in (self._wake_r, self._wake_w, *(c.fd for c in self.children.values())):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                status = child_main(
                    write_fd, self.open_backend, self.queues, self.pm, burst=self.burst,
                    max_jobs=self.max_jobs_per_child, name=f"child {slot} pid {os.getpid()}",
                    time_limit=self.time_limit, result_ttl=self.result_ttl,
                    records_for=self.records_for, signal_mask=mask, prefetch=self.prefetch,
                )
            except BaseException:
                log.exception("worker child %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.children[pid] = ChildRecord(slot=slot, pid=pid, fd=read_fd, born=time.monotonic())
        self._selector.register(read_fd, selectors.EVENT_READ, pid)
        self.stats.spawned += 1
        log.debug("started child %d in slot %d", pid, slot)

    def _read(self, child: ChildRecord) -> None:
        while True:
            try:
                chunk = os.read(child.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            child.buffer += chunk
            *lines, child.buffer = child.buffer.split(b"\n")
            for line in lines:
                self._on_report(child, json.loads(line))

    def _on_report(self, child: ChildRecord, doc: dict[str, object]) -> None:
        if doc.get("event") == "ready":
            child.ready = True
            self._quick_deaths = 0
        elif doc.get("event") == "start":
            child.current = doc
            child.last_beat = time.monotonic()
            child.jobs_started += 1
        elif doc.get("event") == "beat":
            child.last_beat = time.monotonic()
        elif doc.get("event") in ("held", "held+"):
            rows = doc.get("jobs")
            if doc["event"] == "held":
                child.held = []
            if isinstance(rows, list):
                child.held.extend(rows)
        elif doc.get("event") == "end":
            child.current = None
            self.stats.jobs_finished += 1
            outcome = str(doc.get("outcome"))
            self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
            if self.max_jobs is not None and self.stats.jobs_finished >= self.max_jobs:
                self._begin_shutdown("reached --max-jobs")

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self._read(child)
            self._selector.unregister(child.fd)
            os.close(child.fd)
            self._on_exit(child, os.waitstatus_to_exitcode(status))

    def _on_exit(self, child: ChildRecord, code: int) -> None:
        self.stats.exit_codes.append(code)
        how = f"signal {-code}" if code < 0 else f"code {code}"
        job = child.current
        if code != 0 or job is not None:
            self.stats.deaths += 1
        if job is not None:
            log.warning(
                "child %d died (%s) running job %s %s on %s (attempt %s)",
                child.pid, how, job["job"], job["id"], job["queue"], job["attempts"],
                extra={"job": job["job"], "id": job["id"], "queue": job["queue"],
                       "attempt": job["attempts"]},
            )
            if child.killed_for == "time limit":
                self._settle_orphan(job, how, retry=True, reason=f"time limit of "
                                    f"{float(str(job['time_limit'])):g} s exceeded")
            elif child.killed_for != "frozen":
                self._settle_orphan(job, how, retry=child.killed_for != "shutdown")
        elif code != 0:
            log.warning("child %d exited (%s)", child.pid, how)
        if code != 0 and child.held:
            self._give_back_held(child, None if job is None else str(job["id"]))
        if code != 0 and not child.ready:
            self._quick_deaths += 1
            self._respawn_at = time.monotonic() + min(0.1 * 2 ** self._quick_deaths, 5.0)
            if self._quick_deaths >= MAX_QUICK_DEATHS:
                log.error(
                    "children died %d times in a row before they were ready (last: %s); "
                    "giving up: check the log above for the cause", self._quick_deaths, how,
                )
                self.exit_status = 1
                self._begin_shutdown("children keep dying at start")
        if code == 0 and self.burst:
            self._finished_slots.add(child.slot)

    def _warm_up(self) -> None:
        """Open and close the backend once before forking.

        Children then inherit its imported client library instead of each importing it, and a
        bad URL shows up here, once. An unavailable server is only logged: children wait for it.
        """
        try:
            self.open_backend().close()
        except BackendUnavailable as exc:
            log.warning("%s; children will retry until it answers", exc)

    def _supervisor_backend(self) -> Backend:
        if self._backend is None:
            self._backend = self.open_backend()
        return self._backend

    def _settle_orphan(self, job: dict[str, object], how: str, *, retry: bool,
                       reason: str = "") -> None:
        """Release (or, out of attempts, bury) the job a dead child held.

        ``retry=False`` is for children the supervisor killed at shutdown: their job goes back
        at once and its attempt does not count against it. ``reason`` is the failure's, when
        the supervisor killed the child for it (a time limit); else the child died.
        """
        if job.get("body") is None:
            return  # too big to have been reported: its ttr brings it back
        reservation = Reservation(
            queue=str(job["queue"]), id=str(job["id"]), body=base64.b64decode(str(job["body"])),
            priority=int(str(job["priority"])), attempts=int(str(job["attempts"])),
            ttr=float(str(job["ttr"])), receipt=str(job["receipt"]),
        )
        max_attempts = int(str(job["max_attempts"]))
        try:
            backend = self._supervisor_backend()
            if retry and reservation.attempts >= max_attempts:
                backend.bury(reservation, None)
                self.stats.buried_after_death += 1
                if reason:
                    reason = f"{reason} (attempt {reservation.attempts} of {max_attempts})"
                else:
                    reason = (f"its worker died while running it ({how}; attempt "
                              f"{reservation.attempts} of {max_attempts})")
                log.error("buried job %s %s: %s", job["job"], job["id"], reason)
                notify(self.pm, "kue_job_buried", job=reservation, reason=reason)
            else:
                try:
                    delay = lookup(str(job["job"])).retry_delay(reservation.attempts) if retry \
                        else 0.0
                except UnknownJob:
                    delay = 0.0
                backend.release(reservation, reservation.priority,
                                retry_delay_within(delay, backend.capabilities))
                self.stats.released_after_death += 1
                if reason:
                    log.warning("job %s %s failed (attempt %d of %d): %s; released for a retry",
                                job["job"], job["id"], reservation.attempts, max_attempts,
                                reason)
        except ReservationLost:
            pass  # its ttr ran out first: the backend already handed it on
        except KueError as exc:
            log.warning("could not settle job %s of a dead child (%s); its ttr will", job["id"],
                        exc)

    def _give_back_held(self, child: ChildRecord, in_hand: str | None) -> None:
        """Give back at once the prefetched jobs of a child that died (not the one it ran).

        Jobs it had not started are ready again for the other children, their attempt not
        counted; jobs it finished whose ack had not gone yet run again (a duplicate, tied to
        the death). Those already settled are skipped by the backend (receipts never repeat).
        """
        backend = self._supervisor_backend()
        if not isinstance(backend, BatchBackend):
            return
        jobs = [Reservation(queue=str(q), id=str(i), body=b"", priority=int(str(p)),
                            attempts=int(str(a)), ttr=float(str(t)), receipt=str(r))
                for q, i, r, a, p, t in child.held if str(i) != in_hand]
        try:
            backend.settle_many((), jobs, (), 0, 0)
        except KueError as exc:
            log.warning("could not give back the %d prefetched jobs of dead child %d (%s); "
                        "their ttr will", len(jobs), child.pid, exc)
            return
        self.stats.released_after_death += len(jobs)
        log.warning("gave back the %d prefetched jobs of dead child %d", len(jobs), child.pid)

    def _police(self, now: float) -> float | None:
        """Kill children past a job's time limit or frozen; returns the next such deadline."""
        next_deadline: float | None = None
        for child in self.children.values():
            job = child.current
            if job is None or child.killed_for:
                continue
            for why, deadline in self._deadlines(child, job):
                if now >= deadline:
                    self._kill(child, why, job)
                    break
                if next_deadline is None or deadline < next_deadline:
                    next_deadline = deadline
        return next_deadline

    def _deadlines(self, child: ChildRecord,
                   job: dict[str, object]) -> list[tuple[str, float]]:
        deadlines = [("frozen", child.last_beat + float(str(job["ttr"])) + self.ttr_grace)]
        if job.get("time_limit") is not None:
            grace = self.ttr_grace if job.get("self_limited") else 0.0
            deadlines.append(("time limit", float(str(job["t"])) +
                              float(str(job["time_limit"])) + grace))
        return deadlines

    def _kill(self, child: ChildRecord, why: str, job: dict[str, object]) -> None:
        if why == "frozen":
            log.warning("killing child %d: it renewed no lease of job %s %s for its ttr of "
                        "%s s (frozen?)", child.pid, job["job"], job["id"], job["ttr"])
            self.stats.stale_kills += 1
        else:
            log.warning("killing child %d: job %s %s ran past its time limit of %s s",
                        child.pid, job["job"], job["id"], job["time_limit"])
            self.stats.time_limit_kills += 1
        child.killed_for = why
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)

    def _fill(self, now: float) -> float | None:
        """Start children for empty slots; returns when a delayed respawn is due."""
        if self.stopping or now < self._respawn_at:
            return None if self.stopping else self._respawn_at
        taken = {c.slot for c in self.children.values()}
        for slot in range(self.concurrency):
            if slot not in taken and slot not in self._finished_slots:
                self._spawn(slot)
        return None

    # -- stopping --------------------------------------------------------------------------

    def _begin_shutdown(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping (%s): children finish their current job", why)
        self._shutdown_deadline = time.monotonic() + self.shutdown_timeout
        notify(self.pm, "kue_worker_stopping", worker=self)
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)

    def _kill_all(self, why: str) -> None:
        log.warning("%s: killing %d children", why, len(self.children))
        for child in self.children.values():
            child.killed_for = child.killed_for or "shutdown"
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)

    def _handle_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass
        if self._signals >= 2 and self.stopping and self._shutdown_deadline is not None:
            self._shutdown_deadline = None
            for child in self.children.values():
                child.killed_for = "frozen"  # their jobs come back through ttr
            self._kill_all("second signal")
            self.exit_status = 1
        elif self._signals >= 1:
            self._begin_shutdown("signal")

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        """Run the pool until stopped; returns the exit status (0 after a clean stop)."""
        self._install_signals()
        self._warm_up()
        notify(self.pm, "kue_worker_started", worker=self)
        log.info("supervisor %d: %d children on queues %s", os.getpid(), self.concurrency,
                 ", ".join(self.queues))
        try:
            while True:
                self._reap()
                now = time.monotonic()
                if self.burst and len(self._finished_slots) >= self.concurrency:
                    self.stopping = True
                if self.stopping and not self.children:
                    break
                waits = [IDLE_WAIT]
                respawn = self._fill(now)
                if respawn is not None:
                    waits.append(respawn - now)
                stale = self._police(now)
                if stale is not None:
                    waits.append(stale - now)
                if self.scheduler is not None and not self.stopping:
                    waits.append(self.scheduler.run_pending())
                if self._shutdown_deadline is not None:
                    if now >= self._shutdown_deadline:
                        self._shutdown_deadline = None
                        self._kill_all("shutdown timeout")
                    else:
                        waits.append(self._shutdown_deadline - now)
                for key, _ in self._selector.select(max(0.0, min(waits))):
                    if key.data is None:
                        self._handle_signals()
                    elif (child := self.children.get(key.data)) is not None:
                        self._read(child)
        finally:
            signal.set_wakeup_fd(-1)
            if self._backend is not None:
                self._backend.close()
            log.info("supervisor %d stopped", os.getpid())
        return self.exit_status
