"""Sphinx configuration of kue's documentation: MyST Markdown pages, the furo theme.

Build with ``nox -s docs`` (warnings are errors). The extensions in ``_ext/`` generate the
capabilities tables and the CLI reference from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import kue

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "kue"
author = "the kue authors"
copyright = "the kue authors"
release = version = kue.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "kue_capabilities",
    "kue_cli",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "furo"
html_title = f"kue {release}"
