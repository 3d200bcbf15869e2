"""The beanstalkd backend: kue's Backend protocol mapped onto beanstalkd's commands.

Queues are tubes. Priority, delay and ttr go over as they are, delays and ttrs rounded up to whole
seconds (beanstalkd counts no finer), and so are reserve timeouts: ``reserve(timeout=0.3)`` waits
up to 1 s. beanstalkd's own order, ``(priority, job id)``, is kue's order.

Each reserve costs two round trips: the reserve itself and a ``stats-job`` for the job's
priority, ttr and ``reserves`` count (kue's attempts), none of which the RESERVED reply carries.

Threads: every thread uses its own connection (see :mod:`kue_beanstalk.pool`). A reservation
can be finished from another thread, but that waits while the reserving thread is blocked in a
reserve on the same connection, because only that connection may act on the job.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import greenstalk

from kue.backend import Capabilities, JobInfo, JobState, PutItem, QueueStats, Reservation
from kue.errors import BackendUnavailable, JobTooBig, ReservationLost
from kue_beanstalk.connection import Connection, ConnectionLost, Held
from kue_beanstalk.pool import ConnectionPool
from kue_beanstalk.settings import SCHEME, Settings
from kue_beanstalk.wire import (
    MAX_UINT32,
    Command,
    Reply,
    check_tube,
    ignore_command,
    put_command,
    simple,
    use_command,
    watch_command,
    whole_seconds,
)

__all__ = ["BASE_CAPABILITIES", "BeanstalkBackend"]

T = TypeVar("T")

#: What beanstalkd offers; ``max_body`` is replaced by the server's ``max-job-size``.
BASE_CAPABILITIES = Capabilities(
    name=SCHEME,
    priority=True,
    fifo=True,
    delay=True,
    bury=True,
    peek=True,
    durable=False,
    shared=True,
    max_body=65_535,
    max_delay=float(MAX_UINT32),
    # beanstalkd keeps the last second of a reservation as a safety margin (DEADLINE_SOON),
    # so a ttr of 1 s leaves no time at all.
    min_ttr=2.0,
    max_ttr=float(MAX_UINT32),
    whole_seconds=True,
    max_batch=1000,
)

#: How long a reserve sleeps between tries while this connection holds a job in the last
#: second of its ttr (beanstalkd answers DEADLINE_SOON at once until that job is finished,
#: touched or times out).
DEADLINE_SOON_POLL = 0.05
#: A job this close to its deadline is touched before it is deleted, so that a delete can
#: never remove a job whose reservation already ran out (beanstalkd deletes ready jobs too).
DELETE_MARGIN = 0.25
#: Most bytes one pipelined write of ``put_many`` carries.
MAX_PIPELINE_BYTES = 4 * 2**20

_PEEK_COMMANDS = {
    JobState.READY: b"peek-ready",
    JobState.DELAYED: b"peek-delayed",
    JobState.BURIED: b"peek-buried",
}


def _chunks(items: Sequence[PutItem], count: int, size: int) -> Iterator[Sequence[PutItem]]:
    start = total = 0
    for i, item in enumerate(items):
        if i > start and (i - start >= count or total + len(item.body) > size):
            yield items[start:i]
            start, total = i, 0
        total += len(item.body)
    if start < len(items):
        yield items[start:]


class BeanstalkBackend:
    """kue's Backend over beanstalkd, safe to share between threads and across ``fork()``.

    :param url: ``beanstalk://host:port``.
    :param options: ``socket_timeout`` and ``connect_timeout`` in seconds.
    :raises BackendUnavailable: the server cannot be reached (the URL is named, password masked).
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.settings = Settings.from_url(url, options)
        self.url = self.settings.masked_url
        self._pool = ConnectionPool(lambda: Connection(self.settings))
        with self._pool.connection() as conn, conn.io("stats"):
            server = conn.client.stats()
        #: The server's limit is read once: beanstalkd cannot change it while running.
        self.capabilities = dataclasses.replace(
            BASE_CAPABILITIES, max_body=int(server["max-job-size"])
        )

    # -- errors --------------------------------------------------------------------------

    def _put_error(self, error: Exception, size: int) -> Exception:
        if isinstance(error, greenstalk.DrainingError):
            return BackendUnavailable(
                self.url,
                "beanstalkd is draining (it was sent SIGUSR1) and takes no new jobs; "
                "put them on another server, or restart this one",
            )
        if isinstance(error, greenstalk.JobTooBigError):
            return JobTooBig(size, self.capabilities.max_body, SCHEME)
        if isinstance(error, greenstalk.BuriedError):
            return BackendUnavailable(
                self.url, f"beanstalkd ran out of memory and buried job {error.id}"
            )
        return BackendUnavailable(self.url, f"beanstalkd refused the put: {type(error).__name__}")

    def _check_body(self, body: bytes) -> None:
        if len(body) > self.capabilities.max_body:
            raise JobTooBig(len(body), self.capabilities.max_body, SCHEME)

    def _retrying(self, op: Callable[[Connection], T]) -> T:
        """Run an operation that changes nothing; once more on a new connection if reset."""
        try:
            with self._pool.connection() as conn:
                return op(conn)
        except ConnectionLost as exc:
            if not exc.retry_safe:
                raise
        with self._pool.connection() as conn:
            return op(conn)

    # -- tubes ---------------------------------------------------------------------------

    @staticmethod
    def _in_tube(conn: Connection, tube: str, commands: Sequence[Command], what: str
                 ) -> list[Reply | greenstalk.BeanstalkdError]:
        """Run ``commands`` with ``tube`` in use, sending the ``use`` along only if needed."""
        if conn.used == tube:
            return conn.pipeline(commands, what)
        replies = conn.pipeline([use_command(tube), *commands], what)
        first = replies.pop(0)
        if not isinstance(first, Reply):
            raise first
        conn.used = tube
        return replies

    @staticmethod
    def _watch(conn: Connection, tubes: Sequence[str]) -> None:
        """Make the watch list exactly ``tubes``.

        Watches go first: beanstalkd refuses to ignore the last tube a connection watches.
        """
        if conn.watched == list(tubes):
            return
        current = set(conn.watched)
        commands = [watch_command(t) for t in tubes if t not in current]
        commands += [ignore_command(t) for t in conn.watched if t not in tubes]
        if commands:
            for reply in conn.pipeline(commands, "watch/ignore"):
                if not isinstance(reply, Reply):
                    conn.drop()
                    raise ConnectionLost(
                        conn.url, f"beanstalkd refused watch/ignore: {reply!r}", retry_safe=False
                    )
        conn.watched = list(tubes)

    # -- putting -------------------------------------------------------------------------

    def put(self, queue: str, body: bytes, priority: int, delay: float, ttr: float) -> str:
        """Put one job; one round trip (two commands when the tube in use changes)."""
        tube = check_tube(queue)
        self._check_body(body)
        command = put_command(body, priority, whole_seconds(delay), whole_seconds(ttr))
        with self._pool.connection() as conn:
            (reply,) = self._in_tube(conn, tube, [command], "put")
        if not isinstance(reply, Reply):
            raise self._put_error(reply, len(body))
        return reply.values[0].decode()

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Put jobs with every command written before any reply is read.

        Batches of more than ``max_batch`` jobs (or 4 MiB) take one round trip per slice, so
        neither side's socket buffer can fill up with unread replies.
        """
        tube = check_tube(queue)
        for item in items:
            self._check_body(item.body)
        ids: list[str] = []
        with self._pool.connection() as conn:
            for chunk in _chunks(items, self.capabilities.max_batch, MAX_PIPELINE_BYTES):
                commands = [
                    put_command(i.body, i.priority, whole_seconds(i.delay), whole_seconds(i.ttr))
                    for i in chunk
                ]
                replies = self._in_tube(conn, tube, commands, "put")
                for item, reply in zip(chunk, replies, strict=True):
                    if not isinstance(reply, Reply):
                        raise self._put_error(reply, len(item.body))
                    ids.append(reply.values[0].decode())
        return ids

    # -- reserving -----------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], timeout: float | None) -> Reservation | None:
        """Reserve the most urgent ready job of ``queues``; None once ``timeout`` s passed.

        The wait is in whole seconds, rounded up (beanstalkd's reserve-with-timeout).
        """
        tubes = list(dict.fromkeys(check_tube(q) for q in queues))
        if not tubes:
            raise ValueError("reserve needs at least one queue name")
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._retrying(lambda conn: self._reserve_on(conn, tubes, deadline))

    def _reserve_on(
        self, conn: Connection, tubes: Sequence[str], deadline: float | None
    ) -> Reservation | None:
        self._watch(conn, tubes)
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                job = self._reserve_once(conn, wait)
            except greenstalk.TimedOutError:
                return None
            except greenstalk.DeadlineSoonError:
                # A job this connection holds is in its last second; nothing can be handed
                # out here until it is finished, touched or times out, so try again shortly.
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                time.sleep(DEADLINE_SOON_POLL if remaining is None
                           else min(DEADLINE_SOON_POLL, remaining))
                continue
            reservation = self._describe(conn, job)
            if reservation is not None:
                return reservation

    @staticmethod
    def _reserve_once(conn: Connection, wait: float | None) -> greenstalk.Job[bytes]:
        seconds = None if wait is None else whole_seconds(wait)
        conn.wait_for_reply(seconds)
        try:
            with conn.io("reserve"):
                return conn.client.reserve(seconds)
        finally:
            if not conn.closed:
                conn.wait_for_reply(0)

    def _describe(self, conn: Connection, job: greenstalk.Job[bytes]) -> Reservation | None:
        """The reservation of a job just reserved, from its ``stats-job``."""
        asked = time.monotonic()
        stats = conn.stats_job(job.id)
        if stats is None:
            return None  # deleted by another client in between: nothing to hand out
        reserves, ttr = int(stats["reserves"]), int(stats["ttr"])
        # time-left is rounded down and counted from a moment after ``asked``, so the job is
        # surely still reserved before asked + time-left.
        conn.hold(job.id, Held(reserves, ttr, asked + int(stats["time-left"])))
        return Reservation(
            queue=stats["tube"],
            id=str(job.id),
            body=job.body,
            priority=int(stats["pri"]),
            attempts=reserves,
            ttr=float(ttr),
            receipt=f"{conn.token}:{reserves}",
        )

    # -- acting on a reservation ---------------------------------------------------------

    def _act(self, job: Reservation, what: str,
             action: Callable[[Connection, int, Held], None]) -> None:
        """Run ``action`` on the connection that holds ``job``, or raise ReservationLost."""
        token, _, count = job.receipt.rpartition(":")
        conn = self._pool.owner(token)
        if conn is None:
            raise ReservationLost(
                job.queue, job.id,
                "the connection that reserved it is closed, so beanstalkd gave the job back",
            )
        job_id = int(job.id)
        with conn.lock:
            if not conn.alive():
                self._pool.forget(conn)
                raise ReservationLost(
                    job.queue, job.id,
                    "the connection that reserved it broke, so beanstalkd gave the job back",
                )
            held = conn.held.get(job_id)
            if held is None or str(held.reserves) != count:
                raise ReservationLost(job.queue, job.id)
            try:
                with conn.io(what):
                    action(conn, job_id, held)
            except greenstalk.NotFoundError:
                conn.held.pop(job_id, None)
                raise ReservationLost(job.queue, job.id, "its ttr ran out") from None
            except ConnectionLost as exc:
                self._pool.forget(conn)
                raise ReservationLost(
                    job.queue, job.id, f"{exc.detail}; beanstalkd gives the job back"
                ) from exc
            finally:
                self._pool.finished(conn)

    def delete(self, job: Reservation) -> None:
        """Delete a job this consumer holds (touched first if its ttr is nearly out)."""

        def action(conn: Connection, job_id: int, held: Held) -> None:
            if time.monotonic() >= held.deadline - DELETE_MARGIN:
                # beanstalkd would delete the job even if it were ready again; a touch
                # succeeds only if this connection still holds it.
                asked = time.monotonic()
                conn.client.touch(greenstalk.Job(job_id, b""))
                held.deadline = asked + held.ttr
            conn.client.delete(job_id)
            conn.held.pop(job_id, None)

        self._act(job, "delete", action)

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a job back with ``priority``, ready after ``delay`` s (rounded up)."""

        def action(conn: Connection, job_id: int, held: Held) -> None:
            try:
                conn.client.release(greenstalk.Job(job_id, b""), priority, whole_seconds(delay))
            except greenstalk.BuriedError as exc:
                conn.held.pop(job_id, None)
                raise BackendUnavailable(
                    self.url, f"beanstalkd ran out of memory and buried job {job_id}"
                ) from exc
            conn.held.pop(job_id, None)

        self._act(job, "release", action)

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Bury a job; it keeps its priority unless given one (beanstalkd always takes one)."""
        new_priority = job.priority if priority is None else priority

        def action(conn: Connection, job_id: int, held: Held) -> None:
            conn.client.bury(greenstalk.Job(job_id, b""), new_priority)
            conn.held.pop(job_id, None)

        self._act(job, "bury", action)

    def touch(self, job: Reservation) -> None:
        """Give a job its full ttr again."""

        def action(conn: Connection, job_id: int, held: Held) -> None:
            asked = time.monotonic()
            conn.client.touch(greenstalk.Job(job_id, b""))
            held.deadline = asked + held.ttr

        self._act(job, "touch", action)

    # -- looking and kicking -------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move up to n buried jobs (oldest burial first), or if none, delayed jobs, to ready."""
        tube = check_tube(queue)
        command = simple(b"kick %d" % min(n, MAX_UINT32), b"KICKED")
        with self._pool.connection() as conn:
            (reply,) = self._in_tube(conn, tube, [command], "kick")
        if not isinstance(reply, Reply):
            raise BackendUnavailable(self.url, f"beanstalkd refused the kick: {reply!r}")
        return int(reply.values[0])

    def peek(self, queue: str, state: JobState) -> JobInfo | None:
        """The job that leaves ``state`` next, as a copy; nothing is reserved."""
        tube = check_tube(queue)
        if state not in _PEEK_COMMANDS:
            raise ValueError(f"peek takes ready, delayed or buried, not {state!r}")
        command = simple(_PEEK_COMMANDS[state], b"FOUND", has_body=True)
        return self._retrying(lambda conn: self._peek_on(conn, tube, state, command))

    def _peek_on(
        self, conn: Connection, tube: str, state: JobState, command: Command
    ) -> JobInfo | None:
        for _ in range(10):
            (reply,) = self._in_tube(conn, tube, [command], "peek")
            if isinstance(reply, greenstalk.NotFoundError):
                return None
            if not isinstance(reply, Reply):
                raise BackendUnavailable(self.url, f"beanstalkd refused the peek: {reply!r}")
            stats = conn.stats_job(int(reply.values[0]))
            if stats is None or stats["state"] != state.value:
                continue  # taken or deleted between the two commands: look again
            return JobInfo(
                queue=tube,
                id=reply.values[0].decode(),
                body=reply.body,
                priority=int(stats["pri"]),
                state=state,
                attempts=int(stats["reserves"]),
            )
        return None

    def stats(self, queue: str) -> QueueStats:
        """Counts from ``stats-tube``; a tube beanstalkd does not know holds nothing."""
        tube = check_tube(queue)

        def op(conn: Connection) -> QueueStats:
            try:
                with conn.io("stats-tube"):
                    s = conn.client.stats_tube(tube)
            except greenstalk.NotFoundError:
                return QueueStats()
            return QueueStats(
                ready=int(s["current-jobs-ready"]),
                delayed=int(s["current-jobs-delayed"]),
                reserved=int(s["current-jobs-reserved"]),
                buried=int(s["current-jobs-buried"]),
            )

        return self._retrying(op)

    def close(self) -> None:
        """Close every connection of this backend in this process."""
        self._pool.close()

    def __repr__(self) -> str:
        return f"<BeanstalkBackend {self.url}>"
