"""A batch's job bodies as one binary ``bytea[]`` parameter, packed without a Python loop.

psycopg dumps a list parameter element by element in Python (a length and a piece per body):
for put_many's 100-byte bodies that was the largest share of the client's CPU per job. On the
connections :func:`register` sets up, a :class:`Bodies` list is packed by :func:`pack` instead,
in C-level calls; anywhere else (a caller's own connection) psycopg finds its list dumper for it
and sends the same array.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg.adapt import AdaptersMap

__all__ = ["BYTEA_ARRAY_OID", "Bodies", "pack", "register"]

BYTEA_OID = 17
BYTEA_ARRAY_OID = 1001

#: PostgreSQL's binary array header for one dimension: number of dimensions, has-nulls flag,
#: element type, then the dimension's length and lower bound.
_HEAD = struct.Struct("!iiIii")
_EMPTY = struct.pack("!iiI", 0, 0, BYTEA_OID)
_LENGTH = struct.Struct("!i").pack


class Bodies(list[bytes]):
    """Job bodies (bytes, none None) to send as one ``bytea[]`` parameter."""

    __slots__ = ()


def pack(bodies: Sequence[bytes]) -> bytes:
    """The binary wire form of ``bodies`` as a one-dimensional ``bytea[]`` without nulls."""
    if not bodies:
        return _EMPTY
    lengths = map(_LENGTH, map(len, bodies))
    return b"".join((_HEAD.pack(1, 0, BYTEA_OID, len(bodies), 1),
                     *chain.from_iterable(zip(lengths, bodies, strict=True))))


@functools.cache
def _dumper() -> type[Any]:
    """The psycopg dumper class for :class:`Bodies` (built on first use: psycopg loads late)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class BodiesDumper(Dumper):
        """Dumps :class:`Bodies` with :func:`pack`."""

        format = Format.BINARY
        oid = BYTEA_ARRAY_OID

        def dump(self, obj: Any) -> bytes:
            return pack(obj)

    return BodiesDumper


def register(adapters: AdaptersMap) -> None:
    """Make ``adapters`` (a connection's) send :class:`Bodies` packed by :func:`pack`."""
    adapters.register_dumper(Bodies, _dumper())
