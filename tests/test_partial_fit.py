"""partial_fit: one epoch per chunk, continuing the network and the optimizer."""

import pickle
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.metrics import r2_score, roc_auc_score
from skorch.callbacks import Callback

from sk_fibinet import (
    FiBiNETClassifier,
    FiBiNETRegressor,
    UnknownCategoryWarning,
    load_model,
    save_model,
)
from sk_fibinet.preprocessing.categories import N_RESERVED, OTHER_CODE


def _chunks(X, y, size):
    for start in range(0, len(X), size):
        yield X[start : start + size], y[start : start + size]


def _dense_steps(clf) -> int:
    """Optimizer steps taken so far, read from the dense AdamW's state."""
    state = clf.net_.optimizer_._dense.state
    return int(next(iter(state.values()))["step"])


def _weights(clf) -> dict:
    return {k: v.clone() for k, v in clf.net_.module_.state_dict().items()}


def test_second_call_continues_the_same_network_and_optimizer():
    X, y = make_mixed(n=500)
    clf = FiBiNETClassifier(**FAST).partial_fit(X[:300], y[:300], classes=[0, 1])
    module, optimizer = clf.net_.module_, clf.net_.optimizer_
    first = _weights(clf)
    assert clf.n_iter_ == 1 and _dense_steps(clf) == 5  # ceil(300 / 64)
    clf.partial_fit(X[300:], y[300:])
    assert clf.net_.module_ is module and clf.net_.optimizer_ is optimizer
    assert clf.n_iter_ == 2 and len(clf.net_.history) == 2
    assert _dense_steps(clf) == 5 + 4  # moments and step count carried on
    assert not torch.equal(first["dnn.0.weight"], clf.net_.module_.dnn[0].weight)
    # a fresh estimator on the second chunk alone is another model
    alone = FiBiNETClassifier(**FAST).partial_fit(X[300:], y[300:], classes=[0, 1])
    assert not np.allclose(alone.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
def test_chunks_learn_the_signal(variant):
    X, y = make_mixed(n=2000)
    clf = FiBiNETClassifier(**FAST, variant=variant)
    for X_chunk, y_chunk in _chunks(X, y, 250):
        clf.partial_fit(X_chunk, y_chunk, classes=np.array([0, 1]))
    X_test, y_test = make_mixed(n=500, seed=1)
    assert clf.n_iter_ == 8
    assert roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1]) > 0.85
    assert clf.temperature_ == 1.0
    assert clf.feature_importances_.shape == (5,)
    assert np.isclose(clf.feature_importances_.sum(), 1.0)


def test_first_call_errors_name_what_is_missing():
    X, y = make_mixed(n=100)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        FiBiNETClassifier(**FAST).partial_fit(X, y)
    with pytest.raises(ValueError, match="classes must hold at least 2 labels"):
        FiBiNETClassifier(**FAST).partial_fit(X, np.zeros(100), classes=[0])
    with pytest.raises(ValueError, match=r"y holds labels \[2\] that are not in"):
        FiBiNETClassifier(**FAST).partial_fit(X, y + (y == 1), classes=[0, 1])
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported"):
        FiBiNETClassifier(**FAST, class_weight="balanced").partial_fit(
            X, y, classes=[0, 1]
        )
    with pytest.raises(ValueError, match="0 sample"):
        FiBiNETClassifier(**FAST).partial_fit(X.head(0), y[:0], classes=[0, 1])
    with pytest.raises(ValueError, match="partial_fit does not train data-parallel"):
        FiBiNETClassifier(**FAST, distributed=True).partial_fit(X, y, classes=[0, 1])
    clf = FiBiNETClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1])  # a failed first call left nothing behind
    assert_array_equal(clf.classes_, [0, 1])


def test_later_calls_check_classes_and_columns():
    X, y = make_mixed(n=100)
    clf = FiBiNETClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y, classes=[1, 0])  # the same labels: fine
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] is not classes_"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="missing columns \\['noise'\\]"):
        clf.partial_fit(X.drop(columns="noise"), y)
    before = _weights(clf)
    clf.partial_fit(X.head(0), y[:0])  # an empty partition changes nothing
    assert clf.n_iter_ == 2
    for key, value in _weights(clf).items():
        assert torch.equal(value, before[key])


def _three_labels(X, y):
    """ "high" for red size S (an interaction of two categorical columns whose
    values all appear without it), else "low" / "mid"."""
    high = ((X["color"] == "red") & (X["size"] == "S")).to_numpy()
    return np.where(high, "high", np.array(["low", "mid"])[y])


