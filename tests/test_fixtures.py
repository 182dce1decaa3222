"""Model files written by an earlier version still load and predict as then.

``tests/data/*_v4.pt`` were written by ``tests/data/make_fixtures.py`` with
format version 4 and are committed; their expected outputs beside them.
"""

import sys
from pathlib import Path

import numpy as np
from numpy.testing import assert_allclose

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))
from make_fixtures import frame  # noqa: E402


def test_committed_model_files_predict_what_they_did_when_saved():
    rows, _ = frame(n=60, seed=2)
    expected = np.load(DATA / "expected_v4.npz")
    clf = load_model(DATA / "classifier_v4.pt")
    reg = load_model(DATA / "regressor_v4.pt")
    assert isinstance(clf, FiBiNETClassifier) and isinstance(reg, FiBiNETRegressor)
    assert_allclose(clf.predict_proba(rows), expected["proba"], atol=1e-6)
    assert_allclose(reg.predict(rows), expected["prediction"], atol=1e-5)
