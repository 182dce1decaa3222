"""One training engine: every path honours the same parameters, and the bugs
its three former copies grew (issue 21: 1, 3, 4, 5, 6, 9) stay fixed."""

import pickle

import numpy as np
import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

import sk_fibinet.estimators.inspection
from sk_fibinet import (
    FiBiNETClassifier,
    FiBiNETRegressor,
    ParquetSource,
    load_model,
    save_model,
)

pytest.importorskip("pyarrow")

# Every encoding and network parameter off its default.
NON_DEFAULT = dict(
    FAST,
    min_frequency=3,
    hash_buckets={"color": 7},
    n_bins=6,
    reduction_ratio=2,
    senet_activation="sigmoid",
    bilinear_type="each",
    shared_bilinear=True,
    dropout=0.2,
    max_cross_cells=50,
    weight_decay=1e-4,
    embedding_l2=0.1,
    early_stopping=False,
    max_epochs=2,
)


class Fail(Callback):
    """Raise in the middle of the second epoch."""

    def on_batch_end(self, net, training=None, **kwargs):
        if training and len(net.history) == 2 and len(net.history[-1, "batches"]) == 2:
            raise RuntimeError("interrupted")


def _encoder_state(encoder) -> dict:
    return {
        "mask": encoder.categorical_mask_.tolist(),
        "cardinalities": list(encoder.cardinalities_),
        "hashed": list(encoder.hash_buckets_),
        "vocabularies": [
            None if v is None else v.tolist() for v in encoder.vocabularies_
        ],
        "edges": [None if e is None else e.tolist() for e in encoder.bin_edges_],
    }


@pytest.mark.parametrize(
    "params",
    [NON_DEFAULT, dict(NON_DEFAULT, variant="fibinet++", bilinear_type="all")],
    ids=["fibinet", "fibinet++"],
)
def test_streamed_fit_builds_the_encoder_and_network_of_the_in_memory_fit(
    tmp_path, params
):
    """Bug 1: fit(ParquetSource) ignored hash_buckets; now every parameter."""
    X, y = make_mixed(n=800)
    path = tmp_path / "train.parquet"
    X.assign(target=y).to_parquet(path, row_group_size=200)
    in_memory = FiBiNETClassifier(**params).fit(X, y)
    streamed = FiBiNETClassifier(**params).fit(ParquetSource(path, target="target"))
    assert streamed.encoder_.hash_buckets_[0] == 7
    assert _encoder_state(streamed.encoder_) == _encoder_state(in_memory.encoder_)
    module_params = {
        k: v for k, v in in_memory.net_.get_params().items() if k.startswith("module__")
    }
    assert {
        k: v for k, v in streamed.net_.get_params().items() if k.startswith("module__")
    } == module_params
    shapes = {k: v.shape for k, v in in_memory.net_.module_.state_dict().items()}
    assert {k: v.shape for k, v in streamed.net_.module_.state_dict().items()} == shapes
    assert [g.get("row_l2") for g in streamed.net_.optimizer_.param_groups] == [
        g.get("row_l2") for g in in_memory.net_.optimizer_.param_groups
    ]


def test_load_model_then_partial_fit_keeps_embedding_l2(tmp_path):
    """Bug 3: a loaded model's optimizer lost the row penalty."""
    X, y = make_mixed(n=400)
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2)).fit(X, y)
    save_model(clf, tmp_path / "m.fibinet")
    loaded = load_model(tmp_path / "m.fibinet")
    loaded.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert [g.get("row_l2") for g in loaded.net_.optimizer_.param_groups] == [
        g.get("row_l2") for g in clf.net_.optimizer_.param_groups
    ]
    assert any(g.get("row_l2") for g in loaded.net_.optimizer_.param_groups)


def test_a_refused_refit_leaves_the_fitted_model_as_it_was():
    """Bug 4: classes_ was overwritten by a refit refused for its one class."""
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2)).fit(X, y)
    before = clf.predict_proba(X)
    with pytest.raises(ValueError, match="only 1 class"):
        clf.fit(X, [7] * len(X))
    assert_array_equal(clf.classes_, [0, 1])
    assert_array_equal(clf.predict_proba(X), before)
    assert set(clf.predict(X)) <= {0, 1}


