"""The ``kue-capabilities`` directive: a backend's capabilities table, read from the backend.

``{kue-capabilities} NAME`` renders one row per field of :class:`kue.Capabilities`, with the
value the backend declares and the field's meaning from the class docstring, so the table can
never disagree with the code. Memory and SQLite are opened; the server backends' capabilities
are read from their plugin packages without a server.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # no types-docutils in the venv
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

import kue

__all__ = ["CapabilitiesDirective", "capability_meanings", "capability_sources", "setup"]


def _opened(url: str) -> kue.Capabilities:
    queue = kue.connect(url, queue="docs")
    try:
        caps: kue.Capabilities = queue.capabilities
        return caps
    finally:
        queue.close()


def _memory() -> list[tuple[str, kue.Capabilities]]:
    return [("value", _opened("memory://docs-capabilities"))]


def _sqlite() -> list[tuple[str, kue.Capabilities]]:
    with tempfile.TemporaryDirectory(prefix="kue-docs-") as tmp:
        return [("value", _opened(f"sqlite:///{Path(tmp) / 'kue.sqlite3'}"))]


def _redis() -> list[tuple[str, kue.Capabilities]]:
    from kue_redis.backend import RedisBackend

    # The constructor only prepares a connection pool; nothing connects to this address.
    backend = RedisBackend("redis://127.0.0.1:6379/0")
    return [("value", backend.capabilities)]


def _beanstalk() -> list[tuple[str, kue.Capabilities]]:
    from kue_beanstalk.backend import BASE_CAPABILITIES

    return [("value", BASE_CAPABILITIES)]


def _sqs() -> list[tuple[str, kue.Capabilities]]:
    from kue_sqs.backend import capabilities_for
    from kue_sqs.settings import parse_settings

    return [
        ("value", capabilities_for(parse_settings("sqs://?region=us-east-1", {}))),
        ("with bands=0,100,1000",
         capabilities_for(parse_settings("sqs://?region=us-east-1&bands=0,100,1000", {}))),
        ("with fifo=1",
         capabilities_for(parse_settings("sqs://?region=us-east-1&fifo=1", {}))),
        ("with fifo=1&fifo_group=job",
         capabilities_for(parse_settings("sqs://?region=us-east-1&fifo=1&fifo_group=job", {}))),
    ]


def _postgres() -> list[tuple[str, kue.Capabilities]]:
    from kue_postgres.backend import CAPABILITIES

    return [("value", CAPABILITIES)]


def capability_sources() -> dict[str, Callable[[], list[tuple[str, kue.Capabilities]]]]:
    """For each backend name, how to get its capabilities: (column title, capabilities) pairs."""
    return {
        "memory": _memory, "sqlite": _sqlite, "redis": _redis,
        "beanstalk": _beanstalk, "sqs": _sqs, "postgres": _postgres,
    }


def capability_meanings() -> dict[str, str]:
    """Each field's ``:param name: text`` from the Capabilities docstring, joined to one line."""
    doc = kue.Capabilities.__doc__ or ""
    found = re.findall(r":param (\w+):(.*?)(?=\n\s*:param |\Z)", doc, flags=re.S)
    return {name: " ".join(text.split()) for name, text in found}


def _inline(text: str) -> list[nodes.Node]:
    """Docstring text as nodes: ``code`` and :role:`target` become literals, the rest text."""
    parts = re.split(r"``(.+?)``|:\w+:`~?(.+?)`", text)
    out: list[nodes.Node] = []
    for i, part in enumerate(parts):
        if part is None or part == "":
            continue
        out.append(nodes.literal(part, part) if i % 3 else nodes.Text(part))
    return out


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return repr(value) if isinstance(value, str) else str(value)


def _row(cells: list[list[nodes.Node]]) -> nodes.row:
    row = nodes.row()
    for content in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", *content)
        row += entry
    return row


def capabilities_table(columns: list[tuple[str, kue.Capabilities]]) -> nodes.table:
    """A table with one row per capability: name, each column's value, meaning."""
    meanings = capability_meanings()
    headers = ["capability", *(title for title, _ in columns), "meaning"]
    rows: list[list[list[nodes.Node]]] = []
    for f in dataclasses.fields(kue.Capabilities):
        if f.name == "extra":
            continue
        values = [getattr(caps, f.name) for _, caps in columns]
        rows.append([[nodes.literal(f.name, f.name)],
                     *([nodes.literal(_format(v), _format(v))] for v in values),
                     _inline(meanings.get(f.name, ""))])
    extra_keys = dict.fromkeys(k for _, caps in columns for k in caps.extra)
    for key in extra_keys:
        label = f'extra["{key}"]'
        values = [caps.extra.get(key, "") for _, caps in columns]
        rows.append([[nodes.literal(label, label)],
                     *([nodes.Text(_format(v) if not isinstance(v, str) else v)] for v in values),
                     [nodes.Text("backend-specific detail")]])
    table = nodes.table(classes=["kue-capabilities"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in [20, *([16] * len(columns)), 50]:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row([[nodes.Text(h)] for h in headers])
    body = nodes.tbody()
    for cells in rows:
        body += _row(cells)
    group += head
    group += body
    return table


class CapabilitiesDirective(SphinxDirective):
    """``{kue-capabilities} NAME``: the capabilities table of backend NAME."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Build the table; an unknown name is an error that lists the known ones."""
        name = self.arguments[0]
        sources = capability_sources()
        if name not in sources:
            raise self.error(f"no capabilities source for {name!r}; known: {sorted(sources)}")
        return [capabilities_table(sources[name]())]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("kue-capabilities", CapabilitiesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
