"""Sphinx configuration for the sk_fibinet documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The example scripts in ``examples/`` are rendered by sphinx-gallery but not run,
unless ``SK_FIBINET_DOCS_RUN_EXAMPLES=True`` is set (or ``-D plot_gallery=1`` is
passed to sphinx), because training the models takes minutes on a CPU.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
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


# -- Docstring fix-ups -----------------------------------------------------------
# These work around details of the package's docstrings in the docs build
# instead of in the package. Each hook edits the reST lines autodoc hands over,
# before numpydoc parses them, and becomes a no-op once the docstring is fixed.

# numpydoc also parses class docstrings for their signatures and warns about the
# "Shape" section there (a Python warning, not a Sphinx one); the section itself
# is handled below.
warnings.filterwarnings(
    "ignore", message=r"Unknown section Shape", category=UserWarning
)

# The torch modules in sk_fibinet._network document their tensor shapes in a
# "Shape" section. numpydoc does not know that section and would drop it, so it
# is moved into "Notes" (created when missing) before numpydoc parses it.
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*)$")


def _section_bounds(lines: list[str], title: str) -> tuple[int, int] | None:
    """Start (the title line) and end (exclusive) of a numpydoc section."""
    for i in range(len(lines) - 1):
        if lines[i].strip() == title and set(lines[i + 1].strip()) == {"-"}:
            end = len(lines)
            for j in range(i + 2, len(lines) - 1):
                if _SECTION.match(lines[j].strip()) and set(lines[j + 1].strip()) == {
                    "-"
                }:
                    end = j
                    break
            return i, end
    return None


def _move_shape_into_notes(app, what, name, obj, options, lines):
    bounds = _section_bounds(lines, "Shape")
    if bounds is None:
        return
    start, end = bounds
    body = lines[start + 2 : end]
    while body and not body[-1].strip():
        body.pop()
    del lines[start:end]
    shape = ["**Shape**", ""] + body + [""]
    notes = _section_bounds(lines, "Notes")
    if notes is None:
        examples = _section_bounds(lines, "Examples")
        at = examples[0] if examples else len(lines)
        lines[at:at] = ["Notes", "-----"] + shape
    else:
        at = notes[0] + 2
        lines[at:at] = shape


# A "name : type" line of a numpydoc parameter list. In the type, a word ending
# in "_" (``(n_features_in_,)``) would be read by reST as a hyperlink reference.
_PARAM_LINE = re.compile(r"^(\s*\**\w+\s:\s)(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*?)_(?=[\s,.)\]]|$)")


def _escape_type_underscores(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        match = _PARAM_LINE.match(line)
        if match and "`" not in match.group(2):
            lines[i] = match.group(1) + _TRAILING_UNDERSCORE.sub(
                r"\1\\_", match.group(2)
            )


# A two-column simple table whose cells overflow their "=" borders (reST reads
# text in the column margin as a malformed table): re-lay it out.
_BORDER = re.compile(r"^(\s*)=+( +)=+\s*$")


def _relayout_two_column_tables(app, what, name, obj, options, lines):
    i = 0
    while i < len(lines):
        top = _BORDER.match(lines[i])
        if not top:
            i += 1
            continue
        indent = top.group(1)
        end = next(
            (j for j in range(i + 1, len(lines)) if _BORDER.match(lines[j])), None
        )
        if end is None:
            return
        rows = [re.split(r"\s{2,}", r.strip(), maxsplit=1) for r in lines[i + 1 : end]]
        if not all(len(r) == 2 for r in rows):
            i = end + 1
            continue
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        border = f"{indent}{'=' * w0}  {'=' * w1}"
        lines[i] = lines[end] = border
        for k, (left, right) in enumerate(rows, start=i + 1):
            lines[k] = f"{indent}{left.ljust(w0)}  {right.rjust(w1)}"
        i = end + 1


# -- Optional API entries ---------------------------------------------------------
# Functions that are being added to the package. They are documented in the API
# reference as soon as they can be imported; until then the pages mention them
# by name only.
_OPTIONAL_API = {
    "Saving and loading": [
        ("sk_fibinet", "save_model"),
        ("sk_fibinet", "load_model"),
    ],
    "Plotting": [
        ("sk_fibinet.plotting", "plot_field_importances"),
        ("sk_fibinet.plotting", "plot_interactions"),
        ("sk_fibinet.plotting", "plot_learning_curves"),
    ],
}
_OPTIONAL_MARKER = ".. optional-api-entries"


def _importable(module: str, attr: str) -> bool:
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


def _optional_api_rst() -> str:
    out = []
    for title, entries in _OPTIONAL_API.items():
        found = [f"{m}.{a}" for m, a in entries if _importable(m, a)]
        if not found:
            continue
        out += [title, "-" * len(title), ""]
        out += [".. autosummary::", ""] + [f"   {f}" for f in found] + [""]
        for f in found:
            out += [f".. autofunction:: {f}", ""]
    return "\n".join(out)


def _insert_optional_api(app, docname, source):
    if docname == "api" and _OPTIONAL_MARKER in source[0]:
        source[0] = source[0].replace(_OPTIONAL_MARKER, _optional_api_rst())


def setup(app):
    # numpydoc connects to autodoc-process-docstring at the default priority
    # (500); run first so that numpydoc sees the rewritten sections.
    for hook in (
        _move_shape_into_notes,
        _escape_type_underscores,
        _relayout_two_column_tables,
    ):
        app.connect("autodoc-process-docstring", hook, priority=100)
    app.connect("source-read", _insert_optional_api)
