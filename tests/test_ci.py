"""CI runs exactly the test command the README shows."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_commands = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_commands[-1] in readme
    sessions = "images lint typecheck tests contract contract_local contract_cluster"
    assert f"nox -s {sessions}" in ci_commands[-1]