def test_string_labels_and_a_first_chunk_without_every_class():
    X, y = make_mixed(n=600)
    labels = _three_labels(X, y)
    first = labels[:200] != "high"  # the first chunk lacks "high"
    clf = FiBiNETClassifier(**FAST)
    clf.partial_fit(X[:200][first], labels[:200][first], classes=["low", "mid", "high"])
    assert_array_equal(clf.classes_, ["high", "low", "mid"])
    assert clf.net_.module_.dnn[-1].out_features == 3
    for _ in range(6):  # later chunks bring "high": the net learns it
        clf.partial_fit(X[200:], labels[200:])
    X_test, y_test = make_mixed(n=400, seed=1)
    high = _three_labels(X_test, y_test) == "high"  # (400,), 40 rows
    proba = clf.predict_proba(X_test)  # (400, 3), "high" first
    assert proba.shape == (400, 3)
    predicted = clf.predict(X_test)
    assert (predicted[high] == "high").mean() > 0.95
    assert (predicted[~high] == "high").mean() < 0.05
    assert proba[high, 0].mean() > 0.7 and proba[~high, 0].mean() < 0.1


def test_same_random_state_same_model_and_global_rng_untouched():
    X, y = make_mixed(n=400)
    rng_state = torch.get_rng_state()

    def run(seed):
        clf = FiBiNETClassifier(**{**FAST, "random_state": seed})
        for X_chunk, y_chunk in _chunks(X, y, 200):
            clf.partial_fit(X_chunk, y_chunk, classes=[0, 1])
        return clf.predict_proba(X)

    assert_array_equal(run(0), run(0))
    assert not np.allclose(run(0), run(1))
    assert torch.equal(torch.get_rng_state(), rng_state)


class _RecordBatches(Callback):
    def on_epoch_begin(self, net, **kwargs):
        self.epochs_ = [*getattr(self, "epochs_", []), []]

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.epochs_[-1].append(batch[0].clone())


def test_every_call_draws_a_new_batch_order():
    X, y = make_mixed(n=300)
    rec = _RecordBatches()
    clf = FiBiNETClassifier(**FAST, callbacks=[rec])
    clf.partial_fit(X, y, classes=[0, 1]).partial_fit(X, y)
    first, second = (torch.cat(batches) for batches in rec.epochs_)  # (n, F)
    assert not torch.equal(first[:64], second[:64])  # the same chunk reshuffled
    assert torch.equal(
        torch.sort(first.sum(1) * 1000 + first[:, 0]).values,
        torch.sort(second.sum(1) * 1000 + second[:, 0]).values,
    )


def test_pickle_after_partial_fit_continues_identically():
    X, y = make_mixed(n=600)
    clf = FiBiNETClassifier(**FAST, hash_buckets=32)
    clf.partial_fit(X[:300], y[:300], classes=[0, 1])
    copy = pickle.loads(pickle.dumps(clf))
    assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X[300:], y[300:])
    copy.partial_fit(X[300:], y[300:])  # optimizer moments and seeds came along
    assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert _dense_steps(copy) == _dense_steps(clf) == 10
    fresh = clone(clf)
    assert not hasattr(fresh, "net_") and fresh.get_params() == clf.get_params()


def test_new_category_in_a_later_chunk_gets_its_own_trained_bucket():
    X, y = make_mixed(n=600)
    later = X[300:].copy()
    purple = np.arange(300) % 3 == 0
    later["color"] = pd.Series(
        np.where(purple, "purple", later["color"].to_numpy()),
        dtype="str",
        index=later.index,
    )
    later_y = np.where(purple, 1, y[300:])
    clf = FiBiNETClassifier(**FAST, hash_buckets=64)
    clf.partial_fit(X[:300], y[:300], classes=[0, 1])
    code = int(clf.encoder_.transform(later[purple].head(1))[0, 0])
    seen = set(clf.encoder_.transform(X[:300])[:, 0].tolist())
    assert code >= N_RESERVED and code not in seen  # a bucket of its own
    offset = int(clf.net_.module_.embedding.offsets[0])
    never = next(c for c in range(2, 66) if c not in seen and c != code)
    table = clf.net_.module_.embedding.embedding.weight
    before = table.detach().clone()
    linear_before = clf.net_.module_.linear.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownCategoryWarning)
        clf.partial_fit(later, later_y)
    table = clf.net_.module_.embedding.embedding.weight.detach()
    assert not torch.equal(table[offset + code], before[offset + code])
    assert not torch.equal(
        clf.net_.module_.linear.weight[offset + code], linear_before[offset + code]
    )
    assert torch.equal(table[offset + never], before[offset + never])

    # without hashing "purple" is lost in the "other" code, and a warning says so
    exact = FiBiNETClassifier(**FAST).partial_fit(X[:300], y[:300], classes=[0, 1])
    assert exact.encoder_.transform(later[purple].head(1))[0, 0] == OTHER_CODE
    with pytest.warns(UnknownCategoryWarning, match=r"'color': 100\b"):
        exact.partial_fit(later, later_y)


