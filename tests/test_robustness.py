"""Bad input gets a clear error naming what is wrong, or a correct answer."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal
from skorch.callbacks import Callback

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor


@pytest.fixture(scope="module")
def fitted():
    X, y = make_mixed()
    return FiBiNETClassifier(**FAST).fit(X, y), X, y


def test_constructing_never_raises_and_fit_validates_parameters(mixed):
    X, y = mixed
    bad = {
        "embedding_dim": 0,
        "learning_rate": -1.0,
        "bilinear_type": "pairs",
        "dropout": 1.5,
        "batch_size": 0,
        "validation_fraction": 1.0,
        "class_weight": "auto",
        "early_stopping": "sometimes",
        "min_frequency": 0,
        "hidden_layer_sizes": "wide",
    }
    for name, value in bad.items():
        clf = FiBiNETClassifier(**{name: value})  # never raises
        with pytest.raises((ValueError, TypeError), match=name):
            clf.fit(X, y)


def test_hidden_layer_sizes_int_and_bad_entries(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "hidden_layer_sizes": 8}).fit(X, y)
    assert clf.net_.module_.dnn[0].out_features == 8
    with pytest.raises(TypeError, match="hidden_layer_sizes"):
        FiBiNETClassifier(**{**FAST, "hidden_layer_sizes": (8, "x")}).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        FiBiNETClassifier(**{**FAST, "hidden_layer_sizes": (8, 0)}).fit(X, y)


def test_empty_input(mixed):
    X, y = mixed
    with pytest.raises(ValueError, match="0 sample"):
        FiBiNETClassifier(**FAST).fit(X.iloc[:0], y[:0])
    with pytest.raises(ValueError, match="0 sample"):
        FiBiNETClassifier(**FAST).fit(np.empty((0, 3)), [])
    with pytest.raises(ValueError, match="0 feature"):
        FiBiNETClassifier(**FAST).fit(X[[]], y)


def test_mismatched_lengths(mixed):
    X, y = mixed
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        FiBiNETClassifier(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="sample_weight"):
        FiBiNETClassifier(**FAST).fit(X, y, sample_weight=np.ones(3))


def test_bad_targets(mixed):
    X, y = mixed
    y_nan = y.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        FiBiNETClassifier(**FAST).fit(X, y_nan)
    y_none = y.astype(object)
    y_none[0] = None
    with pytest.raises(ValueError, match="y contains missing"):
        FiBiNETClassifier(**FAST).fit(X, y_none)
    y_mixed = y.astype(object)
    y_mixed[y == 1] = "yes"
    y_mixed[y == 0] = 0
    with pytest.raises(TypeError, match="y mixes label types"):
        FiBiNETClassifier(**FAST).fit(X, y_mixed)
    with pytest.raises(ValueError, match="at least 2 classes"):
        FiBiNETClassifier(**FAST).fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        FiBiNETClassifier(**FAST).fit(X, np.linspace(0, 1, len(X)))


def test_inf_and_huge_values_are_handled(mixed):
    X, y = mixed
    X = X.copy()
    X.loc[::7, "amount"] = np.inf
    X.loc[::11, "amount"] = -np.inf
    X.loc[::13, "noise"] = 1e30
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    # an infinite value falls into the outermost bin, like a huge one
    big = X.iloc[[0, 0]].assign(amount=[np.inf, 1e300])
    assert_array_equal(clf.predict_proba(big)[0], clf.predict_proba(big)[1])


def test_all_nan_columns(mixed):
    X, y = mixed
    X = X.assign(empty_num=np.nan, empty_cat=pd.Series([None] * len(X), dtype="object"))
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_numeric_column_arriving_as_text(fitted):
    clf, X, _ = fitted
    bad = X.assign(amount=X["amount"].astype(str))
    with pytest.raises(ValueError, match="'amount'"):
        clf.predict(bad)


def test_categorical_column_arriving_as_numbers(fitted):
    clf, X, _ = fitted
    bad = X.assign(color=np.arange(len(X)))
    with pytest.raises(ValueError, match="'color'"):
        clf.predict(bad)


def test_duplicate_and_non_string_column_names(mixed):
    X, y = mixed
    dup = pd.concat([X, X[["amount"]]], axis=1)
    with pytest.raises(ValueError, match="duplicate column names: \\['amount'\\]"):
        FiBiNETClassifier(**FAST).fit(dup, y)
    mixed_names = X.rename(columns={"noise": 7})
    with pytest.raises(TypeError, match="string names"):
        FiBiNETClassifier(**FAST).fit(mixed_names, y)
    int_names = X[["amount", "noise"]].set_axis([0, 1], axis=1)
    clf = FiBiNETClassifier(**FAST).fit(int_names, y)
    assert not hasattr(clf, "feature_names_in_")


def test_sparse_1d_and_3d_inputs(mixed):
    X, y = mixed
    dense = X[["amount", "noise"]].to_numpy()
    with pytest.raises(TypeError, match="[Ss]parse"):
        FiBiNETClassifier(**FAST).fit(sp.csr_matrix(dense), y)
    with pytest.raises(ValueError, match="2D array"):
        FiBiNETClassifier(**FAST).fit(dense[:, 0], y)
    with pytest.raises(ValueError, match="dim"):
        FiBiNETClassifier(**FAST).fit(dense[:, :, None], y)


def test_zero_rows_at_predict(fitted):
    clf, X, _ = fitted
    assert clf.predict_proba(X.iloc[:0]).shape == (0, 2)
    assert clf.predict(X.iloc[:0]).shape == (0,)
    arr = FiBiNETClassifier(**FAST).fit(X[["amount"]].to_numpy(), fitted[2])
    assert arr.predict_proba(np.empty((0, 1))).shape == (0, 2)


def test_ids_above_2_to_the_24(mixed):
    X, y = mixed
    base = 2**40
    ids = np.where(y == 1, base + 1, base + 2)  # differ only beyond float32 precision
    frame = pd.DataFrame({"id": pd.Series(ids).astype("category")})
    assert np.float32(base + 1) == np.float32(base + 2)
    clf = FiBiNETClassifier(**FAST).fit(frame, y)
    assert clf.score(frame, y) == 1.0


def test_divergence_stops_with_advice(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "learning_rate": 1e30})
    with pytest.raises(FloatingPointError, match="Lower learning_rate.*class_weight"):
        clf.fit(X, y)
    reg = FiBiNETRegressor(**{**FAST, "learning_rate": 1e30})
    with pytest.raises(FloatingPointError, match="Lower learning_rate") as caught:
        reg.fit(X, np.where(y == 1, 1e3, -1e3))
    assert "class_weight" not in str(caught.value)  # the regressor has none


class _InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_keyboard_interrupt_leaves_a_usable_model(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 10}, callbacks=[_InterruptAt(2)])
    clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert np.isfinite(clf.predict_proba(X)).all()


def test_predict_from_several_threads(fitted):
    clf, X, _ = fitted
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X), range(8)))
    for result in results:
        assert_array_equal(result, expected)


def test_predict_in_chunks_equals_whole(fitted):
    clf, X, _ = fitted
    whole = clf.predict_proba(X)
    chunks = [clf.predict_proba(X.iloc[i : i + 97]) for i in range(0, len(X), 97)]
    np.testing.assert_allclose(np.vstack(chunks), whole, rtol=1e-6, atol=1e-7)
    assert not any(isinstance(v, pd.DataFrame) for v in vars(clf).values())


def test_cuda_device_without_gpu_is_a_clear_error(mixed):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = mixed
    with pytest.raises(ValueError, match="CUDA is not available"):
        FiBiNETClassifier(**FAST, device="cuda:0").fit(X, y)
    with pytest.raises(ValueError, match="device"):
        FiBiNETClassifier(**FAST, device="gpu7").fit(X, y)
