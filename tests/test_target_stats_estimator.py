"""target_stats in the estimators: no leakage, every task, explanations add up."""

import numpy as np
import pandas as pd
from conftest import FAST
from numpy.testing import assert_allclose
from sklearn.metrics import roc_auc_score

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor

PARAMS = dict(FAST, max_epochs=4, batch_size=256)


def _ids(n=6000, seed=0, n_users=300):
    """A user ID whose rate carries the signal, a noise ID (each value in
    exactly two rows) and a numeric column."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n)
    rate = rng.normal(scale=1.5, size=n_users)
    noise = rng.permutation(np.repeat(np.arange(n // 2), 2))
    x = rng.normal(size=n)
    logit = rate[user] + 0.5 * x
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    X = pd.DataFrame(
        {
            "user": pd.Series([f"u{u}" for u in user], dtype="str"),
            "noise_id": pd.Series([f"n{v}" for v in noise], dtype="str"),
            "x": x,
        }
    )
    return X, y, logit


def test_statistics_of_an_id_follow_its_rate_and_of_noise_ids_gain_nothing():
    X, y, logit = _ids()
    tr, te = slice(0, 4500), slice(4500, None)
    clf = FiBiNETClassifier(**PARAMS, target_stats="all").fit(X[tr], y[tr])
    names = clf.encoder_.column_names_
    assert "user:te" in names and "noise_id:te" in names  # both pass the rule
    # prediction rows get the statistics of the training rows: the user's rate
    rate = clf.target_stats_.transform(X[te])["user:te"].to_numpy()
    assert np.corrcoef(rate, logit[te] - 0.5 * X["x"].to_numpy()[te])[0, 1] > 0.8
    # the noise IDs' statistics carry no held-out signal (out-of-fold values)
    alone = FiBiNETClassifier(**PARAMS, target_stats="all").fit(
        X[tr][["noise_id"]], y[tr]
    )
    auc = roc_auc_score(y[te], alone.predict_proba(X[te][["noise_id"]])[:, 1])
    assert abs(auc - 0.5) < 0.05, auc
    assert alone.feature_importances_.shape == (1,)


def test_explanations_fold_statistics_into_their_columns_and_add_up():
    X, y, _ = _ids(n=3000)
    clf = FiBiNETClassifier(**PARAMS, target_stats="all").fit(X, y)
    assert clf.feature_importances_.shape == (3,)
    assert_allclose(clf.feature_importances_.sum(), 1.0)
    phi = clf.explain(X[:40])
    assert list(phi.columns) == ["user", "noise_id", "x"]
    assert_allclose(
        phi.to_numpy().sum(axis=1) + clf.explain_base_value_,
        clf.decision_function(X[:40]),
        atol=1e-4,
    )


def test_multiclass_regressor_weights_and_partial_fit():
    X, y, logit = _ids(n=3000)
    y3 = np.digitize(logit, [-0.5, 0.5])
    clf = FiBiNETClassifier(**PARAMS, target_stats="all").fit(X, y3)
    assert "user:te[2]" in clf.encoder_.column_names_
    assert clf.predict_proba(X[:5]).shape == (5, 3)
    weights = np.where(y == 1, 2.0, 1.0)
    reg = FiBiNETRegressor(**PARAMS, target_stats="all").fit(
        X, logit, sample_weight=weights
    )
    assert "user:te" in reg.encoder_.column_names_
    assert np.corrcoef(reg.predict(X), logit)[0, 1] > 0.5
    # partial_fit: the first chunk's out-of-fold statistics, then ordered ones
    inc = FiBiNETClassifier(**PARAMS, target_stats="all")
    inc.partial_fit(X[:1500], y[:1500], classes=[0, 1])
    seen = inc.target_stats_.n_rows_
    inc.partial_fit(X[1500:], y[1500:])
    assert inc.target_stats_.n_rows_ == seen + 1500
    assert inc.target_stats_.rows_seen_ == 3000


def test_arrays_get_no_statistics():
    X, y, _ = _ids(n=1200)
    clf = FiBiNETClassifier(
        **PARAMS, target_stats="all", categorical_features=[0, 1]
    ).fit(X.to_numpy(), y)
    assert clf.target_stats_ is None  # DataFrame columns only
    assert clf.encoder_.column_names_ == ["0", "1", "2"]


def test_prediction_statistics_take_in_the_early_stopping_rows():
    # the held-out rows decide early stopping with statistics of the training
    # rows only; once fitted, prediction uses every row's target, as a fit
    # without early stopping does (the full-data values do not depend on folds)
    from sk_fibinet.preprocessing.target_stats import TargetStatistics

    X, y, _ = _ids(n=3000)
    clf = FiBiNETClassifier(
        **{**PARAMS, "early_stopping": True, "validation_fraction": 0.2},
        target_stats="all",
    ).fit(X, y)
    fitted = clf.target_stats_
    every_row = TargetStatistics(fitted.columns, fitted.pairs, seed=1)
    every_row.update(X, y[:, None].astype(float), positions=np.arange(len(X)))
    assert fitted.rows_seen_ == len(X)
    assert_allclose(
        fitted.transform(X).to_numpy(), every_row.transform(X).to_numpy(), atol=1e-12
    )


def test_classifier_default_adds_statistics_only_where_the_auto_rule_holds():
    from sk_fibinet.data.features import plan_statistics

    rng = np.random.default_rng(0)
    n = 60_000
    X = pd.DataFrame(
        {
            "user": pd.Series(rng.integers(0, 3_000, n).astype(str), dtype="str"),
            "city": pd.Series(rng.integers(0, 100, n).astype(str), dtype="str"),
        }
    )
    assert FiBiNETClassifier().target_stats == "auto"
    assert FiBiNETRegressor().target_stats is None
    # user: 20 rows per value (chosen); city: 600 (learnt by its embedding)
    plan = plan_statistics(FiBiNETClassifier(), X, seed=0)
    assert plan is not None and plan.columns == ["user"] and plan.pairs == []
    every = plan_statistics(FiBiNETClassifier(target_stats="all"), X, seed=0)
    assert every.columns == ["user", "city"]
    assert plan_statistics(FiBiNETClassifier(), X.iloc[:40_000], seed=0) is None


def test_classifier_default_on_a_small_table_is_the_model_without_statistics():
    X, y = _ids(n=3000)[:2]
    default = FiBiNETClassifier(**PARAMS).fit(X, y)
    off = FiBiNETClassifier(**PARAMS, target_stats=None).fit(X, y)
    assert default.target_stats_ is None
    assert_allclose(default.predict_proba(X), off.predict_proba(X), rtol=0, atol=0)


def test_auto_leaves_out_statistics_without_held_out_evidence(monkeypatch):
    """The noise ID passes every size test (each value in two rows) but its
    out-of-fold statistic predicts nothing on the other folds: "auto" drops it
    and keeps the user, whose rate is the signal; "all" keeps both."""
    from sk_fibinet.preprocessing import target_selection

    monkeypatch.setitem(target_selection.AUTO_RULE, "min_rows", 0)  # a small table
    X, y, _ = _ids(n=3000)
    auto = FiBiNETClassifier(**PARAMS).fit(X, y)
    every = FiBiNETClassifier(**PARAMS, target_stats="all").fit(X, y)
    assert every.target_stats_.columns == ["user", "noise_id"]
    assert auto.target_stats_.columns == ["user"]
    assert auto.target_stats_.feature_names_ == ["user:te"]
    assert "noise_id:te" not in auto.encoder_.column_names_
    assert auto.feature_importances_.shape == (3,)
    # only noise: no statistics at all, the model without them
    Xn = X[["noise_id", "x"]]
    noise = FiBiNETClassifier(**PARAMS).fit(Xn, y)
    off = FiBiNETClassifier(**PARAMS, target_stats=None).fit(Xn, y)
    assert noise.target_stats_ is None
    assert_allclose(noise.predict_proba(Xn), off.predict_proba(Xn), rtol=0, atol=0)


def test_auto_gate_in_partial_fit_and_after_save_and_load(monkeypatch, tmp_path):
    from sk_fibinet import load_model, save_model
    from sk_fibinet.preprocessing import target_selection

    monkeypatch.setitem(target_selection.AUTO_RULE, "min_rows", 0)
    X, y, _ = _ids(n=3000)
    inc = FiBiNETClassifier(**PARAMS)
    inc.partial_fit(X[:2000], y[:2000], classes=[0, 1])
    assert inc.target_stats_.columns == ["user"]
    save_model(inc, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.target_stats_.feature_names_ == ["user:te"]
    assert_allclose(loaded.predict_proba(X[2000:]), inc.predict_proba(X[2000:]))
    inc.partial_fit(X[2000:], y[2000:])  # later chunks keep the chosen sources
    assert inc.target_stats_.columns == ["user"]
    assert inc.target_stats_.n_rows_ == len(X)
