import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.compose import TransformedTargetRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sk_fibinet import FiBiNETRegressor, load_model, save_model


def make_regression_frame(n=600, seed=0):
    """Text, category, bool and numeric columns; y depends on four of them."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "grey"], size=n)
    size = rng.choice(["S", "M", "L"], size=n)
    flag = rng.random(n) < 0.5
    amount = rng.normal(size=n)
    X = pd.DataFrame(
        {
            "color": pd.Series(color, dtype="str"),
            "size": pd.Categorical(size),
            "flag": flag,
            "amount": amount,
            "noise": rng.normal(size=n),
        }
    )
    y = (
        2.0 * (color == "red")
        - 1.0 * (size == "S")
        + 1.5 * amount
        + 0.8 * flag
        + 0.3 * rng.normal(size=n)
    )
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_regression_frame(600, seed=0), make_regression_frame(300, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), _ = data
    return FiBiNETRegressor(**FAST).fit(X, y)


def test_learns_the_signal(fitted, data):
    _, (X_test, y_test) = data
    pred = fitted.predict(X_test)
    assert pred.shape == (len(X_test),) and pred.dtype == np.float64
    assert fitted.score(X_test, y_test) > 0.5
    assert fitted.n_iter_ == FAST["max_epochs"]
    assert_allclose(fitted.feature_importances_.sum(), 1.0)


def test_target_is_standardised_and_restored(fitted, data):
    (_, y), _ = data
    assert_allclose(fitted.target_offset_, y.mean())
    assert_allclose(fitted.target_scale_, y.std())
    (X, _), _ = data
    # without early stopping the intercept is centred on the training rows: the
    # mean residual is 0 up to float32 rounding (measured 0.6-1.9e-8, seeds 0-2)
    assert abs(fitted.predict(X).mean() - y.mean()) < 1e-6


def test_predictions_scale_with_y(fitted, data):
    (X, y), (X_test, _) = data
    scaled = FiBiNETRegressor(**FAST).fit(X, 1000.0 * y + 7.0)
    assert_allclose(
        scaled.predict(X_test), 1000.0 * fitted.predict(X_test) + 7.0, rtol=1e-3
    )


def test_same_seed_gives_identical_predictions(fitted, data):
    (X, y), (X_test, _) = data
    again = FiBiNETRegressor(**FAST).fit(X, y)
    assert_array_equal(again.predict(X_test), fitted.predict(X_test))
    other = FiBiNETRegressor(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(other.predict(X_test), fitted.predict(X_test))


def test_zero_sample_weight_ignores_rows(data):
    (X, y), (X_test, y_test) = data
    y = y.copy()
    y[:150] = 1e3  # outliers that only the weights can remove
    weight = np.ones_like(y)
    weight[:150] = 0.0
    weighted = FiBiNETRegressor(**FAST).fit(X, y, sample_weight=weight)
    unweighted = FiBiNETRegressor(**FAST).fit(X, y)
    assert weighted.score(X_test, y_test) > 0.5
    assert unweighted.score(X_test, y_test) < 0.0


def test_absolute_error_learns(data):
    (X, y), (X_test, y_test) = data
    reg = FiBiNETRegressor(**FAST, loss="absolute_error").fit(X, y)
    assert r2_score(y_test, reg.predict(X_test)) > 0.5


def test_poisson_predicts_a_positive_mean(data):
    (X, _), (X_test, _) = data
    rate = np.exp(0.8 * (X["color"] == "red") + 0.5 * X["amount"].clip(-2, 2))
    y = np.random.default_rng(0).poisson(rate)
    reg = FiBiNETRegressor(**FAST, loss="poisson").fit(X, y)
    pred = reg.predict(X_test)
    assert (pred > 0).all()
    assert reg.target_offset_ == 0.0
    assert_allclose(reg.target_scale_, y.mean())
    # centred: predicted total = observed total (measured rtol 2.0-2.6e-8)
    assert_allclose(reg.predict(X).mean(), y.mean(), rtol=1e-6)
    red = (X_test["color"] == "red").to_numpy()
    assert pred[red].mean() > 1.5 * pred[~red].mean()


@pytest.mark.parametrize(
    "y_values", [[-1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], ids=["negative", "zero-sum"]
)
def test_poisson_refuses_negative_or_all_zero_y(y_values):
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]})
    with pytest.raises(ValueError, match=r"loss='poisson'.*y"):
        FiBiNETRegressor(**FAST, loss="poisson").fit(X, y_values)


def test_unknown_loss_is_refused(data):
    (X, y), _ = data
    with pytest.raises(ValueError, match="'loss' parameter"):
        FiBiNETRegressor(loss="huber").fit(X, y)


def test_early_stopping_watches_the_validation_loss():
    X, y = make_regression_frame(1200, seed=2)
    reg = FiBiNETRegressor(**{**FAST, "max_epochs": 30}, n_iter_no_change=2)
    reg.fit(X, y)
    history = reg.net_.history
    assert reg.n_iter_ == len(history) < 30
    assert "valid_loss" in history[-1] and "valid_auc" not in history[-1]


def test_interaction_strengths(fitted, data):
    _, (X_test, _) = data
    strengths = fitted.interaction_strengths(X_test)
    assert strengths.shape == (5, 5)
    assert_allclose(strengths.to_numpy(), strengths.to_numpy().T)
    assert list(strengths.index) == list(X_test.columns)


def test_save_and_load_give_identical_predictions(fitted, data, tmp_path):
    _, (X_test, _) = data
    path = tmp_path / "reg.pt"
    save_model(fitted, path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "sk_fibinet.FiBiNETRegressor"
    assert "classes" not in payload and "temperature" not in payload
    loaded = load_model(path)
    assert type(loaded) is FiBiNETRegressor
    assert loaded.get_params() == fitted.get_params()
    assert loaded.target_offset_ == fitted.target_offset_
    assert loaded.target_scale_ == fitted.target_scale_
    assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))


def test_poisson_save_and_load(data, tmp_path):
    (X, _), (X_test, _) = data
    y = np.random.default_rng(1).poisson(2.0, size=len(X))
    reg = FiBiNETRegressor(**{**FAST, "max_epochs": 2}, loss="poisson").fit(X, y)
    save_model(reg, tmp_path / "poisson.pt")
    loaded = load_model(tmp_path / "poisson.pt")
    assert loaded.loss == "poisson"
    assert_array_equal(loaded.predict(X_test), reg.predict(X_test))


def test_pipeline_transformed_target_and_grid_search(data):
    (X, y), (X_test, _) = data
    model = TransformedTargetRegressor(
        regressor=make_pipeline(FiBiNETRegressor(**{**FAST, "max_epochs": 3})),
        func=np.log1p,
        inverse_func=np.expm1,
    )
    search = GridSearchCV(
        model,
        {"regressor__fibinetregressor__embedding_dim": [2, 4]},
        cv=2,
        n_jobs=2,
    )
    search.fit(X, y - y.min())
    assert search.best_estimator_.predict(X_test).shape == (len(X_test),)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "poisson"])
def test_outputs_are_centred_on_the_training_targets(data, loss):
    # without early stopping the intercept is centred on the training rows:
    # the equation a converged intercept solves holds after a short fit too
    (X, y), _ = data
    y = np.exp(0.3 * y) if loss == "poisson" else y
    weight = np.random.default_rng(2).uniform(0.5, 2.0, size=len(y))
    reg = FiBiNETRegressor(**{**FAST, "max_epochs": 2}, loss=loss)
    residual = y - reg.fit(X, y, sample_weight=weight).predict(X)
    if loss == "squared_error":
        assert abs(np.average(residual, weights=weight)) < 1e-4 * y.std()
    elif loss == "absolute_error":  # a weighted median: half the weight each side
        below = weight[residual < -1e-6].sum() / weight.sum()
        above = weight[residual > 1e-6].sum() / weight.sum()
        assert below <= 0.5 and above <= 0.5
    else:
        predicted = np.average(reg.predict(X), weights=weight)
        assert_allclose(predicted, np.average(y, weights=weight), rtol=1e-5)
