"""The ``kue-capabilities`` directive: a backend's capabilities table, read from the backend.

``{kue-capabilities} NAME`` renders one row per field of :class:`kue.Capabilities`, with the
value the backend declares and the field's meaning from the class docstring, so the table can
never disagree with the code. Every backend is opened the same way, on the throwaway server its
plugin describes (hook ``kue_contract_server``); the ``:variants:`` option adds a column per
variant, as URL parameters (default: the variants the spec names).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # no types-docutils in the venv
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

import kue
from kue.plugins import backend_entry_points, open_backend
from kue_contract.servers import ServerUnavailable, spec_for, throwaway

__all__ = ["CapabilitiesDirective", "capability_columns", "capability_meanings", "setup"]


def capability_columns(name: str, variants: Sequence[str]) -> list[tuple[str, kue.Capabilities]]:
    """What backend ``name`` declares, as it runs: (column title, capabilities) pairs.

    The backend is opened on its plugin's throwaway server (a local process started from the
    plugin's :class:`~kue_contract.servers.ServerSpec`, or a fresh file or store for a backend
    without one), at the server's URL and then with each of ``variants`` (URL parameters, such
    as ``fifo=1``) added to it.
    """
    columns = []
    with throwaway(name, "local") as server:
        for variant in ["", *variants]:
            url = f"{server.url}{'&' if '?' in server.url else '?'}{variant}" if variant \
                else server.url
            backend = open_backend(name, url)
            try:
                columns.append((f"with {variant}" if variant else "value", backend.capabilities))
            finally:
                backend.close()
    return columns


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
    """``{kue-capabilities} NAME``: the capabilities table of backend NAME.

    Option ``:variants:``: space-separated URL parameters, one column each
    (``bands=0,100,1000 fifo=1``); without it, the variants the backend's server spec names.
    """

    required_arguments = 1
    option_spec = {"variants": str}

    def run(self) -> list[nodes.Node]:
        """Build the table; an unknown name is an error that lists the installed backends."""
        name = self.arguments[0]
        if name not in backend_entry_points():
            raise self.error(f"no backend {name!r}; installed: {sorted(backend_entry_points())}")
        given = self.options.get("variants")
        variants = given.split() if given is not None else spec_for(name).variants
        try:
            return [capabilities_table(capability_columns(name, variants))]
        except ServerUnavailable as exc:  # says how to install the server
            raise self.error(f"the {name} table needs its throwaway server: {exc}") from exc


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("kue-capabilities", CapabilitiesDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
