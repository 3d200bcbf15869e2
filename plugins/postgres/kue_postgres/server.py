"""The throwaway PostgreSQL cluster of tests and benchmarks, described once; kue_contract runs it.

A cluster of its own in the scratch directory (made by ``initdb``, the spec's setup) on a free
loopback port, never the machine's own service. PostgreSQL refuses root, so under root both run
as the OS user ``postgres`` the server packages create. The binaries are taken from the newest
``/usr/lib/postgresql/N/bin`` (Debian, Ubuntu), else PATH. Test-time only: imports kue_contract.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from kue_contract.servers import ServerSpec

__all__ = ["BINDIR", "SERVER", "STARTUP_PROBE", "VERSION"]


def _debian_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` that holds a server, if any."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").is_file()]
    numbered = [p for p in found if re.fullmatch(r"\d+", p.parent.name)]
    return max(numbered, key=lambda p: int(p.parent.name), default=None)


#: Where initdb and postgres are, or None to take them from PATH.
BINDIR = _debian_bindir()
#: The server's major version as the Debian layout names it (the image's tag).
VERSION = BINDIR.parent.name if BINDIR is not None else "17"
_BIN = f"{BINDIR}/" if BINDIR is not None else ""

#: A protocol-3 startup packet for user ``postgres``: a ready server answers R (trust
#: authentication: AuthenticationOk); one still starting or recovering answers E.
_PARAMS = b"user\0postgres\0database\0postgres\0\0"
STARTUP_PROBE = struct.pack("!ii", 8 + len(_PARAMS), 196608) + _PARAMS

#: fsync is off (a killed server loses nothing a commit acknowledged: the WAL is written before
#: the commit returns, only a machine crash could lose it); ``durable`` turns it on.
SERVER = ServerSpec(
    url="postgresql://postgres@{host}:{port}/postgres",
    binary=f"{_BIN}postgres",
    setup=((f"{_BIN}initdb", "--pgdata={scratch}/data", "--username=postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"),
           # initdb trusts loopback only; in a container the client comes through a bridge.
           # Locally the server listens on 127.0.0.1 alone, so this changes nothing there.
           ("sh", "-c", "echo 'host all all all trust' >> \"$0/data/pg_hba.conf\"",
            "{scratch}")),
    args=("-D", "{scratch}/data", "-p", "{port}", "-c", "listen_addresses={host}",
          "-c", "unix_socket_directories={scratch}", "-c", "fsync=off",
          "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "TimeZone=UTC",
          "-c", "log_timezone=UTC", "-c", "autovacuum_naptime=1s"),
    ready=(STARTUP_PROBE, b"R"), user="postgres", name="postgres",
    image=f"localhost/kue-postgres:{VERSION}", container_port=5432,
    files=(*((str(BINDIR.parent / "lib"), f"/usr/share/postgresql/{VERSION}")
             if BINDIR is not None else ()),
           *(z for z in ("/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/Etc/UTC")
             if Path(z).is_file())),
    install_hint="Install the PostgreSQL server (Debian/Ubuntu: `apt-get install "
    "postgresql`; macOS: `brew install postgresql`); kue starts its own cluster and never "
    "uses the system's service.",
    durable=("-c", "fsync=on", "-c", "full_page_writes=on"),
)
