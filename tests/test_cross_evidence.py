"""cross_pairs="auto": crossed pairs chosen by held-out evidence on large tables."""

import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from numpy.testing import assert_allclose, assert_array_equal

import sk_fibinet.preprocessing.cross_evidence as cross_evidence
from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model, save_model
from sk_fibinet.preprocessing.cross_evidence import pair_gains, select_pairs

ALL_PAIRS = [(i, j) for i in range(5) for j in range(i + 1, 5)]


def make_xor(n=8000, seed=0):
    """Five 6-valued columns; the label depends on the parity of a + b only, an
    interaction neither column shows alone."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, size=(n, 5))
    logit = 2.0 * ((codes[:, 0] + codes[:, 1]) % 2) - 1.0  # (n,)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({c: pd.Categorical(codes[:, k]) for k, c in enumerate("abcde")})
    return X, y, codes, logit


def test_gain_finds_the_interacting_pair_and_not_the_noise_pairs():
    _, y, codes, _ = make_xor()
    half = np.random.default_rng(1).random(len(y)) < 0.5
    gain = pair_gains(
        codes, y, None, [6] * 5, ALL_PAIRS, first_half=half, classification=True
    )
    assert gain[0] > 300  # (a, b): the log loss summed over 4,000 rows falls
    assert (gain[1:] < 5).all()  # the other nine pairs: about 0 or below
    assert select_pairs(
        codes, y, None, [6] * 5, 2000, first_half=half, classification=True
    )[0] == (0, 1)


def test_gain_of_a_regression_target_and_of_weights():
    _, _, codes, logit = make_xor()
    rng = np.random.default_rng(2)
    y = 100.0 + 30.0 * logit + rng.normal(0, 30, len(logit))  # any scale
    half = rng.random(len(y)) < 0.5
    gain = pair_gains(
        codes, y, None, [6] * 5, ALL_PAIRS, first_half=half, classification=False
    )
    assert gain[0] > 1000 and (gain[1:] < 0.01 * gain[0]).all()
    # integer weights count rows: weight 2 equals the row repeated
    w = rng.integers(1, 3, len(y)).astype(float)
    reps = np.repeat(np.arange(len(y)), w.astype(int))
    weighted = pair_gains(
        codes, y, w, [6] * 5, ALL_PAIRS[:3], first_half=half, classification=False
    )
    # the standardisation is weighted too, so the repeated table gives the same
    repeated = pair_gains(
        codes[reps],
        y[reps],
        None,
        [6] * 5,
        ALL_PAIRS[:3],
        first_half=half[reps],
        classification=False,
    )
    assert_allclose(weighted, repeated, rtol=1e-9)


def test_gain_does_not_depend_on_the_order_of_the_rows():
    _, y, codes, _ = make_xor()
    half = np.random.default_rng(3).random(len(y)) < 0.5
    order = np.random.default_rng(4).permutation(len(y))
    kw = dict(classification=True)
    a = pair_gains(codes, y, None, [6] * 5, ALL_PAIRS, first_half=half, **kw)
    b = pair_gains(
        codes[order], y[order], None, [6] * 5, ALL_PAIRS, first_half=half[order], **kw
    )
    assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_auto_crosses_only_the_pairs_with_evidence(monkeypatch, early_stopping):
    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    X, y, _, _ = make_xor()
    kw = dict(FAST, max_epochs=2, early_stopping=early_stopping)
    auto = FiBiNETClassifier(**kw).fit(X, y)
    every = FiBiNETClassifier(**kw, cross_pairs="all").fit(X, y)
    assert auto.net_.module_.cross.pairs == [(0, 1)]
    assert every.net_.module_.cross.pairs == ALL_PAIRS


def test_below_min_rows_auto_crosses_every_pair_as_all():
    X, y, _, _ = make_xor(n=2000)  # < MIN_ROWS (50,000)
    kw = dict(FAST, max_epochs=2)
    auto = FiBiNETClassifier(**kw).fit(X, y)
    every = FiBiNETClassifier(**kw, cross_pairs="all").fit(X, y)
    assert auto.net_.module__cross_pairs is None
    assert auto.net_.module_.cross.pairs == ALL_PAIRS
    assert_array_equal(auto.predict_proba(X), every.predict_proba(X))


def test_regressor_multiclass_and_partial_fit_choose_pairs(monkeypatch):
    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    X, y, _, logit = make_xor()
    kw = dict(FAST, max_epochs=2)
    rng = np.random.default_rng(5)
    reg = FiBiNETRegressor(**kw).fit(X, 5.0 * logit + rng.normal(0, 1, len(y)))
    assert reg.net_.module_.cross.pairs == [(0, 1)]
    three = y + (X["c"].cat.codes.to_numpy() == 1)  # classes 0, 1, 2
    multi = FiBiNETClassifier(**kw).fit(X, three)
    assert (0, 1) in multi.net_.module_.cross.pairs
    assert len(multi.net_.module_.cross.pairs) < len(ALL_PAIRS)
    chunk = FiBiNETClassifier(**kw).partial_fit(X, y, classes=[0, 1])
    assert chunk.net_.module_.cross.pairs == [(0, 1)]
    chunk.partial_fit(X, y)  # a later chunk keeps the net's pairs
    assert chunk.net_.module_.cross.pairs == [(0, 1)]


def test_saved_model_keeps_its_chosen_pairs(monkeypatch, tmp_path):
    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    X, y, _, _ = make_xor()
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2)).fit(X, y)
    save_model(clf, tmp_path / "model.skf")
    back = load_model(tmp_path / "model.skf")
    assert back.net_.module_.cross.pairs == [(0, 1)]
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    back.partial_fit(X, y)  # the rebuilt net continues with the same table
    assert back.net_.module_.cross.pairs == [(0, 1)]


@pytest.mark.parametrize("target_stats", [None, "all"])
def test_streamed_fit_chooses_the_pairs_of_the_in_memory_fit(
    monkeypatch, tmp_path, target_stats
):
    """The bin sample holds every row here: the stream asks the same rows, cut
    into the same halves (a hash of each row's position), for evidence."""
    pytest.importorskip("pyarrow")
    from sk_fibinet import ParquetSource

    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    X, y, _, _ = make_xor()
    X["user"] = pd.Categorical(np.random.default_rng(6).integers(0, 3000, len(y)))
    path = tmp_path / "train.parquet"
    X.assign(target=y).to_parquet(path, row_group_size=1000)
    kw = dict(FAST, max_epochs=1, early_stopping=False, target_stats=target_stats)
    in_memory = FiBiNETClassifier(**kw).fit(X, y)
    streamed = FiBiNETClassifier(**kw).fit(ParquetSource(path, target="target"))
    pairs = in_memory.net_.module__cross_pairs
    assert pairs is not None and [0, 1] in pairs
    assert streamed.net_.module__cross_pairs == pairs
