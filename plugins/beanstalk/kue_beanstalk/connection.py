"""One connection to beanstalkd: its socket and reader, its tube selection and the jobs it holds.

The connection alone reads its socket, through one buffer: the hot path writes several commands
at once (``put_many``, a ``use`` riding along with a put, the worker's delete + reserve +
``stats-job``) and reads their replies in order, which no client with a reader of its own on the
same socket could do without the two splitting the stream between them. greenstalk contributes
the errors beanstalkd's replies name (:data:`kue_beanstalk.wire.ERRORS`), not a client: its
``Client`` sends one command and reads one reply per call.

A reservation in beanstalkd belongs to the connection that made it, so the connection also keeps
what it knows of each job it holds (how many reserves the job had, and a conservative deadline).
That lets it tell a stale reservation from the current one even when the same connection
reserved the same job again after its ttr ran out.

A connection never reconnects and is not thread-safe: every use of a Connection happens under its
``lock``, and a connection that broke or fell out of step is dropped for good (a new one is made
by :mod:`kue_beanstalk.pool`).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import select
import socket
import struct
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import greenstalk

from kue.spi import BackendUnavailable, current_pid
from kue_beanstalk.settings import BeanstalkSettings
from kue_beanstalk.wire import (
    DEFAULT_TUBE,
    ERRORS,
    Command,
    JobFields,
    Reply,
    job_fields,
    parse_stats,
    stats_job_command,
)

__all__ = [
    "DELETE_MARGIN",
    "LATE_TTR",
    "PROTOCOL_ERRORS",
    "SPECULATION_MAX_WAIT",
    "Connection",
    "ConnectionLost",
    "Held",
]

#: Replies that mean client and server no longer agree on where a command starts.
PROTOCOL_ERRORS: tuple[type[Exception], ...] = (
    greenstalk.BadFormatError,
    greenstalk.UnknownCommandError,
    greenstalk.ExpectedCrlfError,
    greenstalk.UnknownResponseError,
)

#: The most reservations one connection remembers; beyond it the oldest are forgotten.
MAX_HELD = 100_000
#: Largest step between job ids that :meth:`Connection.note_reserved` takes as a pattern
#: (about the number of consumers taking turns on one queue).
MAX_GUESS_STEP = 16

#: A job this close to its deadline is touched before it is deleted, so that a delete can
#: never remove a job whose reservation already ran out (beanstalkd deletes ready jobs too).
DELETE_MARGIN = 0.25
#: Seconds past a held job's ttr after which an ack by its holder raises ReservationLost even
#: if beanstalkd still has it reserved (then it is released, as a timeout would have): under
#: a steady stream of commands beanstalkd 1.12 can time a reservation out seconds late, and
#: the contract says acks after ttr + timing_tolerance are lost.
LATE_TTR = 1.0
#: A ``stats-job`` sent along with a reserve dates the reservation from before the send; one
#: whose reply took longer than this (a reserve that waited) asks again, so the deadline kept
#: for the job errs early by less than a second in all (see ``EXPIRY_SLACK`` in the pool).
SPECULATION_MAX_WAIT = 0.5


class ConnectionLost(BackendUnavailable):
    """The connection broke, timed out or fell out of step, and was dropped.

    :param retry_safe: the server closed or reset the connection (rather than not answering),
        so an operation that changes nothing may be tried once more on a new connection.
    """

    def __init__(self, url: str, detail: str, *, retry_safe: bool) -> None:
        super().__init__(url, detail)
        self.retry_safe = retry_safe


@dataclass
class Held:
    """What a connection knows of a job it reserved.

    :param reserves: beanstalkd's ``reserves`` count when this connection reserved it.
    :param ttr: the job's ttr in seconds.
    :param deadline: ``time.monotonic()`` before which the job surely is still reserved.
    """

    reserves: int
    ttr: int
    deadline: float


#: Exceptions that leave a connection unusable: protocol errors, socket errors and timeouts,
#: and the errors parsing raises on a garbled reply.
_BROKEN: tuple[type[BaseException], ...] = (*PROTOCOL_ERRORS, OSError, ValueError, IndexError)


def _timeval(seconds: float | None) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO; all zeros means no limit."""
    if seconds is None:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    micros = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)
    return struct.pack("ll", whole, micros)


