"""Render the quality tables from ``quality.py --out`` files: one source of truth.

Merges one or more JSON files written by ``benchmarks/quality.py --out`` (a
later file's row replaces an earlier one for the same dataset and model),
prints the full table and FiBiNET's standing against the best baseline per
set, and with ``--update`` rewrites the block between ``<!-- quality:start -->``
and ``<!-- quality:end -->`` in each given Markdown file::

    python benchmarks/quality_report.py benchmarks/results/quality.json \\
        --update README.md docs/performance.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import _summary, format_table  # noqa: E402

START, END = "<!-- quality:start -->", "<!-- quality:end -->"
ORDER = [
    "FiBiNET (defaults)",
    "FiBiNET++ (variant='fibinet++')",
    "FiBiNET (target_stats=None)",
    "FiBiNET (target_stats='all')",
    "FiBiNET++ (target_stats='all')",
    "HistGradientBoosting",
    "LightGBM",
    "CatBoost",
    "LogReg one-hot",
    "FuxiCTR FiBiNET (BARS Frappe config)",
]


def load(paths) -> tuple[list, dict]:
    rows, meta = {}, {}
    for path in paths:
        payload = json.loads(Path(path).read_text())
        if isinstance(payload, dict):
            meta.update(payload.get("meta", {}))
            payload = payload["rows"]
        for row in payload:
            rows[(row["dataset"], row["model"])] = row
    datasets = list(dict.fromkeys(d for d, _ in rows))
    rank = {m: i for i, m in enumerate(ORDER)}
    ordered = sorted(
        rows.values(),
        key=lambda r: (datasets.index(r["dataset"]), rank.get(r["model"], 99)),
    )
    return ordered, meta


def render(rows, meta) -> str:
    as_tuples = [
        (
            r["dataset"],
            r["model"],
            np.array([r["auc"][0], r["log_loss"][0], r["fit_s"]]),
            np.array([r["auc"][1], r["log_loss"][1], 0.0]),
        )
        for r in rows
    ]
    text = format_table(as_tuples)
    summary = _summary(as_tuples)  # the defaults' rows only ("FiBiNET (...)")
    if summary:
        text += "\n\nFiBiNET's defaults beside the best of HistGradientBoosting, "
        text += "LightGBM and one-hot logistic regression, and CatBoost:\n\n"
        text += summary
    if meta.get("host"):
        text += f"\n\n({meta['host']})"
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--update", nargs="*", type=Path, default=[])
    args = p.parse_args(argv)
    text = render(*load(args.results))
    print(text)
    for path in args.update:
        source = path.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
        if not pattern.search(source):
            raise SystemExit(f"{path} has no {START} ... {END} block")
        path.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", source))


if __name__ == "__main__":
    main()
