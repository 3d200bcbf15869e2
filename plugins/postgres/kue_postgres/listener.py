"""One LISTEN connection per channel and process, in a thread, that wakes waiting threads.

A blocked ``reserve`` (or ``wait_record``) notes the :class:`Listener`'s counters, asks the
database once, and if it got nothing waits on the listener's condition until a notification
names what it waits for, the next due job's time, or its timeout: no polling. A notification
sent between the note and the wait is not lost, because the counters moved.

The thread reconnects with :class:`kue.spi.Backoff` after a lost connection, and each
(re)connection bumps :attr:`Listener.epoch`, which wakes every waiter: what was notified while
the listener was away is found by their next look at the tables.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kue.spi import Backoff

__all__ = ["MAX_WAIT_SLICE", "Listener"]

log = logging.getLogger(__name__)

#: How many recent notifications a listener remembers for waiters that look back.
HISTORY = 4096
#: Seconds between checks, in the listener thread only, that the backend was not closed.
_STOP_CHECK = 5.0
#: The longest single wait on the condition; a longer timeout waits in slices of this
#: (``threading.Condition.wait`` raises OverflowError past ``threading.TIMEOUT_MAX``).
MAX_WAIT_SLICE = 3600.0


class Listener:
    """LISTENs on ``channel`` and counts notifications by payload.

    :param connect: opens a new autocommit psycopg connection.
    :param channel: the channel's name (quoted as an identifier).
    """

    def __init__(self, connect: Callable[[], Any], channel: str) -> None:
        self.connect = connect
        self.channel = channel
        self.cond = threading.Condition()
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
        while not self.closed:
            try:
                with self.connect() as conn:
                    self.conn = conn
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._woken(())  # anything sent while away is in the tables: look again
                    self.listening.set()
                    backoff.reset()
                    while not self.closed:
                        for note in conn.notifies(timeout=_STOP_CHECK):
                            if self.closed:  # close() woke it: stop now, not at the timeout
                                break
                            self._woken((note.payload,))
            except psycopg.Error as exc:
                self.conn = None
                self._woken(())
                if self.closed:
                    return
                if backoff.first_failure:
                    log.warning("listening on %s: %s; reconnecting", self.channel, exc)
                time.sleep(backoff.next())

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

    def mark(self, keys: Iterable[str]) -> tuple[int, int]:
        """What a waiter notes before it looks: the epoch and the count of ``keys``."""
        with self.cond:
            return self.epoch, sum(self.counts[k] for k in keys)

    def wait(self, keys: Iterable[str], mark: tuple[int, int], timeout: float) -> bool:
        """Wait until a notification for one of ``keys`` since ``mark``, or ``timeout`` s.

        True if woken by one (or by a reconnection), False on timeout.
        """
        wanted = list(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while (self.epoch, sum(self.counts[k] for k in wanted)) == mark:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, MAX_WAIT_SLICE))
            return True

    def seq_mark(self) -> tuple[int, int]:
        """The epoch and the number of the latest notification, for :meth:`wait_since`."""
        with self.cond:
            return self.epoch, self.seq

    def wait_since(self, key: str, mark: tuple[int, int], timeout: float) -> None:
        """Return once ``key`` was notified after ``mark``, on a reconnection, or after timeout.

        Also returns at once if the history no longer reaches back to ``mark``.
        """
        epoch, seq = mark
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.epoch != epoch or (self.history and self.history[0][0] > seq + 1):
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
        """Stop the thread at its next wake-up (the backend sends it one)."""
        self.closed = True