class _SocketReader(io.RawIOBase):
    """What ``socket.makefile("rb")`` gives, for a blocking socket with SO_RCVTIMEO.

    A socket with a Python-level timeout polls before every send and receive: two extra
    system calls per round trip, measured at about 8 % of a loopback put. Here the socket
    blocks and the kernel enforces the timeout; a receive that runs out of time fails with
    EAGAIN, which this turns into the TimeoutError a Python timeout would have raised (the
    stock SocketIO would return None, which a buffered readline takes for the end).
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._sock.recv_into(buffer)
        except BlockingIOError as exc:
            raise TimeoutError("timed out") from exc


def _close_quietly(reader: io.IOBase, sock: socket.socket) -> None:
    # Only close(), never shutdown(): after fork() the parent shares this socket, and
    # shutdown() would cut the parent's connection too.
    with contextlib.suppress(OSError):
        reader.close()
    with contextlib.suppress(OSError):
        sock.close()


def _configure(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Notice a peer that vanished without a FIN within about a minute, not two hours.
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


class Connection:
    """A socket to beanstalkd and its one reader, with the state beanstalkd keeps per connection.

    :param settings: where the server is and how long to wait for it.
    :raises BackendUnavailable: the server refused or did not answer the connection.
    """

    def __init__(self, settings: BeanstalkSettings) -> None:
        self.settings = settings
        self.url = settings.masked_url
        #: The process that opened it; a forked child must not write on its parent's socket.
        self.pid = os.getpid()
        #: Names this connection in receipts, unique across processes and reconnects.
        self.token = f"{self.pid}-{secrets.token_hex(4)}"
        self.lock = threading.Lock()
        self.used = DEFAULT_TUBE
        self.watched: list[str] = [DEFAULT_TUBE]
        self.held: dict[int, Held] = {}
        self.closed = False
        try:
            sock = socket.create_connection(
                (settings.host, settings.port), timeout=settings.connect_timeout
            )
        except OSError as exc:
            raise BackendUnavailable(
                self.url,
                f"cannot connect to beanstalkd at {settings.host}:{settings.port} ({exc}); "
                "is beanstalkd running there?",
            ) from exc
        _configure(sock)
        # Blocking, with the timeouts kept by the kernel (see _SocketReader).
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(settings.socket_timeout))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(settings.socket_timeout))
        self._sock = sock
        self._timeout: float | None = settings.socket_timeout
        #: The only reader of the socket: every reply, pipelined or not, is read through it.
        self._reader = io.BufferedReader(_SocketReader(sock))
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN | select.POLLPRI)
        self._finalizer = weakref.finalize(self, _close_quietly, self._reader, sock)
        #: The job id a reserve on this connection guesses it will get next, for the
        #: ``stats-job`` sent along with the reserve (see :meth:`note_reserved`).
        self.guess: int | None = None
        self._last_reserved = 0
        #: ``time.monotonic()`` when the last reserve was sent.
        self.sent = 0.0

    # -- health --------------------------------------------------------------------------

    def alive(self) -> bool:
        """True if the connection can carry a command: open, in this process, nothing unread.

        Between commands beanstalkd never sends anything, so a socket that is readable while
        idle holds an EOF, a reset or stray bytes; none of these leaves it usable.
        """
        if self.closed or self.pid != current_pid():
            return False
        return not self._poll.poll(0)

    def drop(self) -> None:
        """Close the connection for good; beanstalkd gives back every job it held."""
        self.closed = True
        self.held.clear()
        self._finalizer()

    def wait_for_reply(self, seconds: float | None) -> None:
        """Let the next reply take up to ``seconds`` (None: for ever) beyond the usual timeout."""
        timeout = None if seconds is None else seconds + self.settings.socket_timeout
        if timeout != self._timeout:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
            self._timeout = timeout

    def lost(self, what: str, exc: BaseException) -> ConnectionLost:
        """Drop the connection and describe what ``exc`` did to it during ``what``."""
        self.drop()
        if isinstance(exc, PROTOCOL_ERRORS):
            return ConnectionLost(
                self.url,
                f"beanstalkd answered {what} with {type(exc).__name__} {list(exc.args)}; the "
                "connection was dropped because its next replies would be out of step",
                retry_safe=False,
            )
        if isinstance(exc, TimeoutError | BlockingIOError):  # BlockingIOError: SO_SNDTIMEO
            return ConnectionLost(
                self.url, f"no reply to {what} within {self._timeout:g} s", retry_safe=False
            )
        if isinstance(exc, OSError):
            return ConnectionLost(
                self.url, f"the connection broke during {what}: {exc}", retry_safe=True
            )
        return ConnectionLost(self.url, f"malformed reply to {what}: {exc!r}", retry_safe=False)

    # -- pipelines -----------------------------------------------------------------------

    def pipeline(
        self, commands: Sequence[Command], what: str
    ) -> list[Reply | greenstalk.BeanstalkdError]:
        """Send every command at once, then read their replies in order: one round trip.

        A reply that is not the expected one comes back as the greenstalk error it names
        (NOT_FOUND, TIMED_OUT, DRAINING...) for the caller to interpret. A broken or
        out-of-step connection is dropped and raises ConnectionLost.
        """
        try:
            self._sock.sendall(b"".join([c.data for c in commands]))
            read = self._read_reply
            replies = [read(c.expected, c.has_body) for c in commands]
            for reply in replies:
                if isinstance(reply, PROTOCOL_ERRORS):
                    raise reply
        except _BROKEN as exc:
            raise self.lost(what, exc) from exc
        except BaseException:
            # Interrupted (a stop signal, Ctrl-C) between sending and reading: the replies
            # still on their way would be read as answers to later commands.
            self.drop()
            raise
        return replies

    def request(self, data: bytes, what: str) -> bytes:
        """Send one command whose reply is a single line, and return that line (with CRLF).

        The hot path of put: what :meth:`pipeline` does, without building commands and
        replies; :meth:`error_of` reads a line that is not the expected one.
        """
        try:
            self._sock.sendall(data)
            line = self._reader.readline()
            if not line:
                raise ConnectionError("beanstalkd closed the connection")
            if line[-2:] != b"\r\n":
                raise ValueError(f"reply line without CRLF: {line[:80]!r}")
        except _BROKEN as exc:
            raise self.lost(what, exc) from exc
        except BaseException:
            # Interrupted between sending and reading: the reply would answer a later command.
            self.drop()
            raise
        return line

    def error_of(self, line: bytes, what: str) -> greenstalk.BeanstalkdError:
        """The greenstalk error a reply line names; a protocol error drops the connection."""
        word, *values = line[:-2].split() or [b""]
        error = ERRORS.get(word)
        if error is None:
            raise self.lost(what, greenstalk.UnknownResponseError(word, values))
        result: greenstalk.BeanstalkdError = error(values)
        if isinstance(result, PROTOCOL_ERRORS):
            raise self.lost(what, result)
        return result

    def stats(self, command: Command, what: str) -> dict[str, str] | None:
        """The fields of a stats reply (``stats``, ``stats-tube``, ``stats-job``) as strings.

        None if beanstalkd does not know the tube or job; a garbled reply drops the connection.
        """
        (reply,) = self.pipeline([command], what)
        if isinstance(reply, greenstalk.NotFoundError):
            return None
        if not isinstance(reply, Reply):
            raise self.lost(what, reply)
        try:
            return parse_stats(reply.body)
        except ValueError as exc:  # not ASCII
            raise self.lost(what, exc) from exc

    def stats_job(self, job_id: int) -> dict[str, str] | None:
        """The ``stats-job`` of a job as strings, or None if beanstalkd does not know it.

        Parsed here rather than through a client's stats call: it runs once per reserve, and
        only four of its fields are needed.
        """
        return self.stats(stats_job_command(job_id), "stats-job")

    def job_fields(self, reply: Reply) -> JobFields:
        """What kue needs of a ``stats-job`` reply (:class:`kue_beanstalk.wire.JobFields`).

        A garbled reply drops the connection.
        """
        try:
            return job_fields(reply.body)
        except (ValueError, KeyError) as exc:
            raise self.lost("stats-job", ValueError(f"unreadable stats-job: {exc!r}")) from exc

    def job_stats(self, job_id: int) -> JobFields | None:
        """:meth:`job_fields` of a job by id, or None if beanstalkd does not know it."""
        (reply,) = self.pipeline([stats_job_command(job_id)], "stats-job")
        if isinstance(reply, greenstalk.NotFoundError):
            return None
        if not isinstance(reply, Reply):
            raise self.lost("stats-job", reply)
        return self.job_fields(reply)

    def note_reserved(self, job_id: int) -> None:
        """Remember a job id just reserved, to guess the next one.

        beanstalkd numbers jobs in the order they were put, so a consumer draining a queue
        usually gets the next id, or (with n consumers taking turns) the id n further on: the
        step between its last two reserves, if small, else 1. A reserve sends a ``stats-job``
        of the guess along with it; when the guess is right the reservation costs one round
        trip instead of two, and when it is wrong the reply is ignored.
        """
        step = job_id - self._last_reserved
        self._last_reserved = job_id
        self.guess = job_id + (step if 0 < step <= MAX_GUESS_STEP else 1)

    def _read_reply(
        self, expected: bytes, has_body: bool
    ) -> Reply | greenstalk.BeanstalkdError:
        line = self._reader.readline()
        if not line:
            raise ConnectionError("beanstalkd closed the connection")
        if not line.endswith(b"\r\n"):
            raise ValueError(f"reply line without CRLF: {line[:80]!r}")
        word, *values = line[:-2].split()
        if word == expected:
            body = b""
            if has_body:
                size = int(values[-1])
                chunk = self._reader.read(size + 2)
                if len(chunk) != size + 2 or not chunk.endswith(b"\r\n"):
                    raise ConnectionError("beanstalkd closed the connection inside a job body")
                body = chunk[:-2]
            return Reply(word, values, body)
        error = ERRORS.get(word)
        if error is None:
            raise greenstalk.UnknownResponseError(word, values)
        result: greenstalk.BeanstalkdError = error(values)
        return result

    # -- held jobs -----------------------------------------------------------------------

    def hold(self, job_id: int, held: Held) -> None:
        """Remember a job this connection just reserved."""
        self.held.pop(job_id, None)
        self.held[job_id] = held
        if len(self.held) > MAX_HELD:
            # Reservations nobody acted on for this long have timed out long ago.
            del self.held[next(iter(self.held))]

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<kue_beanstalk.Connection {self.token} to {self.url} {state}>"
