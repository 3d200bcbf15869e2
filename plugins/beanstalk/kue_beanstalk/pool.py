"""One connection per thread and per process, and the way back to the one that reserved a job.

A connection is not thread-safe, so each thread gets its own; after
``fork()`` the child notices the changed process id and opens its own rather than writing on its
parent's socket. Receipts carry the connection's token, so delete, release, bury and touch go
over the connection that made the reservation, as beanstalkd requires, whichever thread calls.

When a thread ends, its connection stays open while it holds reservations another thread may
still finish (closing it would make beanstalkd hand those jobs out again); it is closed once the
last of them is finished, or once all of them have surely timed out.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from kue.spi import current_pid
from kue_beanstalk.connection import Connection

__all__ = ["ConnectionPool"]

#: Seconds past a held job's estimated deadline after which beanstalkd has surely timed it out
#: (the estimate errs early by less than a second).
EXPIRY_SLACK = 2.0


class _Slot:
    """What a thread keeps in its thread-local storage; its end tells the pool the thread ended."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class _Locked:
    """A connection whose lock is held until the ``with`` block ends."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.lock.release()


class ConnectionPool:
    """Connections of one backend object: one per thread, found again by token.

    :param connect: opens a new connection (raises BackendUnavailable if it cannot).
    """

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._local = threading.local()
        # Plain dict operations are atomic, so no lock guards this; none can be left held by
        # a fork() either.
        self._owners: dict[str, Connection] = {}
        self._orphans: set[str] = set()

    # -- this thread's connection --------------------------------------------------------

    def _open(self) -> Connection:
        self._sweep()
        conn = self._connect()
        self._owners[conn.token] = conn
        slot = _Slot(conn)
        weakref.finalize(slot, self._thread_ended, conn.token)
        self._local.slot = slot
        return conn

    def connection(self) -> _Locked:
        """The calling thread's connection, locked for a ``with`` block.

        A broken connection, or one inherited through ``fork()``, is replaced first.
        """
        return _Locked(self.acquire())

    def acquire(self, *, check: bool = True) -> Connection:
        """The calling thread's connection with its lock held: release ``conn.lock`` after.

        What :meth:`connection` does, without the context manager, for the hot paths.
        ``check=False`` skips the poll for a broken socket, for callers that retry an
        operation that changes nothing on a new connection if the old one was reset.
        """
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None:
            conn = slot.conn
            if conn.pid != current_pid():
                # Inherited through fork(): its lock may have been held by a thread that does
                # not exist here, so do not take it; closing only drops this process's copy.
                conn.drop()
            else:
                conn.lock.acquire()
                if (not conn.closed) if not check else conn.alive():
                    return conn
                try:
                    self.forget(conn)
                finally:
                    conn.lock.release()
        conn = self._open()
        conn.lock.acquire()
        return conn

    def token(self) -> str:
        """The token of the calling thread's connection (opened if it has none yet)."""
        conn = self.acquire(check=False)
        conn.lock.release()
        return conn.token

    # -- finding the connection of a reservation -----------------------------------------

    def owner(self, token: str) -> Connection | None:
        """The open connection of this process whose token is ``token``, if any."""
        conn = self._owners.get(token)
        # Health is checked by the caller under the connection's lock: polling here could
        # mistake another thread's pending reply for a broken socket.
        if conn is None or conn.closed or conn.pid != current_pid():
            return None
        return conn

    def forget(self, conn: Connection) -> None:
        """Drop ``conn`` and stop finding it (call with its lock held, or when it is unused)."""
        conn.drop()
        self._owners.pop(conn.token, None)
        self._orphans.discard(conn.token)

    def finished(self, conn: Connection) -> None:
        """A reservation of ``conn`` was finished: close it if its thread is gone and it is idle.

        Call with the connection's lock held.
        """
        if conn.token in self._orphans and not conn.held:
            self.forget(conn)

    # -- cleaning up ---------------------------------------------------------------------

    def _thread_ended(self, token: str) -> None:
        conn = self._owners.get(token)
        if conn is None:
            return
        self._orphans.add(token)
        # The thread is ending, possibly inside a garbage collection that another of our
        # methods started: never wait for the lock here.
        if conn.lock.acquire(blocking=False):
            try:
                self.finished(conn)
            finally:
                conn.lock.release()

    def _sweep(self) -> None:
        """Close connections of ended threads whose jobs all timed out, and inherited ones."""
        now = time.monotonic()
        pid = current_pid()
        for token, conn in list(self._owners.items()):
            if conn.pid != pid:
                conn.drop()  # only closes this process's file descriptor
                self._owners.pop(token, None)
                self._orphans.discard(token)
            elif token in self._orphans and conn.lock.acquire(blocking=False):
                try:
                    if all(h.deadline + EXPIRY_SLACK < now for h in conn.held.values()):
                        self.forget(conn)
                finally:
                    conn.lock.release()

    def close(self) -> None:
        """Close every connection this pool opened in this process."""
        pid = current_pid()
        for conn in list(self._owners.values()):
            if conn.pid == pid:
                conn.drop()
        self._owners.clear()
        self._orphans.clear()
        self._local = threading.local()
