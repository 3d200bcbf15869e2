"""``kue backends``: which backends are installed, from which distribution, and what they offer.

Capabilities belong to an opened backend object, and opening a server backend may connect to a
server. So the listing opens only kue's embedded backends (``memory`` and ``sqlite``, on a
throwaway store) and shows the capabilities of any other backend only when ``--url`` names it.
Every plugin module is imported, which is cheap (plugins import their client library only when a
queue is opened) and shows a broken installation at once.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pluggy

from kue.backend import Capabilities
from kue.config import backend_name, mask_url
from kue.errors import KueError
from kue.plugins import backend_entry_points, load_backend_plugin, open_backend

__all__ = ["BackendInfo", "describe_url", "format_capabilities", "installed_backends"]

#: Backends that need no server, with the throwaway URL that opens one inside a temp directory.
EMBEDDED: dict[str, Callable[[Path], str]] = {
    "memory": lambda _tmp: "memory://kue-backends-probe",
    "sqlite": lambda tmp: f"sqlite:///{tmp / 'probe.sqlite3'}",
}


@dataclass(frozen=True)
class BackendInfo:
    """One installed backend as ``kue backends`` shows it.

    :param name: the entry-point name, which is also the URL scheme.
    :param distribution: the distribution that registers it, with its version.
    :param module: the plugin object the entry point names.
    :param configured: configuration (flags, KUE_URL, kue.toml, ...) names this backend.
    :param capabilities: what it offers, when it could be read without a server.
    :param note: why capabilities are missing, or where they came from.
    """

    name: str
    distribution: str
    module: str
    configured: bool
    capabilities: Capabilities | None
    note: str

    def as_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        doc = dataclasses.asdict(self)
        doc["capabilities"] = (
            None if self.capabilities is None else dataclasses.asdict(self.capabilities)
        )
        return doc


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    return "unknown distribution" if dist is None else f"{dist.name} {dist.version}"


def _capabilities_of(name: str, url: str, options: dict[str, Any],
                     pm: pluggy.PluginManager) -> Capabilities:
    backend = open_backend(name, url, options, pm)
    try:
        return backend.capabilities
    finally:
        backend.close()


def installed_backends(configured: str | None, pm: pluggy.PluginManager) -> list[BackendInfo]:
    """Every backend of the ``kue.backends`` entry points, sorted by name; opens no server.

    :param configured: the backend name configuration chose, to mark it (None: unknown).
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="kue-backends-") as tmp:
        for name, ep in sorted(backend_entry_points().items()):
            caps: Capabilities | None = None
            try:
                load_backend_plugin(name, pm)
                if name in EMBEDDED:
                    caps = _capabilities_of(name, EMBEDDED[name](Path(tmp)), {}, pm)
                    note = "embedded: read from a throwaway instance"
                else:
                    note = f"capabilities come from its server: kue backends --url {name}://..."
            except KueError as exc:
                note = f"broken: {exc}"
            rows.append(BackendInfo(name, _distribution(ep), ep.value, name == configured,
                                    caps, note))
    return rows


def describe_url(url: str, options: dict[str, Any], pm: pluggy.PluginManager) -> BackendInfo:
    """The backend ``url`` names, opened to read the capabilities it reports (may connect)."""
    name = backend_name(url)
    load_backend_plugin(name, pm)  # raises UnknownBackend, listing the installed ones
    ep = backend_entry_points()[name]
    caps = _capabilities_of(name, url, options, pm)
    return BackendInfo(name, _distribution(ep), ep.value, True, caps,
                       f"read from {mask_url(url)}")


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{int(n // scale)} {unit}"
    return f"{int(n)} B"


def _seconds(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else f"{n:g}"


def _limit(name: str, value: object) -> str:
    if name == "max_body" and isinstance(value, int):
        return f"body up to {_size(value)}"
    if name == "max_batch":
        return f"{value} jobs per batch"
    label = name.replace("_", " ")
    if isinstance(value, float):
        return f"{label} {_seconds(value)} s"
    return f"{label} {value}"


def format_capabilities(caps: Capabilities) -> list[str]:
    """Human lines: which features it supports, which it lacks, and its limits.

    Built from the dataclass's fields, so a capability added to :class:`kue.Capabilities`
    shows up here without a change.
    """
    values = {f.name: getattr(caps, f.name) for f in dataclasses.fields(caps)
              if f.name not in ("name", "extra")}
    flags = {k.replace("_", " "): v for k, v in values.items() if isinstance(v, bool)}
    limits = [_limit(k, v) for k, v in values.items() if not isinstance(v, bool)]
    lines = [
        f"supports: {', '.join(k for k, v in flags.items() if v) or '-'}",
        f"lacks:    {', '.join(k for k, v in flags.items() if not v) or '-'}",
        f"limits:   {', '.join(limits)}",
    ]
    if caps.extra:
        lines.append("extra:    " + ", ".join(f"{k}={v}" for k, v in caps.extra.items()))
    return lines
