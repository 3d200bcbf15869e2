"""The conformance report ``--kue-report=PATH`` writes: every contract case and its outcome.

Markdown (a table per test class, for docs), or JSON when PATH ends in ``.json``. A skipped case
names the capability whose declared value skipped it, when a capability did.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kue.backend import Capabilities

__all__ = ["Case", "Report", "capability_of"]

_CAPABILITY = re.compile(r"declares capability (\w+)=(\w+)")


def capability_of(reason: str) -> str | None:
    """``name=value`` of the capability a skip reason names, if it names one."""
    found = _CAPABILITY.search(reason)
    return None if found is None else f"{found[1]}={found[2]}"


@dataclass
class Case:
    """One contract case: its test id, outcome, and for a skip the reason and capability."""

    nodeid: str
    outcome: str = "passed"
    reason: str = ""
    capability: str | None = None

    @property
    def group(self) -> str:
        """The test class the case belongs to (``TestTtr``)."""
        parts = self.nodeid.split("::")
        return parts[-2] if len(parts) >= 3 else ""

    @property
    def name(self) -> str:
        """The test's name with its parameters."""
        return self.nodeid.split("::")[-1]


@dataclass
class Report:
    """Every case of one contract run against one backend."""

    backend: str
    capabilities: Capabilities | None = None
    cases: dict[str, Case] = field(default_factory=dict)

    def record(self, nodeid: str, outcome: str, reason: str = "") -> None:
        """Note the outcome of one phase; a failure or skip in any phase decides the case."""
        case = self.cases.setdefault(nodeid, Case(nodeid))
        if outcome == "passed" and case.outcome != "passed":
            return
        case.outcome, case.reason = outcome, reason
        case.capability = capability_of(reason) if outcome == "skipped" else None

    def totals(self) -> dict[str, int]:
        """How many cases ended in each outcome."""
        counts: dict[str, int] = {}
        for case in self.cases.values():
            counts[case.outcome] = counts.get(case.outcome, 0) + 1
        return dict(sorted(counts.items()))

    def as_json(self) -> str:
        """The report as JSON: backend, capabilities, totals and cases."""
        caps = None if self.capabilities is None else dataclasses.asdict(self.capabilities)
        return json.dumps({
            "backend": self.backend, "capabilities": caps,
            "totals": self.totals(),
            "cases": [dataclasses.asdict(c) for c in self.cases.values()],
        }, indent=2, default=str) + "\n"

    def as_markdown(self) -> str:
        """The report as a Markdown page: capabilities, then a table per test class."""
        totals = ", ".join(f"{n} {outcome}" for outcome, n in self.totals().items())
        lines = [f"# Contract report: {self.backend}", ""]
        lines += [f"**{len(self.cases)} cases: {totals}.**", ""]
        if self.capabilities is not None:
            lines += ["| capability | declared |", "| --- | --- |"]
            for f in dataclasses.fields(self.capabilities):
                if f.name not in ("name", "extra"):
                    lines.append(f"| {f.name} | `{getattr(self.capabilities, f.name)!r}` |")
            lines.append("")
        groups: dict[str, list[Case]] = {}
        for case in self.cases.values():
            groups.setdefault(case.group, []).append(case)
        for group, cases in groups.items():
            lines += [f"## {group}", "", "| case | outcome |", "| --- | --- |"]
            for case in cases:
                lines.append(f"| `{case.name}` | {_outcome(case)} |")
            lines.append("")
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        """Write the report to ``path``: JSON for ``.json``, else Markdown."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.as_json() if path.suffix == ".json" else self.as_markdown(),
                        encoding="utf-8")


def _outcome(case: Case) -> str:
    if case.outcome == "skipped":
        why = f"capability `{case.capability}`" if case.capability else case.reason
        return f"skipped: {why}".replace("|", "\\|")
    return case.outcome
