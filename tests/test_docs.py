"""Every ```python block in docs/ runs: each page's blocks in order, as one program.

A page runs in a fresh working directory with no KUE_* variables set, so the default SQLite
file lands there. A ``# prints: TEXT`` comment in a block is a promise: TEXT must be in what
that block printed. Blocks that need a server are ``{code-block} python`` with a caption that
says so; there may be only a few.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
#: The example plugin's source, importable by the plugin guide's examples without installing.
EXAMPLE_PLUGIN = ROOT / "examples" / "kue-filequeue"
RUN_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SHOWN_ONLY = re.compile(r"^```\{code-block\} python\n((?::\w+:.*\n)*)", re.M)
PRINTS = re.compile(r"#\s*prints:\s*(.+?)\s*$", re.M)
#: The most blocks that may be shown without being run.
MAX_SHOWN_ONLY = 4

PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the block's first line, code) for each runnable block, in order."""
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in RUN_FENCE.finditer(text)]


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p.read_text())]


def test_the_docs_have_runnable_examples_on_the_main_pages() -> None:
    names = {str(p.relative_to(DOCS)) for p in PAGES_WITH_CODE}
    for page in ("getting-started.md", "concepts.md", "configuration.md", "guarantees.md",
                 "plugins.md", "backends/memory.md", "backends/sqlite.md"):
        assert page in names, f"{page} has no runnable python block"


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_python_blocks_of_a_page_run_and_print_what_they_promise(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("KUE_URL", "KUE_BACKEND", "KUE_QUEUES", "KUE_IMPORT", "KUE_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    slug = re.sub(r"\W", "_", str(page.relative_to(DOCS).with_suffix("")))
    namespace: dict[str, object] = {"__name__": f"docs_{slug}"}
    for line, code in python_blocks(page.read_text()):
        # Leading newlines make a traceback name the line of the page, not of the block.
        exec(compile("\n" * line + code, str(page), "exec"), namespace)
        out = capsys.readouterr().out
        for promised in PRINTS.findall(code):
            assert promised in out, (
                f"{page.name} line {line + 1}: the block promises to print {promised!r}, "
                f"but printed:\n{out}"
            )


def test_blocks_shown_without_running_are_few_and_say_why() -> None:
    shown = [(p, m.group(1)) for p in PAGES for m in SHOWN_ONLY.finditer(p.read_text())]
    assert len(shown) <= MAX_SHOWN_ONLY, [str(p) for p, _ in shown]
    for page, options in shown:
        assert ":caption:" in options, f"a code-block in {page} does not say why it is not run"
