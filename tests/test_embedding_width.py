"""embedding_dim="auto": the embedding width narrows on wide tables."""

import numpy as np
import pandas as pd
import pytest

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor
from sk_fibinet.estimators.base import AUTO_DNN_INPUTS, auto_embedding_dim


def _frame(n_columns, n_rows=120, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"x{j}": rng.normal(size=n_rows) for j in range(n_columns)})
    y = (X["x0"] + rng.normal(size=n_rows) > 0).astype(int).to_numpy()
    return X, y


def _width(model):
    return model.net_.module_.embedding.embedding.embedding_dim


@pytest.mark.parametrize("n_fields", [1, 2, 10, 39, 40, 41, 50, 120])
@pytest.mark.parametrize("widest", [8, 32])
def test_auto_width_keeps_the_dnn_input_within_its_budget(n_fields, widest):
    d = auto_embedding_dim(n_fields, widest)
    n_pairs = n_fields * (n_fields - 1) // 2
    assert 4 <= d <= widest
    if d > 4:  # the budget holds unless the floor overrides it
        assert 2 * n_pairs * d <= AUTO_DNN_INPUTS
    if d < widest:  # and d is the widest that fits
        assert 2 * n_pairs * (d + 1) > AUTO_DNN_INPUTS


def test_classifier_narrows_on_a_wide_table_only():
    X, y = _frame(50)
    wide = FiBiNETClassifier(max_epochs=1, random_state=0).fit(X, y)
    assert _width(wide) == 6
    narrow = FiBiNETClassifier(max_epochs=1, random_state=0).fit(X.iloc[:, :43], y)
    assert _width(narrow) == 8
    given = FiBiNETClassifier(embedding_dim=8, max_epochs=1, random_state=0)
    assert _width(given.fit(X, y)) == 8
    assert wide.get_params()["embedding_dim"] == "auto"


def test_regressor_keeps_32_on_narrow_tables():
    X, y = _frame(10)
    model = FiBiNETRegressor(max_epochs=1, random_state=0).fit(X, y.astype(float))
    assert _width(model) == 32
    X, y = _frame(30)
    model = FiBiNETRegressor(max_epochs=1, random_state=0).fit(X, y.astype(float))
    assert _width(model) == auto_embedding_dim(30, 32) == 17


def test_fibinetpp_gets_the_full_width():
    X, y = _frame(50)
    model = FiBiNETClassifier(variant="fibinet++", max_epochs=1, random_state=0)
    model.fit(X, y)
    assert model.net_.module_.embedding.embedding.embedding_dim == 8


def test_auto_width_survives_save_and_load(tmp_path):
    from sk_fibinet import load_model, save_model

    X, y = _frame(45)
    model = FiBiNETClassifier(max_epochs=1, random_state=0).fit(X, y)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert _width(loaded) == _width(model) == auto_embedding_dim(45, 8)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_a_bad_width_is_refused_by_name():
    X, y = _frame(3)
    with pytest.raises(ValueError, match="embedding_dim"):
        FiBiNETClassifier(embedding_dim="wide").fit(X, y)
