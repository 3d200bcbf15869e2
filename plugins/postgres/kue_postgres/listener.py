"""One LISTEN connection per channel and process, in a thread, that wakes waiting threads.

A blocked ``reserve`` (or ``wait_record``) notes the :class:`Listener`'s counters, asks the
database once, and if it got nothing waits on the listener's condition until a notification
names what it waits for, the next due job's time, or its timeout: no polling. A notification
sent between the note and the wait is not lost, because the counters moved.

The thread reconnects with :class:`kue.spi.Backoff` after a lost connection, and each
(re)connection bumps :attr:`Listener.epoch`, which wakes every waiter: what was notified while
the listener was away is found by their next look at the tables.

The gate: NOTIFY costs the sender a database-wide lock at commit, so the hot writers (a put,
a finished job's record note) notify only when someone in some process waits. A waiter first
has its listener take a shared advisory lock on the key it waits for (``gate`` names the lock
space, the key is the queue's name) on the LISTEN connection, then looks again, then waits. A
writer tries the same lock exclusively for its transaction (``pg_try_advisory_xact_lock``)
and notifies only if that fails. Either the writer's try came first and it holds the lock
until its commit, so the waiter's lock is granted after that commit and its look sees the
write; or a waiter holds the lock and the writer notifies. Locks stay while anyone waits and
:data:`LINGER` s after, so a worker between two waits keeps its gate; every lock taken or
given back bumps that key's generation, and every reconnection (which takes the wanted locks
again before it wakes anyone) the epoch, so a waiter that looked before its gate changed
looks again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kue.spi import Backoff

__all__ = ["LINGER", "MAX_WAIT_SLICE", "Listener", "gate_sql"]

log = logging.getLogger(__name__)

#: How many recent notifications a listener remembers for waiters that look back.
HISTORY = 4096
#: Seconds between checks, in the listener thread only, that the backend was not closed.
_STOP_CHECK = 5.0
#: The longest single wait on the condition; a longer timeout waits in slices of this
#: (``threading.Condition.wait`` raises OverflowError past ``threading.TIMEOUT_MAX``).
MAX_WAIT_SLICE = 3600.0
#: Seconds a gate lock is kept after its last waiter left (a worker's next wait reuses it).
LINGER = 1.0


def gate_sql(gate: str, key: str, *, exclusive_try: bool) -> str:
    """The advisory-lock call of gate ``gate`` (a literal) on the SQL text expression ``key``.

    Waiters take the lock shared (session-level, on the LISTEN connection); writers try it
    exclusively for their transaction and notify when the try fails. Two int4 keys: a lock
    space apart from the one-bigint key the schema migration locks.
    """
    call = "pg_try_advisory_xact_lock" if exclusive_try else "pg_advisory_lock_shared"
    return f"{call}(hashtext('{gate}'), hashtext({key}))"


class Listener:
    """LISTENs on ``channel`` and counts notifications by payload.

    :param connect: opens a new autocommit psycopg connection.
    :param channel: the channel's name (quoted as an identifier).
    :param gate: the gate's lock space (see the module's doc): the writers to this channel
        notify only while a waiter holds the lock of what it waits for.
    """

    def __init__(self, connect: Callable[[], Any], channel: str, gate: str) -> None:
        self.connect = connect
        self.channel = channel
        self.gate = gate
        self.cond = threading.Condition()
        #: Waiters per gate key now; the keys locked on the current connection; since when a
        #: locked key has had no waiter.
        self.wanted: collections.Counter[str] = collections.Counter()
        self.locked: set[str] = set()
        self.idle: dict[str, float] = {}
        #: Keys a waiter asked to have locked (:meth:`lock`), or whose lock a lost connection
        #: took while someone waited: the thread takes them next.
        self.requested: set[str] = set()
        #: When the thread's wait on its socket ends at the latest (monotonic).
        self._deadline = float("inf")
        #: Bumped on each connection made (a waiter for a lock stops waiting on a new one).
        self.connects = 0
        #: Bumped per key each time its lock is taken or given back: a waiter whose look came
        #: before that looks again (only the waiters of that key).
        self.gens: collections.Counter[str] = collections.Counter()
        # Written to wake the thread out of its wait on the socket (a lock is wanted, or close).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        #: Notifications seen, by payload (a queue name, or ``queue/id``).
        self.counts: collections.Counter[str] = collections.Counter()
        #: Bumped on each (re)connection: a waiter seeing it move looks again.
        self.epoch = 0
        #: The total of notifications seen, and the latest (number, payload) pairs.
        self.seq = 0
        self.history: collections.deque[tuple[int, str]] = collections.deque(maxlen=HISTORY)
        self.listening = threading.Event()
        self.closed = False
        self.conn: Any = None
        self.thread = threading.Thread(target=self._run, name=f"kue-listen {channel}",
                                       daemon=True)
        self.thread.start()

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        import psycopg

        backoff = Backoff()
        try:
            while not self.closed:
                try:
                    with self.connect() as conn:
                        self.conn = conn
                        conn.execute(f'LISTEN "{self.channel}"')
                        with self.cond:
                            self.connects += 1
                        self._sync_locks(conn)
                        self._woken(())  # anything sent while away is in the tables: look again
                        self.listening.set()
                        backoff.reset()
                        self._serve(conn)
                except psycopg.Error as exc:
                    with self.cond:  # its locks went with it: who waits on one gets it again
                        self.conn = None
                        self.requested.update(k for k in self.locked if k in self.wanted)
                        self.locked.clear()
                        self.idle.clear()
                    self._woken(())
                    if self.closed:
                        return
                    if backoff.first_failure:
                        log.warning("listening on %s: %s; reconnecting", self.channel, exc)
                    time.sleep(backoff.next())
        finally:
            with self.cond:
                self.locked.clear()
                self.conn = None
                self.cond.notify_all()
            self._wake_r.close()
            self._wake_w.close()

    def _serve(self, conn: Any) -> None:
        """Wait on the socket and the wake pipe; count notifications, take and drop locks."""
        sock = conn.fileno()
        while not self.closed:
            self._sync_locks(conn)
            # Notifications that came with a lock's reply wait in psycopg's backlog, not on
            # the socket: read them before waiting on it.
            got = tuple(note.payload for note in conn.notifies(timeout=0))
            if got:
                self._woken(got)
            timeout = _STOP_CHECK
            with self.cond:
                now = time.monotonic()
                if self.idle:
                    timeout = max(0.0, min(timeout, min(self.idle.values()) + LINGER - now))
                self._deadline = now + timeout
            ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while self._wake_r.recv(512):
                        pass

    def _sync_locks(self, conn: Any) -> None:
        """Take the gate locks waiters want; give back those idle for LINGER s."""
        now = time.monotonic()
        with self.cond:
            take = [k for k in self.requested if k not in self.locked]
            drop = [k for k, since in self.idle.items() if now - since >= LINGER]
            for key in drop:
                del self.idle[key]
                self.locked.discard(key)
                self.gens[key] += 1  # who looked while it was held looks again: it may go
            if drop:
                self.cond.notify_all()
        if drop:
            conn.execute(f"SELECT pg_advisory_unlock_shared(hashtext('{self.gate}'), "
                         "hashtext(k)) FROM unnest(%s::text[]) AS u(k)", (drop,))
        if take:
            conn.execute(f"SELECT {gate_sql(self.gate, 'k', exclusive_try=False)} FROM "
                         "unnest(%s::text[]) AS u(k)", (take,))
            with self.cond:
                self.locked.update(take)
                self.requested.difference_update(take)
                self.gens.update(take)
                later = time.monotonic()
                for key in take:  # its waiters left while it was being taken
                    if key not in self.wanted:
                        self.idle[key] = later
                self.cond.notify_all()

    def _woken(self, got: tuple[str, ...]) -> None:
        with self.cond:
            if not got:
                self.epoch += 1
            for payload in got:
                self.counts[payload] += 1
                self.seq += 1
                self.history.append((self.seq, payload))
            self.cond.notify_all()

    # -- waiting ---------------------------------------------------------------------------

    def ready(self, timeout: float) -> bool:
        """Wait until the channel is listened to (True), at most ``timeout`` s."""
        return self.listening.wait(timeout)

    def enter(self, keys: Sequence[str]) -> bool:
        """Count a waiter for ``keys`` (until :meth:`leave`); True if all are locked already."""
        with self.cond:
            for key in keys:
                self.wanted[key] += 1
                self.idle.pop(key, None)
            return all(key in self.locked for key in keys)

    def lock(self, keys: Sequence[str]) -> None:
        """Have the thread lock ``keys`` (entered already); return once it did.

        Also returns when the connection is down or was made again meanwhile: a new one
        takes every wanted lock before it wakes the waiters.
        """
        with self.cond:
            connects = self.connects
            if all(key in self.locked for key in keys):
                return
            self.requested.update(key for key in keys if key not in self.locked)
            self._poke()
            while not all(key in self.locked for key in keys):
                if self.closed or self.conn is None or self.connects != connects:
                    return
                self.cond.wait(_STOP_CHECK)

    def leave(self, keys: Sequence[str]) -> None:
        """One waiter for ``keys`` fewer; a key nobody waits for is unlocked after LINGER s."""
        with self.cond:
            now = time.monotonic()
            for key in keys:
                self.wanted[key] -= 1
                if self.wanted[key] <= 0:
                    del self.wanted[key]
                    if key in self.locked:
                        self.idle[key] = now
            if self.idle and self._deadline > now + LINGER:
                self._poke()  # its wait on the socket ends in time to unlock

    def _poke(self) -> None:
        # Full: a wake-up is pending anyway; closed: the thread has ended.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def mark(self, keys: Iterable[str]) -> tuple[int, int]:
        """What a waiter notes before it looks: the epoch, and a count of ``keys``' events.

        That count grows with each notification of ``keys`` and each change of their gate locks.
        """
        with self.cond:
            return self.epoch, self._seen(keys)

    def _seen(self, keys: Iterable[str]) -> int:
        return sum(self.counts[k] + self.gens[k] for k in keys)

    def wait(self, keys: Iterable[str], mark: tuple[int, int], timeout: float) -> bool:
        """Wait until a notification for one of ``keys`` since ``mark``, or ``timeout`` s.

        True if woken by one (or by a reconnection), False on timeout.
        """
        wanted = list(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while (self.epoch, self._seen(wanted)) == mark:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, MAX_WAIT_SLICE))
            return True

    def seq_mark(self, gate_key: str) -> tuple[int, int, int]:
        """For :meth:`wait_since`: the epoch, ``gate_key``'s lock generation, the latest note.

        The last is the number of the latest notification.
        """
        with self.cond:
            return self.epoch, self.gens[gate_key], self.seq

    def wait_since(self, key: str, gate_key: str, mark: tuple[int, int, int],
                   timeout: float) -> None:
        """Return once ``key`` was notified after ``mark``, or its gate changed, or on timeout.

        Also returns on a reconnection (``gate_key``'s lock changed with it), and at once if
        the history no longer reaches back to ``mark``.
        """
        epoch, gen, seq = mark
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.epoch != epoch or self.gens[gate_key] != gen or (
                        self.history and self.history[0][0] > seq + 1):
                    return
                for n, payload in reversed(self.history):
                    if n <= seq:
                        break
                    if payload == key:
                        return
                seq = self.seq  # what is older was checked
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(min(left, MAX_WAIT_SLICE))

    def close(self) -> None:
        """Stop the thread now (it closes its connection, and with it the gate's locks)."""
        self.closed = True
        with self.cond:
            self.cond.notify_all()
            self._poke()
