import numpy as np
import pandas as pd
import pytest

from sk_fibinet.datasets import load_adult


def test_load_adult_frame():
    bunch = load_adult()
    assert bunch.data.shape == (32561, 14)
    assert bunch.frame.shape == (32561, 15)
    assert set(bunch.target.unique()) == {"<=50K", ">50K"}
    assert abs((bunch.target == ">50K").mean() - 0.2408) < 1e-3
    assert isinstance(bunch.data["workclass"].dtype, pd.CategoricalDtype)
    assert bunch.data["age"].dtype.kind == "i"
    assert bunch.data["workclass"].isna().sum() > 0  # '?' became missing
    assert bunch.feature_names == list(bunch.data.columns)


def test_load_adult_test_and_all():
    X_test, y_test = load_adult(subset="test", return_X_y=True)
    assert X_test.shape == (16281, 14)
    assert set(y_test.unique()) == {"<=50K", ">50K"}  # trailing '.' stripped
    X_all, _ = load_adult(subset="all", return_X_y=True)
    assert X_all.shape == (48842, 14)


def test_load_adult_as_arrays():
    X, y = load_adult(return_X_y=True, as_frame=False)
    assert isinstance(X, np.ndarray) and X.shape == (32561, 14)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}


def test_load_adult_bad_subset():
    with pytest.raises(ValueError, match="subset"):
        load_adult(subset="validation")
