"""Batched reservations on one beanstalkd connection: acks, give-backs and reserves in one write.

beanstalkd answers a connection's commands in the order they arrive, so the deletes of finished
jobs, the give-backs of unstarted ones and ``n`` reserves go out in one write, followed by a
``stats-job`` of each job id the reserves are guessed to hand out (consecutive ids from the
connection's guess, see :meth:`Connection.note_reserved`): a batch costs one round trip when the
guesses are right, as they are for a worker draining a queue, and two when not (the ``stats-job``
of the ids missed go in one more write).

Stale acks are found as :meth:`BeanstalkBackend.delete` finds them: a job this connection no
longer holds is lost without a command; one past its ttr by more than ``LATE_TTR`` is lost and
released; one near its deadline is touched first, in a write of its own, because beanstalkd
deletes a job that timed out and is ready again as readily as a reserved one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import greenstalk

from kue.spi import Ack, Reservation
from kue_beanstalk.connection import (
    DELETE_MARGIN,
    LATE_TTR,
    SPECULATION_MAX_WAIT,
    Connection,
    Held,
)
from kue_beanstalk.wire import (
    Command,
    JobFields,
    Reply,
    reserve_command,
    simple,
    stats_job_command,
)

__all__ = ["MAX_GIVEN_BACK", "MAX_RESERVE", "GiveBacks", "Settled", "held_reservation", "settle_on"]

#: Most reserves one write carries (``capabilities.max_reserve``): the worker's prefetch is far
#: below it, and past it a batch of mostly TIMED_OUT replies costs more than it gains.
MAX_RESERVE = 100
#: The most jobs :class:`GiveBacks` remembers; beyond it the oldest are forgotten.
MAX_GIVEN_BACK = 100_000


class GiveBacks:
    """How many times this process gave each job back unstarted: taken off its attempts.

    beanstalkd counts every reserve of a job (``reserves``, kue's attempts) and no command
    takes one back, nor can a job carry a mark of its own (its body is fixed and its counters
    count operator actions too). So the give-backs are remembered here, in the process that
    made them: its own reserves of the job again count them off. A job given back by one
    process and reserved by another counts the give-back as an attempt, as a job whose
    worker died does.
    """

    def __init__(self, limit: int = MAX_GIVEN_BACK) -> None:
        self._limit = limit
        self._count: dict[int, int] = {}

    def add(self, job_id: int) -> None:
        """Remember one more give-back of ``job_id``."""
        self._count[job_id] = self._count.pop(job_id, 0) + 1
        if len(self._count) > self._limit:
            del self._count[next(iter(self._count))]

    def forget(self, job_id: int) -> None:
        """The job is deleted: nothing more to count."""
        self._count.pop(job_id, None)

    def attempts(self, job_id: int, reserves: int, *, at_least: int = 1) -> int:
        """Kue's attempts of a job with ``reserves``: less the give-backs known here."""
        return max(at_least, reserves - self._count.get(job_id, 0))



@dataclass
class Settled:
    """What one :func:`settle_on` did.

    :param reserved: the jobs reserved, in beanstalkd's order.
    :param lost: the acks whose reservation this connection no longer held.
    """

    reserved: list[Reservation] = field(default_factory=list)
    lost: list[Reservation] = field(default_factory=list)


def held_reservation(conn: Connection, job_id: int, body: bytes, fields: JobFields,
                     asked: float, given: GiveBacks) -> Reservation:
    """Remember a job ``conn`` reserved and hand it out; ``asked``: when its stats were asked.

    time-left is rounded down and counted from a moment after ``asked``, so the job is surely
    still reserved before ``asked`` + time-left.
    """
    conn.hold(job_id, Held(fields.reserves, fields.ttr, asked + fields.left))
    return Reservation(
        queue=fields.tube,
        id=str(job_id),
        body=body,
        priority=fields.priority,
        attempts=given.attempts(job_id, fields.reserves),
        ttr=float(fields.ttr),
        receipt=f"{conn.token}:{fields.reserves}",
    )


def _held(conn: Connection, job: Reservation) -> tuple[int, Held] | None:
    """The job id and what ``conn`` knows of ``job``, if this reservation is still its own."""
    job_id = int(job.id)
    held = conn.held.get(job_id)
    if held is None or job.receipt != f"{conn.token}:{held.reserves}":
        return None
    return job_id, held


def _sort_acks(conn: Connection, acks: Sequence[Ack], settled: Settled
               ) -> tuple[list[tuple[Reservation, int]], list[Command]]:
    """The acks to delete, and releases of those past their ttr (listed lost in ``settled``).

    Acks near their deadline are touched first (one write): a delete must never reach a job
    that timed out and is ready again.
    """
    now = time.monotonic()
    deletes: list[tuple[Reservation, int]] = []
    releases: list[Command] = []
    near: list[tuple[Reservation, int, Held]] = []
    for ack in acks:
        found = _held(conn, ack.job)
        if found is None:
            settled.lost.append(ack.job)
            continue
        job_id, held = found
        if now > held.deadline + LATE_TTR:  # lost, whatever beanstalkd says: give it back
            conn.held.pop(job_id, None)
            releases.append(simple(b"release %d %d 0" % (job_id, ack.job.priority),
                                   b"RELEASED"))
            settled.lost.append(ack.job)
        elif now >= held.deadline - DELETE_MARGIN:
            near.append((ack.job, job_id, held))
        else:
            deletes.append((ack.job, job_id))
    if near:
        asked = time.monotonic()
        replies = conn.pipeline([simple(b"touch %d" % job_id, b"TOUCHED")
                                 for _, job_id, _ in near], "touch")
        for (job, job_id, held), reply in zip(near, replies, strict=True):
            if isinstance(reply, Reply):
                held.deadline = asked + held.ttr
                deletes.append((job, job_id))
            elif isinstance(reply, greenstalk.NotFoundError):
                conn.held.pop(job_id, None)
                settled.lost.append(job)
            else:
                raise conn.lost("touch", reply)
    return deletes, releases


def _give_backs(conn: Connection, jobs: Sequence[Reservation]) -> list[tuple[int, Command]]:
    """The ids and releases of the jobs ``conn`` still holds; the others are skipped.

    A give-back is a release with the job's priority and no delay: ready at once, in its
    place. A job whose ttr may have run out is skipped: it may be another consumer's by now.
    """
    now = time.monotonic()
    commands: list[tuple[int, Command]] = []
    for job in jobs:
        found = _held(conn, job)
        if found is None or now >= found[1].deadline:
            continue
        conn.held.pop(found[0], None)
        commands.append((found[0], give_back_command(found[0], job.priority)))
    return commands


def give_back_command(job_id: int, priority: int) -> Command:
    """``release`` of a held job with ``priority`` and no delay."""
    return simple(b"release %d %d 0" % (job_id, priority), b"RELEASED")


def settle_on(conn: Connection, acks: Sequence[Ack], give_back: Sequence[Reservation],
              n: int, given: GiveBacks) -> Settled:
    """Delete ``acks``, give back ``give_back`` and reserve up to ``n`` ready jobs, no waiting.

    Every job acted on must be ``conn``'s (its receipt names ``conn``), and ``conn`` must watch
    the tubes to reserve from. ConnectionLost if the connection broke (it is dropped, and
    beanstalkd gives back every job it held).
    """
    settled = Settled()
    deletes, releases = _sort_acks(conn, acks, settled)
    commands = [simple(b"delete %d" % job_id, b"DELETED") for _, job_id in deletes]
    backs = _give_backs(conn, give_back)
    commands += [command for _, command in backs]
    commands += releases
    before = len(commands)
    guess = conn.guess
    if n:
        commands += [reserve_command(0)] * n
        if guess is not None:
            commands += [stats_job_command(guess + i) for i in range(n)]
    if not commands:
        return settled
    sent = time.monotonic()
    replies = conn.pipeline(commands, "settle")
    for (job, job_id), reply in zip(deletes, replies, strict=False):
        if isinstance(reply, Reply):
            conn.held.pop(job_id, None)
            given.forget(job_id)
        elif isinstance(reply, greenstalk.NotFoundError):
            conn.held.pop(job_id, None)
            settled.lost.append(job)
        else:
            raise conn.lost("delete", reply)
    # Give-backs and releases: NOT_FOUND means the job is no longer this connection's, and
    # BURIED means beanstalkd ran out of memory and buried it: nothing to report either way.
    for (job_id, _), reply in zip(backs, replies[len(deletes):], strict=False):
        if isinstance(reply, Reply):
            given.add(job_id)
    if n:
        settled.reserved = _reserved(conn, replies[before:before + n],
                                     replies[before + n:], guess, sent, given)
    return settled


def _reserved(conn: Connection, reserves: list[Reply | greenstalk.BeanstalkdError],
              speculated: list[Reply | greenstalk.BeanstalkdError], guess: int | None,
              sent: float, given: GiveBacks) -> list[Reservation]:
    """The reservations from the reserve replies, with their guessed ``stats-job`` replies."""
    taken: list[Reply] = []
    for reply in reserves:
        if isinstance(reply, Reply):
            taken.append(reply)
        elif not isinstance(reply, greenstalk.TimedOutError | greenstalk.DeadlineSoonError):
            # DEADLINE_SOON: a job this connection holds is in its last second; nothing more
            # is handed out here until it is settled (a waiting caller polls, see reserve).
            raise conn.lost("reserve", reply)
    fresh = time.monotonic() - sent < SPECULATION_MAX_WAIT
    fields: dict[int, JobFields] = {}
    missed: list[int] = []
    for reply in taken:
        job_id = int(reply.values[0])
        conn.note_reserved(job_id)
        offset = -1 if guess is None else job_id - guess
        answer = speculated[offset] if fresh and 0 <= offset < len(speculated) else None
        if isinstance(answer, Reply):
            fields[job_id] = conn.job_fields(answer)
        else:
            missed.append(job_id)
    asked = {job_id: sent for job_id in fields}
    if missed:
        again = time.monotonic()
        for job_id, answer in zip(missed, conn.pipeline(
                [stats_job_command(job_id) for job_id in missed], "stats-job"), strict=True):
            if isinstance(answer, Reply):
                fields[job_id] = conn.job_fields(answer)
                asked[job_id] = again
            elif not isinstance(answer, greenstalk.NotFoundError):
                raise conn.lost("stats-job", answer)
            # NOT_FOUND: deleted by another client in between; nothing to hand out.
    return [held_reservation(conn, int(reply.values[0]), reply.body,
                             fields[int(reply.values[0])], asked[int(reply.values[0])], given)
            for reply in taken if int(reply.values[0]) in fields]
