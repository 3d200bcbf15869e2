"""The beanstalkd backend: kue's Backend protocol mapped onto beanstalkd's commands.

Queues are tubes. Priority, delay and ttr go over as they are, delays and ttrs rounded up to whole
seconds (beanstalkd counts no finer), and so are reserve timeouts: ``reserve(timeout=0.3)`` waits
up to 1 s. beanstalkd's own order, ``(priority, job id)``, is kue's order.

Round trips: ``put`` is one; ``put_many`` one per batch of up to ``capabilities.max_batch``;
``delete`` one. A reservation needs the job's priority, ttr and ``reserves`` count (kue's
attempts), which the RESERVED reply does not carry, so a ``stats-job`` of the job id the
connection expects next (see :meth:`Connection.note_reserved`) is sent along with the reserve:
one round trip when the guess is right, as it is for a consumer draining a queue, two when not.
``delete_and_reserve`` (``capabilities.delete_and_reserve``, the worker's hot path) sends the
delete with that pair, so a worker pays one round trip per job when jobs are waiting.
``settle_many`` (``capabilities.reserve_many``, the worker's prefetch) writes a batch's deletes,
give-backs, reserves and guessed ``stats-job`` commands at once: one round trip per batch (see
:mod:`kue_beanstalk.batch`).

Every command goes through :class:`Connection`, whose reader alone reads its socket: that is
what lets several commands share one write. greenstalk supplies the errors replies are read
as (``greenstalk.NotFoundError`` and the rest), not a client.

Threads: every thread uses its own connection (see :mod:`kue_beanstalk.pool`). A reservation
can be finished from another thread, but that waits while the reserving thread is blocked in a
reserve on the same connection, because only that connection may act on the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import greenstalk

from kue.spi import (
    Ack,
    BackendUnavailable,
    BatchReply,
    Capabilities,
    JobInfo,
    JobState,
    JobTooBig,
    PutItem,
    QueueStats,
    Reservation,
    ReservationLost,
    Unsupported,
    check_reserve_n,
)
from kue_beanstalk.batch import (
    MAX_RESERVE,
    GiveBacks,
    give_back_command,
    held_reservation,
    settle_on,
)
from kue_beanstalk.connection import (
    DELETE_MARGIN,
    LATE_TTR,
    SPECULATION_MAX_WAIT,
    Connection,
    ConnectionLost,
    Held,
)
from kue_beanstalk.pool import ConnectionPool
from kue_beanstalk.settings import SCHEME, BeanstalkSettings
from kue_beanstalk.wire import (
    DEFAULT_TUBE,
    MAX_UINT32,
    Command,
    JobFields,
    Reply,
    check_tube,
    ignore_command,
    parse_list,
    parse_stats,
    put_command,
    reserve_command,
    simple,
    stats_job_command,
    stats_tube_command,
    use_command,
    watch_command,
    whole_seconds,
)

__all__ = ["BASE_CAPABILITIES", "LATE_TTR", "BeanstalkBackend"]

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
    # beanstalkd counts delays and ttrs in whole seconds, and reserve-with-timeout too.
    timing_tolerance=1.0,
    max_batch=1000,
    delete_and_reserve=True,
    reserve_many=True,
    max_reserve=MAX_RESERVE,
    extra={
        # Found by the contract's state machine: under a steady stream of commands from
        # other connections, beanstalkd 1.12 can keep a reservation whose ttr ran out for
        # many seconds (stats-job: state reserved, time-left negative). The machine then
        # exercises ttr expiry with long ttrs only; the ttr contract tests still hold.
        "ttr_expiry_late_under_load": "beanstalkd 1.12 may time a reservation out many "
        "seconds after its ttr while other connections keep it busy",
    },
)

#: How long a reserve sleeps between tries while this connection holds a job in the last
#: second of its ttr (beanstalkd answers DEADLINE_SOON at once until that job is finished,
#: touched or times out).
DEADLINE_SOON_POLL = 0.05
#: Most bytes one pipelined write of ``put_many`` carries.
MAX_PIPELINE_BYTES = 4 * 2**20
#: Tube names already checked; past this many the cache starts over.
_TUBE_CACHE_SIZE = 4096
#: beanstalkd's job ids are 64-bit; a larger number would be a BAD_FORMAT that costs the
#: connection.
MAX_JOB_ID = 2**64 - 1

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
        self.settings = BeanstalkSettings.from_url(url, options)
        self.url = self.settings.masked_url
        self._pool = ConnectionPool(lambda: Connection(self.settings))
        with self._pool.connection() as conn:
            server = conn.stats(simple(b"stats", b"OK", has_body=True), "stats")
        if server is None or "max-job-size" not in server:
            raise BackendUnavailable(self.url, f"beanstalkd's stats lack max-job-size: {server}")
        #: The server's limit is read once: beanstalkd cannot change it while running.
        self.capabilities = dataclasses.replace(
            BASE_CAPABILITIES, max_body=int(server["max-job-size"])
        )
        self._max_body = self.capabilities.max_body
        # Checking a tube name with its regular expression is a measurable share of a put.
        self._tubes: set[str] = set()
        self._given = GiveBacks()

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
        if len(body) > self._max_body:
            raise JobTooBig(len(body), self._max_body, SCHEME)

    def _tube(self, queue: str) -> str:
        """``queue`` if it is a valid tube name (see :func:`check_tube`), remembering it."""
        if queue in self._tubes:
            return queue
        tube = check_tube(queue)
        if len(self._tubes) >= _TUBE_CACHE_SIZE:
            self._tubes.clear()
        self._tubes.add(tube)
        return tube

    def _tube_list(self, queues: Sequence[str]) -> list[str]:
        if len(queues) == 1 and queues[0] in self._tubes:
            return [queues[0]]  # the usual case, without building a dict
        tubes = list(dict.fromkeys(self._tube(q) for q in queues))
        if not tubes:
            raise ValueError("reserve needs at least one queue name")
        return tubes

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
        # Written out rather than through put_command and pipeline: this is the hot path of
        # every producer, and each layer costs a few per cent of a loopback round trip.
        if queue not in self._tubes:
            self._tube(queue)
        size = len(body)
        if size > self._max_body:
            raise JobTooBig(size, self._max_body, SCHEME)
        data = b"put %d %d %d %d\r\n%b\r\n" % (
            priority, whole_seconds(delay) if delay else 0, whole_seconds(ttr), size, body
        )
        conn = self._pool.acquire()
        try:
            if conn.used == queue:
                line = conn.request(data, "put")
                if line[:9] == b"INSERTED ":
                    return line[9:-2].decode()
                error = conn.error_of(line, "put")
            else:
                (reply,) = self._in_tube(conn, queue, [Command(data, b"INSERTED")], "put")
                if isinstance(reply, Reply):
                    return reply.values[0].decode()
                error = reply
        finally:
            conn.lock.release()
        raise self._put_error(error, size)

    def put_many(self, queue: str, items: Sequence[PutItem]) -> list[str]:
        """Put jobs with every command written before any reply is read.

        Batches of more than ``max_batch`` jobs (or 4 MiB) take one round trip per slice, so
        neither side's socket buffer can fill up with unread replies.
        """
        tube = self._tube(queue)
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
        tubes = self._tube_list(queues)
        deadline = None if timeout is None else time.monotonic() + timeout
        # What _retrying does, written out: this runs once per job a consumer takes. No poll
        # for a broken socket first: a reserve is retried on a new connection if reset.
        conn = self._pool.acquire(check=False)
        try:
            return self._reserve_on(conn, tubes, deadline)
        except ConnectionLost as exc:
            if not exc.retry_safe:
                raise
        finally:
            conn.lock.release()
        return self._retrying(lambda conn: self._reserve_on(conn, tubes, deadline))

    def _reserve_on(
        self, conn: Connection, tubes: Sequence[str], deadline: float | None
    ) -> Reservation | None:
        self._watch(conn, tubes)
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            seconds = None if wait is None else whole_seconds(wait)
            conn.wait_for_reply(seconds)
            try:
                replies = self._send_reserve(conn, [], seconds)
            finally:
                if not conn.closed:
                    conn.wait_for_reply(0)
            reply = replies[0]
            if isinstance(reply, greenstalk.DeadlineSoonError):
                # A job this connection holds is in its last second; nothing can be handed
                # out here until it is finished, touched or times out, so try again shortly.
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                time.sleep(DEADLINE_SOON_POLL if remaining is None
                           else min(DEADLINE_SOON_POLL, remaining))
                continue
            reservation = self._reserved(conn, replies)
            if reservation is not None or isinstance(reply, greenstalk.TimedOutError):
                return reservation

    @staticmethod
    def _send_reserve(
        conn: Connection, before: list[Command], seconds: int | None
    ) -> list[Reply | greenstalk.BeanstalkdError]:
        """Send ``before``, a reserve and a ``stats-job`` of the guessed next id in one write.

        Returns the replies to the reserve and the ``stats-job`` (if one was sent), after those
        to ``before``; they are read with the time of sending kept in ``conn.sent``.
        """
        commands = [*before, reserve_command(seconds)]
        if conn.guess is not None:
            commands.append(stats_job_command(conn.guess))
        conn.sent = time.monotonic()
        return conn.pipeline(commands, "reserve")

    def _reserved(
        self, conn: Connection, replies: list[Reply | greenstalk.BeanstalkdError]
    ) -> Reservation | None:
        """The reservation from the replies of :meth:`_send_reserve` (after ``before``'s).

        None if the reserve timed out or found nothing, or the job was deleted by another
        client before its ``stats-job``.
        """
        reply = replies[0]
        if not isinstance(reply, Reply):
            if isinstance(reply, greenstalk.TimedOutError | greenstalk.DeadlineSoonError):
                return None
            raise conn.lost("reserve", reply)
        job_id = int(reply.values[0])
        guessed = conn.guess
        conn.note_reserved(job_id)
        fields: JobFields | None = None
        asked = conn.sent
        if guessed == job_id and time.monotonic() - asked < SPECULATION_MAX_WAIT:
            speculated = replies[1]
            if isinstance(speculated, Reply):
                fields = conn.job_fields(speculated)
        if fields is None:
            asked = time.monotonic()
            fields = conn.job_stats(job_id)
            if fields is None:
                return None  # deleted by another client in between: nothing to hand out
        return held_reservation(conn, job_id, reply.body, fields, asked, self._given)

    def delete_and_reserve(
        self, job: Reservation, queues: Sequence[str], timeout: float | None
    ) -> Reservation | None:
        """Delete ``job``, then reserve the next job of ``queues``: one round trip if one is ready.

        The delete, a ``reserve-with-timeout 0`` and the guessed ``stats-job`` go in one write
        on the connection that holds ``job`` (beanstalkd answers a connection's commands in
        order). If the delete fails, a job the reserve took is released again, unchanged but
        for its ``reserves`` count, and ReservationLost is raised: nothing stays reserved.
        With nothing ready and ``timeout`` not 0, it waits as :meth:`reserve` does.
        """
        tubes = self._tube_list(queues)
        deadline = None if timeout is None else time.monotonic() + timeout

        def action(conn: Connection, job_id: int, held: Held) -> Reservation | None:
            self._watch(conn, tubes)
            if time.monotonic() >= held.deadline - DELETE_MARGIN:
                self._touch_held(conn, job_id, held)  # see delete()
            delete = simple(b"delete %d" % job_id, b"DELETED")
            replies = self._send_reserve(conn, [delete], 0)
            deleted, rest = replies[0], replies[1:]
            if isinstance(deleted, Reply):
                conn.held.pop(job_id, None)
                self._given.forget(job_id)
                try:
                    return self._reserved(conn, rest)
                except ConnectionLost:
                    # The delete went through; beanstalkd gives back whatever the dropped
                    # connection held, and the worker's next reserve opens a new one.
                    return None
            taken = rest[0]
            if isinstance(taken, Reply):
                self._give_back(conn, int(taken.values[0]))
            if isinstance(deleted, greenstalk.NotFoundError):
                raise deleted
            raise conn.lost("delete", deleted)

        found = self._act(job, "delete", action)
        if found is not None or timeout == 0:
            return found
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.reserve(queues, remaining)

    # -- batches (kue.BatchBackend) --------------------------------------------------------

    def reserve_many(
        self, queues: Sequence[str], n: int, timeout: float | None
    ) -> list[Reservation]:
        """Reserve up to ``n`` ready jobs of ``queues`` in one write (see kue.BatchBackend).

        ``n`` reserve-with-timeout 0 commands and the guessed ``stats-job`` of each go out
        together; with nothing ready it waits for one job as :meth:`reserve` does.
        """
        check_reserve_n(n, self.capabilities)
        if n == 1:
            job = self.reserve(queues, timeout)
            return [] if job is None else [job]
        return self.settle_many((), (), queues, n, timeout).reserved

    def settle_many(
        self, acks: Sequence[Ack], give_back: Sequence[Reservation], queues: Sequence[str],
        n: int, timeout: float | None,
    ) -> BatchReply:
        """Delete ``acks``, give back ``give_back``, reserve up to ``n`` (kue.BatchBackend).

        One write when the jobs are this thread's (see :mod:`kue_beanstalk.batch`).
        A give-back is a release with the job's priority and no delay: ready at once in its
        place. beanstalkd counts the reserve all the same; this process remembers it and
        counts it off when it reserves the job again (see :class:`kue_beanstalk.batch.
        GiveBacks`). beanstalkd keeps no records, so an Ack must carry no ``fields`` (the
        worker writes records to its results store). Jobs another connection of this process
        reserved are settled over that connection first, one command each.
        """
        check_reserve_n(n, self.capabilities, zero=True)
        for ack in acks:
            if ack.fields is not None:
                raise ValueError(f"an Ack of job {ack.job.id} carries record fields, but "
                                 "beanstalkd keeps no records: write them to a results store")
        tubes = self._tube_list(queues) if n else []
        deadline = None if timeout is None else time.monotonic() + timeout
        token = self._pool.token()
        mine = f"{token}:"
        own_acks = [a for a in acks if a.job.receipt.startswith(mine)]
        own_backs = [j for j in give_back if j.receipt.startswith(mine)]
        lost = self._settle_elsewhere([a for a in acks if not a.job.receipt.startswith(mine)],
                                      [j for j in give_back if not j.receipt.startswith(mine)])
        try:
            reply = self._settle_here(own_acks, own_backs, tubes, n, deadline)
        except ConnectionLost as exc:
            if own_acks or own_backs or not exc.retry_safe:
                raise
            reply = self._settle_here([], [], tubes, n, deadline)
        return BatchReply(reply.reserved, lost + reply.lost)

    def _settle_elsewhere(self, acks: Sequence[Ack], give_back: Sequence[Reservation]
                          ) -> list[Reservation]:
        """Settle jobs reserved by other connections of this process; returns the lost acks."""
        lost: list[Reservation] = []
        for ack in acks:
            try:
                self.delete(ack.job)
            except ReservationLost:
                lost.append(ack.job)
        for job in give_back:
            with contextlib.suppress(ReservationLost):  # no longer held: skipped
                self._act(job, "release", self._give_back_held)
        return lost

    def _give_back_held(self, conn: Connection, job_id: int, held: Held) -> None:
        """Give back one held job unstarted: released with its priority, no delay."""
        conn.held.pop(job_id, None)
        fields = conn.job_stats(job_id)
        if fields is None:
            return
        (reply,) = conn.pipeline([give_back_command(job_id, fields.priority)], "release")
        if isinstance(reply, Reply):
            self._given.add(job_id)

    def _settle_here(self, acks: Sequence[Ack], give_back: Sequence[Reservation],
                     tubes: Sequence[str], n: int, deadline: float | None) -> BatchReply:
        """:meth:`settle_many` of this thread's jobs, on this thread's connection."""
        conn = self._pool.acquire(check=False)
        try:
            if n:
                self._watch(conn, tubes)
            settled = settle_on(conn, acks, give_back, n, self._given)
            reserved = settled.reserved
            if n and not reserved and (deadline is None or time.monotonic() < deadline):
                first = self._reserve_on(conn, tubes, deadline)  # waits, as reserve does
                if first is not None:
                    reserved = [first]
                    if n > 1:
                        reserved += settle_on(conn, (), (), n - 1, self._given).reserved
            return BatchReply(reserved, settled.lost)
        except ConnectionLost:
            self._pool.forget(conn)
            raise
        finally:
            if not conn.closed:
                self._pool.finished(conn)
            conn.lock.release()

    @staticmethod
    def _give_back(conn: Connection, job_id: int) -> None:
        """Release a job reserved by mistake, ready at once with the priority it had."""
        fields = conn.job_stats(job_id)
        if fields is None:
            return
        (reply,) = conn.pipeline(
            [simple(b"release %d %d 0" % (job_id, fields[1]), b"RELEASED")], "release"
        )
        if not isinstance(reply, Reply):
            # Dropping the connection makes beanstalkd give the job back.
            raise conn.lost("release", reply)

    # -- acting on a reservation ---------------------------------------------------------

    def _act(self, job: Reservation, what: str, action: Callable[[Connection, int, Held], T]) -> T:
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
            # No poll for a broken socket here, unlike before a put: a command on a broken
            # connection fails with ConnectionLost below, which means the same to the caller.
            if conn.closed:
                raise ReservationLost(
                    job.queue, job.id,
                    "the connection that reserved it broke, so beanstalkd gave the job back",
                )
            held = conn.held.get(job_id)
            if held is None or str(held.reserves) != count:
                raise ReservationLost(job.queue, job.id)
            try:
                if time.monotonic() > held.deadline + LATE_TTR:
                    # Past its ttr by more than the tolerance: lost, whatever beanstalkd says
                    # (it can time a job out late, see LATE_TTR); give it back if still ours.
                    conn.held.pop(job_id, None)
                    self._give_back_expired(conn, job_id)
                    raise ReservationLost(job.queue, job.id, "its ttr ran out")
                return action(conn, job_id, held)
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

    @staticmethod
    def _give_back_expired(conn: Connection, job_id: int) -> None:
        """Release a job whose ttr ran out if beanstalkd still has it reserved by ``conn``.

        Ready at once with the priority it has, as a timeout would leave it. NOT_FOUND means
        beanstalkd timed it out already (or another consumer holds it): nothing to give back.
        """
        fields = conn.job_stats(job_id)
        if fields is None:
            return
        line = conn.request(b"release %d %d 0\r\n" % (job_id, fields[1]), "release")
        if line not in (b"RELEASED\r\n", b"NOT_FOUND\r\n"):
            raise conn.error_of(line, "release")

    def delete(self, job: Reservation) -> None:
        """Delete a job this consumer holds (touched first if its ttr is nearly out)."""
        self._act(job, "delete", self._delete_held)
        self._given.forget(int(job.id))

    @classmethod
    def _delete_held(cls, conn: Connection, job_id: int, held: Held) -> None:
        if time.monotonic() >= held.deadline - DELETE_MARGIN:
            cls._touch_held(conn, job_id, held)
        line = conn.request(b"delete %d\r\n" % job_id, "delete")
        if line != b"DELETED\r\n":
            raise conn.error_of(line, "delete")
        conn.held.pop(job_id, None)

    @staticmethod
    def _touch_held(conn: Connection, job_id: int, held: Held) -> None:
        """Give a held job its full ttr again (NotFoundError if this connection lost it).

        Also done before deleting a job near its deadline: beanstalkd would delete the job
        even if it were ready again, and a touch succeeds only if this connection holds it.
        """
        asked = time.monotonic()
        line = conn.request(b"touch %d\r\n" % job_id, "touch")
        if line != b"TOUCHED\r\n":
            raise conn.error_of(line, "touch")
        held.deadline = asked + held.ttr

    def release(self, job: Reservation, priority: int, delay: float) -> None:
        """Give a job back with ``priority``, ready after ``delay`` s (rounded up)."""

        def action(conn: Connection, job_id: int, held: Held) -> None:
            line = conn.request(
                b"release %d %d %d\r\n" % (job_id, priority, whole_seconds(delay)), "release"
            )
            if line != b"RELEASED\r\n":
                error = conn.error_of(line, "release")
                if not isinstance(error, greenstalk.BuriedError):
                    raise error
                conn.held.pop(job_id, None)
                raise BackendUnavailable(
                    self.url, f"beanstalkd ran out of memory and buried job {job_id}"
                ) from error
            conn.held.pop(job_id, None)

        self._act(job, "release", action)

    def bury(self, job: Reservation, priority: int | None) -> None:
        """Bury a job; it keeps its priority unless given one (beanstalkd always takes one)."""
        new_priority = job.priority if priority is None else priority

        def action(conn: Connection, job_id: int, held: Held) -> None:
            line = conn.request(b"bury %d %d\r\n" % (job_id, new_priority), "bury")
            if line != b"BURIED\r\n":
                raise conn.error_of(line, "bury")
            conn.held.pop(job_id, None)

        self._act(job, "bury", action)

    def touch(self, job: Reservation) -> None:
        """Give a job its full ttr again."""
        self._act(job, "touch", self._touch_held)

    # -- looking and kicking -------------------------------------------------------------

    def kick(self, queue: str, n: int) -> int:
        """Move up to n buried jobs (oldest burial first), or if none, delayed jobs, to ready."""
        tube = self._tube(queue)
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
                attempts=self._given.attempts(int(reply.values[0]), int(stats["reserves"]),
                                              at_least=0),
            )
        return None

    def stats(self, queue: str) -> QueueStats:
        """Counts from ``stats-tube``; a tube beanstalkd does not know holds nothing."""
        tube = check_tube(queue)

        def op(conn: Connection) -> QueueStats:
            s = conn.stats(stats_tube_command(tube), "stats-tube")
            if s is None:
                return QueueStats()
            return QueueStats(
                ready=int(s["current-jobs-ready"]),
                delayed=int(s["current-jobs-delayed"]),
                reserved=int(s["current-jobs-reserved"]),
                buried=int(s["current-jobs-buried"]),
            )

        return self._retrying(op)

    # -- admin listing (kue.listing.QueueListing, kue.listing.JobBrowser) ---------------

    #: What this backend cannot do of :mod:`kue.listing`, and why (those methods raise
    #: Unsupported).
    listing_unsupported = {
        "buried": "listing buried jobs (beanstalkd shows only the one buried longest ago, "
                  "with peek-buried)",
    }

    def list_queues(self) -> list[str]:
        """The tubes beanstalkd lists (``list-tubes``), sorted; ``default`` only if not empty.

        A tube exists while it holds a job or some client uses or watches it, so a queue
        that a waiting worker watches is listed even when empty. beanstalkd keeps the
        ``default`` tube for ever; it is listed only while it holds a job.
        """

        def op(conn: Connection) -> list[str]:
            # The default tube's counts ride along: one round trip.
            listed, default = conn.pipeline(
                [simple(b"list-tubes", b"OK", has_body=True), stats_tube_command(DEFAULT_TUBE)],
                "list-tubes",
            )
            if not isinstance(listed, Reply):
                raise conn.lost("list-tubes", listed)
            try:
                tubes = parse_list(listed.body)
                s = parse_stats(default.body) if isinstance(default, Reply) else {}
            except ValueError as exc:  # not ASCII
                raise conn.lost("list-tubes", exc) from exc
            held = sum(int(s.get(f"current-jobs-{state}", 0))
                       for state in ("ready", "delayed", "reserved", "buried"))
            if DEFAULT_TUBE in tubes and not held:
                tubes.remove(DEFAULT_TUBE)
            return sorted(tubes)

        return self._retrying(op)

    def buried(self, queue: str, limit: int, offset: int) -> list[JobInfo]:
        """Unsupported: beanstalkd can show only the oldest buried job of a tube."""
        raise Unsupported(SCHEME, self.listing_unsupported["buried"])

    def kick_job(self, queue: str, job_id: str) -> bool:
        """``kick-job`` of a job that ``stats-job`` shows buried in the tube ``queue``.

        False if the tube holds no buried job with that id. ``kick-job`` would move a delayed
        job too; the ``stats-job`` before it keeps it to buried jobs (a job kicked, reserved
        and released with a delay by others between the two commands is the one exception).
        """
        tube = check_tube(queue)
        try:
            key = int(job_id)
        except ValueError:
            return False
        if not 0 < key <= MAX_JOB_ID:
            return False
        with self._pool.connection() as conn:
            stats = conn.stats_job(key)
            if stats is None or stats.get("tube") != tube or stats.get("state") != "buried":
                return False
            (reply,) = conn.pipeline([simple(b"kick-job %d" % key, b"KICKED")], "kick-job")
        if isinstance(reply, greenstalk.NotFoundError):
            return False  # deleted or kicked by another client in between
        if not isinstance(reply, Reply):
            raise BackendUnavailable(self.url, f"beanstalkd refused the kick-job: {reply!r}")
        return True

    # -- status by id (kue.status.InspectableBackend) -------------------------------------

    def job_info(self, queue: str, job_id: str) -> JobInfo | None:
        """The live job with this id in the tube ``queue``: ``stats-job``, then ``peek``.

        beanstalkd keeps no record of a job once deleted: this is all ``status()`` knows
        without a results store.
        """
        tube = check_tube(queue)
        try:
            key = int(job_id)
        except ValueError:
            return None
        if not 0 < key <= MAX_JOB_ID:
            return None
        peek = simple(b"peek %d" % key, b"FOUND", has_body=True)

        def op(conn: Connection) -> JobInfo | None:
            stats = conn.stats_job(key)
            if stats is None or stats.get("tube") != tube:
                return None
            (reply,) = conn.pipeline([peek], "peek")
            if not isinstance(reply, Reply):
                return None  # deleted between the two commands
            state = JobState(stats["state"])
            left = float(stats["time-left"]) if state in (JobState.DELAYED,
                                                          JobState.RESERVED) else None
            return JobInfo(queue=tube, id=job_id, body=reply.body, priority=int(stats["pri"]),
                           state=state,
                           attempts=self._given.attempts(key, int(stats["reserves"]), at_least=0),
                           due_in=left)

        return self._retrying(op)

    def close(self) -> None:
        """Close every connection of this backend in this process."""
        self._pool.close()

    def __repr__(self) -> str:
        return f"<BeanstalkBackend {self.url}>"
