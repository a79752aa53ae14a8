"""Sphinx configuration for the freelist documentation."""

from __future__ import annotations

import freelist

project = "freelist"
author = "The freelist developers"
copyright = "2026, The freelist developers"
release = freelist.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = "freelist"
html_static_path = ["_static"]
exclude_patterns = ["_build", "perf"]
