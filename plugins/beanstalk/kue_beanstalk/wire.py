"""What goes on the wire: tube names, whole seconds, and commands whose replies are read later.

beanstalkd answers commands in the order they arrive, so several commands can be written at once
and their replies read afterwards (a pipeline). That is how ``put_many`` costs one round trip,
and how a ``use`` or ``watch`` rides along with the command that needs it.

Replies that are not the expected one are greenstalk's errors (its public exception classes), so
kue's code and greenstalk's users name beanstalkd's answers alike.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import greenstalk

__all__ = [
    "DEFAULT_TUBE",
    "ERRORS",
    "MAX_TUBE_NAME",
    "MAX_UINT32",
    "Command",
    "JobFields",
    "Reply",
    "check_tube",
    "ignore_command",
    "job_fields",
    "parse_list",
    "parse_stats",
    "put_command",
    "reserve_command",
    "simple",
    "stats_job_command",
    "stats_tube_command",
    "use_command",
    "watch_command",
    "whole_seconds",
]

#: The tube a new connection uses and watches.
DEFAULT_TUBE = "default"

#: The error replies of protocol.txt and the greenstalk exception each one means.
ERRORS: dict[bytes, type[greenstalk.BeanstalkdError]] = {
    b"BAD_FORMAT": greenstalk.BadFormatError,
    b"BURIED": greenstalk.BuriedError,
    b"DEADLINE_SOON": greenstalk.DeadlineSoonError,
    b"DRAINING": greenstalk.DrainingError,
    b"EXPECTED_CRLF": greenstalk.ExpectedCrlfError,
    b"INTERNAL_ERROR": greenstalk.InternalError,
    b"JOB_TOO_BIG": greenstalk.JobTooBigError,
    b"NOT_FOUND": greenstalk.NotFoundError,
    b"NOT_IGNORED": greenstalk.NotIgnoredError,
    b"OUT_OF_MEMORY": greenstalk.OutOfMemoryError,
    b"TIMED_OUT": greenstalk.TimedOutError,
    b"UNKNOWN_COMMAND": greenstalk.UnknownCommandError,
}

#: beanstalkd's limit on a tube name, in bytes.
MAX_TUBE_NAME = 200
#: Largest priority, delay, ttr and kick bound the protocol carries.
MAX_UINT32 = 2**32 - 1

# protocol.txt: letters, digits, - + / ; . $ _ ( ), not starting with a hyphen.
_TUBE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]*")


def check_tube(name: object) -> str:
    """Return ``name`` if beanstalkd accepts it as a tube name, else raise ValueError.

    Checked before sending: beanstalkd answers a bad name with BAD_FORMAT, which would cost
    the connection.
    """
    if not isinstance(name, str):
        raise TypeError(f"a queue name must be a str, got {name!r} of type {type(name).__name__}")
    if not _TUBE_NAME.fullmatch(name):
        raise ValueError(
            f"queue name {name!r} is not a valid beanstalkd tube name: use letters, digits and "
            "- + / ; . $ _ ( ), not starting with a hyphen"
        )
    if len(name) > MAX_TUBE_NAME:
        raise ValueError(
            f"queue name {name[:40]!r}... is {len(name)} bytes, over beanstalkd's limit of "
            f"{MAX_TUBE_NAME} bytes for a tube name"
        )
    return name


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up to the whole seconds beanstalkd counts in (0.3 s becomes 1 s)."""
    return min(math.ceil(seconds), MAX_UINT32)


# Command and Reply are named tuples rather than dataclasses: one of each is made per command,
# and a tuple is several times cheaper to build on the put and reserve hot paths.


class Command(NamedTuple):
    """One command of a pipeline and the reply that means success.

    :param data: the bytes to send, ending with CRLF (and the body with its CRLF, for put).
    :param expected: the reply word of success, such as ``b"INSERTED"``.
    :param has_body: a successful reply is followed by a body of the size its last value gives.
    """

    data: bytes
    expected: bytes
    has_body: bool = False


