"""Sphinx configuration for the sk_fibinet documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The example scripts in ``examples/`` are rendered by sphinx-gallery but not run,
unless ``SK_FIBINET_DOCS_RUN_EXAMPLES=True`` is set (or ``-D plot_gallery=1`` is
passed to sphinx), because training the models takes minutes on a CPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the checkout, also when it is not installed in editable mode.
sys.path.insert(0, str(ROOT))

import sk_fibinet  # noqa: E402

# -- Project -------------------------------------------------------------------
project = "sk_fibinet"
author = "sk_fibinet developers"
copyright = "sk_fibinet developers, BSD-3-Clause"  # noqa: A001
release = sk_fibinet.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    # Included by performance_results.md; not a page of its own.
    "performance.md",
    "requirements.txt",
    "**/.ipynb_checkpoints",
]
templates_path: list[str] = []
pygments_style = "sphinx"
default_role = "literal"

# -- autodoc / autosummary / numpydoc ------------------------------------------
autosummary_generate = False  # tables only; the objects are documented in api.rst
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_member_order = "bysource"

numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
numpydoc_attributes_as_param_list = True

# -- MyST (Markdown) -----------------------------------------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- sphinx-gallery ------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Every script in examples/ is an example (none is named plot_*.py).
    "filename_pattern": r"\.py$",
    # Running the examples trains models for minutes: off unless asked for.
    "plot_gallery": os.environ.get("SK_FIBINET_DOCS_RUN_EXAMPLES", "False"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "write_computation_times": False,
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_fibinet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
