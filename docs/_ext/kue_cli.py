"""The ``kue-cli`` directive: a command's ``--help``, taken from its argparse parser.

``{kue-cli} kue.cli.worker:build_parser`` renders the parser's help as a literal block, and the
help of each subcommand after it, so the reference is always what the command prints. With the
``:optional:`` flag a module that does not exist renders nothing instead of failing the build.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from docutils import nodes  # type: ignore[import-untyped]  # no types-docutils in the venv
from docutils.parsers.rst import directives  # type: ignore[import-untyped]
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__all__ = ["HELP_WIDTH", "CliDirective", "helps", "setup"]

#: Columns the help is wrapped to, whatever terminal builds the docs.
HELP_WIDTH = 90


@contextmanager
def _columns(width: int) -> Iterator[None]:
    """Pin $COLUMNS, which argparse wraps to, so the help does not depend on the terminal."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def helps(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """(command line, help text) for the parser and, in order, each of its subcommands."""
    with _columns(HELP_WIDTH):
        out = [(parser.prog, parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                seen: set[int] = set()
                for sub in action.choices.values():
                    if id(sub) not in seen:  # aliases map to the same parser
                        seen.add(id(sub))
                        out.append((sub.prog, sub.format_help()))
    return out


class CliDirective(SphinxDirective):
    """``{kue-cli} MODULE:FUNCTION``: the help of the parser FUNCTION() returns."""

    required_arguments = 1
    option_spec = {"optional": directives.flag}

    def run(self) -> list[nodes.Node]:
        """Import the module, build the parser, and render its helps."""
        module_name, _, func_name = self.arguments[0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if "optional" in self.options and exc.name == module_name:
                return []
            raise self.error(f"cannot import {module_name}: {exc}") from exc
        build: Callable[[], argparse.ArgumentParser] = getattr(module, func_name or "build_parser")
        out: list[nodes.Node] = []
        for i, (prog, text) in enumerate(helps(build())):
            if i:  # the page's own heading names the command; subcommands get a rubric
                out.append(nodes.rubric(prog, prog))
            block = nodes.literal_block(text, text, language="text")
            out.append(block)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("kue-cli", CliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