def test_fit_after_partial_fit_starts_over():
    X, y = make_mixed(n=300)
    labels = np.array(["a", "b", "c"])[X["size"].cat.codes.to_numpy()]
    clf = FiBiNETClassifier(**FAST).partial_fit(X, labels, classes=["a", "b", "c"])
    module = clf.net_.module_
    clf.fit(X, y)
    assert_array_equal(clf.classes_, [0, 1])
    assert clf.net_.module_ is not module
    assert clf.n_iter_ == len(clf.net_.history) == FAST["max_epochs"]


def test_partial_fit_after_fit_continues_without_early_stopping():
    X, y = make_mixed(n=600)
    clf = FiBiNETClassifier(**FAST, early_stopping=True).fit(X, y)
    encoder, n_epochs = clf.encoder_, clf.n_iter_
    assert clf.temperature_ != 1.0
    before = _weights(clf)
    clf.partial_fit(X[:300], y[:300])
    assert clf.encoder_ is encoder and clf.n_iter_ == n_epochs + 1
    assert "valid_loss" not in clf.net_.history[-1]  # nothing held out
    assert clf.temperature_ == 1.0
    assert not torch.equal(before["dnn.0.weight"], clf.net_.module_.dnn[0].weight)
    clf.partial_fit(X[300:], y[300:])  # and again: no early stopping to restore
    assert clf.n_iter_ == n_epochs + 2


def test_sample_weight_reaches_the_loss():
    X, y = make_mixed(n=600)
    weight = np.where(y == 1, 0.0, 1.0)  # positives count for nothing
    plain = FiBiNETClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    weighted = FiBiNETClassifier(**FAST).partial_fit(
        X, y, classes=[0, 1], sample_weight=weight
    )
    assert weighted.predict_proba(X)[:, 1].mean() < plain.predict_proba(X)[:, 1].mean()
    with pytest.raises(ValueError, match="at least one non-zero"):
        weighted.partial_fit(X, y, sample_weight=np.zeros(600))


def test_regressor_fixes_the_target_scaling_on_the_first_chunk():
    X, _ = make_mixed(n=1200)
    target = 100.0 + 20.0 * X["amount"].to_numpy() + 10.0 * X["flag"].to_numpy()
    reg = FiBiNETRegressor(**FAST)
    reg.partial_fit(X[:300], target[:300])
    offset, scale = reg.target_offset_, reg.target_scale_
    for X_chunk, y_chunk in _chunks(X[300:], target[300:], 300):
        reg.partial_fit(X_chunk, y_chunk)
    assert (reg.target_offset_, reg.target_scale_) == (offset, scale)
    assert reg.n_iter_ == 4
    X_test, _ = make_mixed(n=300, seed=1)
    truth = 100.0 + 20.0 * X_test["amount"] + 10.0 * X_test["flag"]
    assert r2_score(truth, reg.predict(X_test)) > 0.7
    poisson = FiBiNETRegressor(**FAST, loss="poisson").partial_fit(
        X[:300], target[:300]
    )
    with pytest.raises(ValueError, match="non-negative y"):
        poisson.partial_fit(X[:10], -target[:10])


def test_a_loaded_model_continues_with_fresh_optimizer_moments(tmp_path):
    X, y = make_mixed(n=400)
    clf = FiBiNETClassifier(**FAST, hash_buckets=16)
    clf.partial_fit(X[:200], y[:200], classes=[0, 1])
    save_model(clf, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.partial_fit(X[200:], y[200:])
    assert loaded.n_iter_ == 2 and _dense_steps(loaded) == 4  # 200 rows / 64


def test_partial_fit_needs_no_dask(monkeypatch):
    X, y = make_mixed(n=200)
    for name in ("dask", "dask.dataframe", "distributed", "dask_ml"):
        monkeypatch.setitem(sys.modules, name, None)  # importing them fails
    clf = FiBiNETClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2


def test_explanations_after_partial_fit_add_up():
    X, y = make_mixed(n=900)
    clf = FiBiNETClassifier(**FAST)
    for Xc, yc in _chunks(X, y, 300):
        clf.partial_fit(Xc, yc, classes=np.unique(y))
    assert clf.feature_importances_.shape == (X.shape[1],)
    assert np.isclose(clf.feature_importances_.sum(), 1.0)
    contributions = clf.explain(X.iloc[:50])
    np.testing.assert_allclose(
        contributions.sum(axis=1) + clf.explain_base_value_,
        clf.decision_function(X.iloc[:50]),
        rtol=1e-4,
        atol=1e-5,
    )
