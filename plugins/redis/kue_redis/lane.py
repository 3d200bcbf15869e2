"""Script calls straight on a pooled connection: the backend's hot path without redis-py's layers.

``Redis.execute_command`` takes a connection from the pool and gives it back around every
command, through redis-py's event, metrics and retry layers. On the bench machine that is
about 40 µs of client CPU per call (92 µs against 50 µs for the same EVALSHA sent and read on
a connection directly), as much as the server's whole round trip, and a worker makes one
script call per job. A :class:`ScriptLane` gives each thread one connection of the pool for
its script calls, and sends and reads each EVALSHA on it itself.

What stays as redis-py does it, or safer:

- the connection's own retry policy (the backend's ``Retry``): a dropped connection is closed
  and the command sent again, as ``execute_command`` does; :meth:`ScriptLane.resent` tells
  the caller, whose ack may then find its own first send's work done;
- an exception between the send and the reply, even a BaseException such as a stop signal
  raised into the thread, closes the connection, so no later call can read an earlier call's
  reply (the next call opens it again);
- a thread keeps its connection from its first call to its end, when the connection goes back
  to the pool; no pool operation runs on the hot path, so an exception raised at any moment
  cannot leak a connection there;
- after a fork the child never uses its parent's sockets: it takes a new connection from the
  pool, which notices the fork itself.

A thread may send a second command once the first's reply is in without waiting for the
second's (:meth:`ScriptLane.execute_deferring`): its reply is read later, by
:meth:`ScriptLane.take_deferred` or before this thread's next command, so replies never
cross. At most one reply is deferred per thread: a new deferring call reads the last one first.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from kue.spi import current_pid

if HIREDIS_AVAILABLE:
    from hiredis import pack_command as _hiredis_pack

__all__ = ["DeferredReply", "ScriptLane"]

#: Connection failures after which a deferred reply is lost (the connection is closed).
_LOST = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass(frozen=True)
class DeferredReply:
    """The reply of a deferred command, once read.

    :param value: the reply (None with ``error``).
    :param error: an error reply (``redis.ResponseError``), or the connection failure that
        lost the reply: the command may or may not have run.
    """

    value: Any = None
    error: Exception | None = None


class _Held:
    """One thread's connection, the process it was opened in, and its deferred reply."""

    __slots__ = ("__weakref__", "conn", "deferred", "outcome", "pid")

    def __init__(self, conn: Any, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        #: A deferred command's reply is still to be read from the connection.
        self.deferred = False
        #: The deferred reply read (by another command first), until taken.
        self.outcome: DeferredReply | None = None


class ScriptLane:
    """Commands on the calling thread's connection of ``pool``: scripts, and the blocking BLPOP.

    ``evalsha`` and ``script_load`` have the client's signatures, so a script runs on either.

    :param pool: the backend's connection pool; connections come from it and stay open in it,
        so closing the pool (``pool.disconnect()``) closes the lane's connections too, and a
        later call opens them again.
    """

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()
        # With hiredis, and no packer of the caller's own, a connection packs a command with
        # hiredis.pack_command after a per-argument pass in Python that costs as much again
        # for a script call's 20 to 40 arguments (about 5 us for 40): pack it here directly.
        self._pack = HIREDIS_AVAILABLE and "command_packer" not in pool.connection_kwargs

    def _held(self) -> _Held:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != current_pid():
            conn = self._pool.get_connection()
            held = _Held(conn, current_pid())
            # A thread's local storage is dropped when it ends: the connection goes back then.
            weakref.finalize(held, self._pool.release, conn)
            self._local.held = held
        return held

    def _packed(self, conn: Any, command: tuple[Any, ...]) -> list[bytes]:
        return [_hiredis_pack(command)] if self._pack else list(conn.pack_command(*command))

    def execute(self, *command: Any) -> Any:
        """Send one command and return its reply, resending after a dropped connection.

        :meth:`resent` then tells whether this thread's last command was sent more than once.
        A deferred reply still on its way is read first (see :meth:`take_deferred`).
        """
        held = self._held()
        self._read_deferred(held)
        conn = held.conn
        packed = self._packed(conn, command)
        local = self._local
        local.resent = False

        def dropped(_error: BaseException) -> None:
            local.resent = True  # the server may have run the first send: its reply was lost
            conn.disconnect()

        return conn.retry.call_with_retry(lambda: self._call(conn, packed), dropped)

    def execute_deferring(self, first: tuple[Any, ...], second: tuple[Any, ...]) -> Any:
        """Send ``first`` and return its reply; then send ``second``, whose reply waits.

        The second's reply is read by :meth:`take_deferred`, or before this thread's next
        command. A dropped connection sends the first again, as :meth:`execute` does
        (:meth:`resent`). The second is sent only once the first's reply is in, so an error
        reply to the first (raised) means the second was never sent.
        """
        held = self._held()
        self._read_deferred(held)
        held.outcome = None  # one deferred reply per thread: an untaken one is dropped
        reply = self.execute(*first)
        conn = held.conn
        # A write of its own: redis sends the replies to the commands of one read together,
        # so sent with the first it would hold back the first's reply until it was done too.
        try:
            conn.send_packed_command(self._packed(conn, second), check_health=False)
        except _LOST as exc:  # not sent, or not all of it: the connection is closed
            conn.disconnect()
            held.outcome = DeferredReply(error=exc)
        except BaseException as exc:
            conn.disconnect()
            held.outcome = DeferredReply(error=redis.ConnectionError(repr(exc)))
            raise
        else:
            held.deferred = True
        return reply

    def take_deferred(self) -> DeferredReply | None:
        """The deferred reply of this thread's last :meth:`execute_deferring`, read if need be.

        None if there is none, or it was taken already.
        """
        held = self._held()
        self._read_deferred(held)
        outcome, held.outcome = held.outcome, None
        return outcome

    @staticmethod
    def _read_deferred(held: _Held) -> None:
        """Read the deferred reply still on its way, if any, into ``held.outcome``.

        A connection failure loses it (the connection is closed, so no later call reads it);
        any other exception, such as a stop signal, does too, and is raised.
        """
        if not held.deferred:
            return
        held.deferred = False
        try:
            held.outcome = DeferredReply(held.conn.read_response())
        except redis.ResponseError as exc:
            held.outcome = DeferredReply(error=exc)
        except _LOST as exc:
            held.conn.disconnect()
            held.outcome = DeferredReply(error=exc)
        except BaseException as exc:
            held.conn.disconnect()
            held.outcome = DeferredReply(error=redis.ConnectionError(repr(exc)))
            raise

    def resent(self) -> bool:
        """Whether this thread's last command was sent again after a dropped connection."""
        return bool(getattr(self._local, "resent", False))

    @staticmethod
    def _call(conn: Any, packed: Any) -> Any:
        try:
            conn.send_packed_command(packed, check_health=False)
            return conn.read_response()
        except redis.ResponseError:
            raise  # an error reply, read whole: the connection is in step
        except BaseException:
            conn.disconnect()  # a reply may still be on its way; it must answer no later call
            raise

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """Run a loaded script, as ``redis.Redis.evalsha``."""
        return self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    def script_load(self, source: str) -> str:
        """Load a script into the server's cache; returns its SHA1."""
        sha = self.execute("SCRIPT", "LOAD", source)
        return sha.decode() if isinstance(sha, bytes) else str(sha)
