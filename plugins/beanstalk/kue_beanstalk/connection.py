"""One connection to beanstalkd: a greenstalk client, its tube selection and the jobs it holds.

A reservation in beanstalkd belongs to the connection that made it, so the connection also keeps
what it knows of each job it holds (how many reserves the job had, and a conservative deadline).
That lets it tell a stale reservation from the current one even when the same connection
reserved the same job again after its ttr ran out.

greenstalk never reconnects and is not thread-safe: every use of a Connection happens under its
``lock``, and a connection that broke or fell out of step is dropped for good (a new one is made
by :mod:`kue_beanstalk.pool`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import greenstalk

from kue.errors import BackendUnavailable
from kue_beanstalk.settings import Settings
from kue_beanstalk.wire import Command, Reply

__all__ = ["PROTOCOL_ERRORS", "Connection", "ConnectionLost", "Held"]

#: Replies that mean client and server no longer agree on where a command starts.
PROTOCOL_ERRORS: tuple[type[Exception], ...] = (
    greenstalk.BadFormatError,
    greenstalk.UnknownCommandError,
    greenstalk.ExpectedCrlfError,
    greenstalk.UnknownResponseError,
)

#: The most reservations one connection remembers; beyond it the oldest are forgotten.
MAX_HELD = 100_000


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


class _Guard:
    """The context manager of :meth:`Connection.io` (a class: it runs for every command)."""

    __slots__ = ("conn", "what")

    def __init__(self, conn: Connection, what: str) -> None:
        self.conn = conn
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is not None and isinstance(exc, _BROKEN):
            raise self.conn.lost(self.what, exc) from exc


#: Exceptions that leave a connection unusable: protocol errors, socket errors and timeouts,
#: and the errors greenstalk's parsing raises on a garbled reply.
_BROKEN: tuple[type[BaseException], ...] = (
    *PROTOCOL_ERRORS, OSError, AssertionError, ValueError, IndexError,
)


def _close_quietly(reader: BinaryIO, sock: socket.socket) -> None:
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
    """A greenstalk client on its own socket, with the state beanstalkd keeps per connection.

    :param settings: where the server is and how long to wait for it.
    :raises BackendUnavailable: the server refused or did not answer the connection.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.masked_url
        #: The process that opened it; a forked child must not write on its parent's socket.
        self.pid = os.getpid()
        #: Names this connection in receipts, unique across processes and reconnects.
        self.token = f"{self.pid}-{secrets.token_hex(4)}"
        self.lock = threading.Lock()
        self.used = greenstalk.DEFAULT_TUBE
        self.watched: list[str] = [greenstalk.DEFAULT_TUBE]
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
        sock.settimeout(settings.socket_timeout)
        self._sock = sock
        self._timeout: float | None = settings.socket_timeout
        self.client: greenstalk.Client[bytes] = greenstalk.Client(sock, encoding=None)
        # Pipelined replies must be read from the very buffer greenstalk reads from, or the
        # two would split the stream between them.
        self._reader: BinaryIO = self.client._reader
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN | select.POLLPRI)
        self._finalizer = weakref.finalize(self, _close_quietly, self._reader, sock)

    # -- health --------------------------------------------------------------------------

    def alive(self) -> bool:
        """True if the connection can carry a command: open, in this process, nothing unread.

        Between commands beanstalkd never sends anything, so a socket that is readable while
        idle holds an EOF, a reset or stray bytes; none of these leaves it usable.
        """
        if self.closed or self.pid != os.getpid():
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
            self._sock.settimeout(timeout)
            self._timeout = timeout

    def io(self, what: str) -> _Guard:
        """Turn a broken or out-of-step connection into ConnectionLost, dropping it.

        Use as ``with conn.io("delete"): ...``. beanstalkd's ordinary replies (NOT_FOUND,
        TIMED_OUT, DRAINING...) pass through as greenstalk errors for the caller to interpret.
        """
        return _Guard(self, what)

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
        if isinstance(exc, TimeoutError):
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

        A reply that is not the expected one comes back as the greenstalk error it names.
        """
        with self.io(what):
            self._sock.sendall(b"".join(c.data for c in commands))
            replies = [self._read_reply(c) for c in commands]
            for reply in replies:
                if isinstance(reply, PROTOCOL_ERRORS):
                    raise reply
            return replies

    def stats_job(self, job_id: int) -> dict[str, str] | None:
        """The ``stats-job`` of a job as strings, or None if beanstalkd does not know it.

        Parsed here rather than by greenstalk: it runs once per reserve, and only four of its
        fields are needed.
        """
        (reply,) = self.pipeline(
            [Command(b"stats-job %d\r\n" % job_id, b"OK", has_body=True)], "stats-job"
        )
        if isinstance(reply, greenstalk.NotFoundError):
            return None
        if not isinstance(reply, Reply):
            raise self.lost("stats-job", reply)
        fields: dict[str, str] = {}
        with self.io("stats-job"):
            for line in reply.body.decode("ascii").splitlines()[1:]:  # after the YAML "---"
                key, _, value = line.partition(": ")
                fields[key] = value
        return fields

    def _read_reply(self, command: Command) -> Reply | greenstalk.BeanstalkdError:
        line = self._reader.readline()
        if not line:
            raise ConnectionError("beanstalkd closed the connection")
        if not line.endswith(b"\r\n"):
            raise ValueError(f"reply line without CRLF: {line[:80]!r}")
        word, *values = line[:-2].split()
        if word == command.expected:
            body = b""
            if command.has_body:
                size = int(values[-1])
                chunk = self._reader.read(size + 2)
                if len(chunk) != size + 2 or not chunk.endswith(b"\r\n"):
                    raise ConnectionError("beanstalkd closed the connection inside a job body")
                body = chunk[:-2]
            return Reply(word, values, body)
        error = greenstalk.ERROR_RESPONSES.get(word)
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