class Reply(NamedTuple):
    """A reply read off the wire: its word, its values and any body."""

    word: bytes
    values: list[bytes]
    body: bytes = b""


def put_command(body: bytes, priority: int, delay: int, ttr: int) -> Command:
    """The ``put`` command for one job (values already validated and in whole seconds)."""
    return Command(b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body),
                   b"INSERTED")


def reserve_command(seconds: int | None) -> Command:
    """``reserve-with-timeout`` for whole ``seconds``, or a plain ``reserve`` for None."""
    if seconds is None:
        return Command(b"reserve\r\n", b"RESERVED", True)
    return Command(b"reserve-with-timeout %d\r\n" % seconds, b"RESERVED", True)


def stats_job_command(job_id: int) -> Command:
    """``stats-job``: a job's state, priority, ttr, time left and ``reserves`` count."""
    return Command(b"stats-job %d\r\n" % job_id, b"OK", True)


def stats_tube_command(tube: str) -> Command:
    """``stats-tube``: a tube's counts of ready, delayed, reserved and buried jobs."""
    return Command(b"stats-tube %b\r\n" % tube.encode("ascii"), b"OK", True)


def parse_stats(body: bytes) -> dict[str, str]:
    """The fields of a ``stats-job`` (or other stats) YAML reply body, as strings."""
    fields: dict[str, str] = {}
    for line in body.decode("ascii").split("\n")[1:]:  # after the YAML "---"
        key, _, value = line.partition(": ")
        if value:
            fields[key] = value.rstrip("\r")
    return fields


def parse_list(body: bytes) -> list[str]:
    """The names of a ``list-tubes`` YAML reply body."""
    return [line[2:] for line in body.decode("ascii").split("\n")[1:] if line.startswith("- ")]


def simple(line: bytes, expected: bytes, *, has_body: bool = False) -> Command:
    """A command of one line (no job body sent)."""
    return Command(line + b"\r\n", expected, has_body)


def use_command(tube: str) -> Command:
    """Make ``tube`` the one puts, peeks and kicks of this connection act on."""
    return simple(b"use " + tube.encode("ascii"), b"USING")


def watch_command(tube: str) -> Command:
    """Add ``tube`` to the tubes this connection reserves from."""
    return simple(b"watch " + tube.encode("ascii"), b"WATCHING")


def ignore_command(tube: str) -> Command:
    """Remove ``tube`` from the tubes this connection reserves from."""
    return simple(b"ignore " + tube.encode("ascii"), b"WATCHING")


# beanstalkd has printed stats-job's fields in this order since 1.0 (STATS_JOB_FMT); one search
# is several times cheaper than splitting the whole reply, and parse_stats is the fallback.
_JOB_FIELDS = re.compile(
    rb"\ntube: ([^\n]*)\n(?:[^\n]*\n)*?pri: (\d+)\n(?:[^\n]*\n)*?ttr: (\d+)\n"
    rb"(?:[^\n]*\n)*?time-left: (\d+)\n(?:[^\n]*\n)*?reserves: (\d+)\n"
)


class JobFields(NamedTuple):
    """What a ``stats-job`` reply says of a job that kue needs.

    :param reserves: beanstalkd's count of reserves: the identity of one reservation, and
        (less the give-backs this process made, see :class:`kue_beanstalk.batch.GiveBacks`)
        kue's attempts.
    """

    tube: str
    priority: int
    ttr: int
    left: int
    reserves: int


def job_fields(body: bytes) -> JobFields:
    """What kue needs of a ``stats-job`` reply body.

    :raises ValueError: the body is not a stats-job reply (KeyError too, for missing fields).
    """
    found = _JOB_FIELDS.search(body)
    if found is not None:
        tube, pri, ttr, left, reserves = found.groups()
        return JobFields(tube.decode("ascii"), int(pri), int(ttr), int(left), int(reserves))
    f = parse_stats(body)
    return JobFields(f["tube"], int(f["pri"]), int(f["ttr"]), int(f["time-left"]),
                     int(f["reserves"]))
