"""Run the gallery examples as scripts in smoke mode and check their figures.

Every ``examples/*.py`` runs in a subprocess with ``SK_FIBINET_EXAMPLES_SMOKE=1``
(tiny data, one or two epochs) and ``SK_FIBINET_EXAMPLES_OUT`` pointing to a
temporary folder; the test checks the exit code and the PNG files written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Figures each example must save; an example missing here fails the test.
EXPECTED_PNGS = {
    "plot_ctr_criteo_like.py": [
        "ctr_criteo_like_learning_curves.png",
        "ctr_criteo_like_calibration.png",
    ],
    "plot_big_data_parquet.py": [
        "big_data_parquet_loss.png",
        "big_data_parquet_memory.png",
    ],
    "plot_tuning_grid_search.py": ["tuning_grid_search_cv_auc.png"],
    "plot_regression.py": [
        "regression_predicted_vs_true.png",
        "regression_learning_curves_interactions.png",
    ],
    "plot_interpretability.py": [
        "interpretability_learning_curves.png",
        "interpretability_field_importances.png",
        "interpretability_interactions_adult.png",
        "interpretability_contributions.png",
        "interpretability_waterfall.png",
        "interpretability_interactions_synthetic.png",
    ],
}
# No smoke mode: it trains on the full Adult data with default parameters, too
# slow for every test run. Run it with ``python examples/quickstart.py``.
SKIPPED = {"quickstart.py": "no smoke mode: trains on the full Adult data"}

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_covered():
    assert SCRIPTS, f"no examples found in {EXAMPLES}"
    uncovered = set(SCRIPTS) - set(EXPECTED_PNGS) - set(SKIPPED)
    assert not uncovered, f"add the expected figures of {sorted(uncovered)}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path):
    if script in SKIPPED:
        pytest.skip(SKIPPED[script])
    out = tmp_path / "out"
    env = dict(
        os.environ,
        SK_FIBINET_EXAMPLES_SMOKE="1",
        SK_FIBINET_EXAMPLES_OUT=str(out),
        MPLBACKEND="Agg",
    )
    env.pop("SK_FIBINET_CRITEO", None)  # the synthetic data, always
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"{script} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n"
        f"--- stderr ---\n{result.stderr[-3000:]}"
    )
    for name in EXPECTED_PNGS.get(script, []):
        path = out / name
        assert path.is_file(), f"{script} did not write {name}"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG file"
        assert len(data) > 2000, f"{name} is only {len(data)} bytes"
    # Nothing lands in the working directory besides the output folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