def test_an_interrupted_fit_leaves_no_half_built_model():
    """Bug 4: an interrupted fit passed check_is_fitted, then predict failed."""
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**dict(FAST, callbacks=[("fail", Fail())]))
    with pytest.raises(RuntimeError, match="interrupted"):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError):
        clf.predict_proba(X)
    # on a fitted model, the interrupted refit keeps the earlier fit
    fitted = FiBiNETClassifier(**dict(FAST, max_epochs=2)).fit(X, y)
    before = fitted.predict_proba(X)
    fitted.set_params(callbacks=[("fail", Fail())], max_epochs=3, random_state=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        fitted.fit(X, y)
    assert_array_equal(fitted.predict_proba(X), before)


def test_partial_fit_cost_does_not_grow_with_the_number_of_calls(monkeypatch):
    """Bug 5: the importance rows were sized by the cumulative n_iter_."""
    X, y = make_mixed(n=5000)
    sizes = []
    original = sk_fibinet.estimators.inspection.importance_rows

    def spy(*args):
        sizes.append(original(*args))
        return sizes[-1]

    monkeypatch.setattr(sk_fibinet.estimators.inspection, "importance_rows", spy)
    clf = FiBiNETClassifier(**dict(FAST, batch_size=1024))
    for _ in range(6):
        clf.partial_fit(X, y, classes=[0, 1])
    assert len(set(sizes)) == 1, sizes


def test_a_pickle_holds_no_training_rows_and_continues_exactly():
    """Bug 6: skorch's predefined_split kept the held-out rows in the model."""
    X, y = make_mixed(n=1500)
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=3, early_stopping=True)).fit(X, y)
    assert clf.net_.train_split is None
    for _, cb in clf.net_.callbacks_:
        assert getattr(cb, "best_model_weights_", None) is None
    copy = pickle.loads(pickle.dumps(clf))
    n_valid = int(np.ceil(clf.validation_fraction * len(X)))
    tensors = [
        v
        for v in vars(copy.net_).values()
        if isinstance(v, torch.Tensor) and v.shape[:1] == (n_valid,)
    ]
    assert tensors == []
    clf.partial_fit(X[:500], y[:500])
    copy.partial_fit(X[:500], y[:500])
    assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_set_params_between_partial_fit_calls_is_applied_or_refused():
    """Bug 9: batch_size and learning_rate were silently ignored."""
    X, y = make_mixed(n=640)
    clf = FiBiNETClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    lrs = [g["lr"] for g in clf.net_.optimizer_.param_groups]
    clf.set_params(learning_rate=FAST["learning_rate"] / 2, batch_size=320)
    clf.partial_fit(X, y)
    assert len(clf.net_.history[-1, "batches"]) == 2  # 640 rows / 320
    assert [g["lr"] for g in clf.net_.optimizer_.param_groups] == pytest.approx(
        [lr / 2 for lr in lrs]
    )
    clf.set_params(precision="bfloat16")  # the first layer's matmuls from now on
    clf.partial_fit(X, y)
    assert clf.net_.module_.first_layer_dtype == torch.bfloat16
    clf.set_params(precision="float32")
    clf.partial_fit(X, y)
    assert clf.net_.module_.first_layer_dtype is None
    clf.set_params(embedding_dim=16)
    weights = {k: v.clone() for k, v in clf.net_.module_.state_dict().items()}
    with pytest.raises(ValueError, match="embedding_dim=16"):
        clf.partial_fit(X, y)
    for k, v in clf.net_.module_.state_dict().items():  # nothing trained
        assert torch.equal(v, weights[k])


def test_regressor_partial_fit_after_fit_uses_the_engine_state():
    X, y = make_mixed(n=400)
    target = X["amount"].to_numpy() * 2 + y
    reg = FiBiNETRegressor(**dict(FAST, max_epochs=2)).fit(X, target)
    n_iter = reg.n_iter_
    reg.partial_fit(X, target)
    assert reg.n_iter_ == n_iter + 1
    check_is_fitted(reg)
