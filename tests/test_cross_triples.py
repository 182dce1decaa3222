"""cross_triples="auto": crossed triples of fields as derived fields."""

import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import FAST as _FAST
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score

import sk_fibinet.preprocessing.cross_evidence as cross_evidence
import sk_fibinet.preprocessing.triple_evidence as triple_evidence
from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model, save_model
from sk_fibinet.preprocessing.triple_evidence import (
    candidate_triples,
    select_triples,
    triple_gains,
)

FAST = dict(_FAST, cross_triples="auto")
TRIPLES = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]


def make_parity(n=6000, seed=0):
    """Four 4-valued columns and a numeric one; the label depends on the parity
    of a + b + c, which no column and no pair of columns shows."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, 4))
    x = rng.normal(size=n)
    logit = 3.0 * ((codes[:, :3].sum(1)) % 2) - 1.5 + 0.5 * x  # (n,)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({c: codes[:, k].astype(str) for k, c in enumerate("abcd")})
    X["x"] = x
    return X, y, codes, logit


@pytest.fixture
def few_rows(monkeypatch):
    """The tests' tables ask for evidence from 1,000 rows (20,000 otherwise)."""
    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)


def test_gain_finds_the_parity_triple_and_not_the_others():
    _, y, codes, logit = make_parity(n=20000)
    half = np.random.default_rng(1).random(len(y)) < 0.5
    gain = triple_gains(
        codes, y, None, [4] * 4, TRIPLES, first_half=half, classification=True
    )
    assert gain[0] > 500 and (gain[1:] < 5).all()
    reg = triple_gains(
        codes, 10 * logit, None, [4] * 4, TRIPLES, first_half=half, classification=False
    )
    assert reg[0] > 1000 and (reg[1:] < 0.01 * reg[0]).all()
    chosen = select_triples(
        codes, y, None, [4] * 4, first_half=half, classification=True
    )
    assert chosen == [(0, 1, 2)]


def test_backfitted_pairs_leave_a_triple_of_pair_effects_nothing():
    """A label made of two pairs' effects (a x b and b x c) holds no triple
    interaction: with the pairs fitted jointly the triple (a, b, c) gains
    nothing; without the pairs it seems to (what backfitting is for)."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, size=(20000, 3))
    logit = 1.5 * ((codes[:, 0] + codes[:, 1]) % 2) + 1.5 * (
        (codes[:, 1] + codes[:, 2]) % 2
    )
    y = (rng.random(len(logit)) < 1 / (1 + np.exp(2.0 - logit))).astype(float)
    half = rng.random(len(y)) < 0.5
    kw = dict(first_half=half, classification=True)
    jointly = triple_gains(codes, y, None, [3] * 3, [(0, 1, 2)], **kw)[0]
    no_pairs = triple_gains(codes, y, None, [3] * 3, [(0, 1, 2)], rounds=0, **kw)[0]
    assert no_pairs > 500
    assert jointly < 10


def test_candidates_and_their_ranking_by_pair_evidence(monkeypatch):
    assert candidate_triples([3, 3, 3, 100], n_rows=432) == [(0, 1, 2)]
    assert candidate_triples([3, 3, 3, 100], n_rows=431) == []  # < 16 rows a cell
    # with one candidate asked, the one whose pairs have evidence is asked
    _, y, codes, _ = make_parity(n=20000)
    half = np.random.default_rng(1).random(len(y)) < 0.5
    monkeypatch.setattr(triple_evidence, "MAX_CANDIDATES", 1)
    strong = {(0, 1): 0.0, (0, 2): 0.0, (1, 2): 0.0, (0, 3): 50.0, (1, 3): 50.0}
    chosen = select_triples(
        codes, y, None, [4] * 4, first_half=half, classification=True, pair_gain=strong
    )
    assert chosen == []  # (0, 1, 3) was asked, and has no evidence


def test_auto_adds_the_triple_and_it_helps(few_rows):
    X, y, _, _ = make_parity()
    kw = dict(FAST, max_epochs=2)
    auto = FiBiNETClassifier(**kw).fit(X[:5000], y[:5000])
    none = FiBiNETClassifier(**dict(kw, cross_triples=None)).fit(X[:5000], y[:5000])
    assert auto.encoder_.crosses_ == [(0, 1, 2)]
    assert none.encoder_.crosses_ == []
    assert auto.encoder_.field_names() == ["a", "b", "c", "d", "x", "a*b*c"]
    assert auto.net_.module_.embedding.cardinalities[-1] == 6**3
    held = slice(5000, None)
    a = roc_auc_score(y[held], auto.predict_proba(X[held])[:, 1])
    b = roc_auc_score(y[held], none.predict_proba(X[held])[:, 1])
    assert a > b + 0.05, (a, b)
    assert auto.field_weights(X[:5]).columns.tolist()[-1] == "a*b*c"


def test_below_min_rows_nothing_is_derived():
    X, y, _, _ = make_parity(n=3000)  # < MIN_ROWS
    kw = dict(FAST, max_epochs=2)
    auto = FiBiNETClassifier(**kw).fit(X, y)
    none = FiBiNETClassifier(**dict(kw, cross_triples=None)).fit(X, y)
    assert auto.encoder_.crosses_ == []
    assert_array_equal(auto.predict_proba(X), none.predict_proba(X))


def test_explanations_report_a_derived_field_under_its_columns(few_rows):
    X, y, _, _ = make_parity()
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=3)).fit(X, y)
    assert clf.encoder_.crosses_ == [(0, 1, 2)]
    assert clf.feature_importances_.shape == (5,)
    assert clf.feature_importances_[:3].min() > clf.feature_importances_[3]
    rows = X[:20]
    phi = clf.explain(rows)
    assert phi.columns.tolist() == ["a", "b", "c", "d", "x"]
    p = clf.predict_proba(rows)[:, 1]
    assert_allclose(
        phi.sum(axis=1) + clf.explain_base_value_, np.log(p / (1 - p)), atol=1e-4
    )


def test_saved_pickled_and_partially_fitted_models_keep_their_triples(
    few_rows, tmp_path
):
    X, y, _, _ = make_parity()
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2)).fit(X, y)
    save_model(clf, tmp_path / "model.skf")
    back = load_model(tmp_path / "model.skf")
    assert back.encoder_.crosses_ == [(0, 1, 2)]
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    back.partial_fit(X[:500], y[:500])  # continues with the derived field
    assert back.encoder_.crosses_ == [(0, 1, 2)]
    chunked = FiBiNETClassifier(**FAST).partial_fit(X, y, classes=[0, 1])
    assert chunked.encoder_.crosses_ == [(0, 1, 2)]  # from the first chunk
    chunked.partial_fit(X[:1000], y[:1000])
    assert chunked.encoder_.crosses_ == [(0, 1, 2)]
    assert chunked.predict_proba(X).shape == (len(X), 2)


def test_regressor_and_multiclass_derive_the_triple(few_rows):
    X, _, _, logit = make_parity()
    rng = np.random.default_rng(4)
    kw = dict(FAST, max_epochs=1)
    reg = FiBiNETRegressor(**kw).fit(X, 5.0 * logit + rng.normal(0, 1, len(X)))
    assert reg.encoder_.crosses_ == [(0, 1, 2)]
    three = (logit > 0).astype(int) + (X["d"].to_numpy() == "1")
    multi = FiBiNETClassifier(**kw).fit(X, three)
    assert (0, 1, 2) in multi.encoder_.crosses_
    plus = FiBiNETClassifier(**kw, variant="fibinet++").fit(X, (logit > 0))
    assert plus.encoder_.crosses_ == []  # measured with FiBiNET only


@pytest.mark.parametrize("early_stopping", [False, True])
def test_streamed_fit_derives_the_triple_of_the_in_memory_fit(
    few_rows, tmp_path, early_stopping
):
    pytest.importorskip("pyarrow")
    from sk_fibinet import ParquetSource

    X, y, _, _ = make_parity()
    path = tmp_path / "train.parquet"
    X.assign(target=y).to_parquet(path, row_group_size=1000)
    kw = dict(FAST, max_epochs=1, early_stopping=early_stopping)
    in_memory = FiBiNETClassifier(**kw).fit(X, y)
    streamed = FiBiNETClassifier(**kw).fit(ParquetSource(path, target="target"))
    assert in_memory.encoder_.crosses_ == [(0, 1, 2)]
    if early_stopping:  # the held-out rows were encoded with the derived field
        assert "valid_loss" in streamed.net_.history[-1]
    assert streamed.encoder_.crosses_ == in_memory.encoder_.crosses_
    assert streamed.predict_proba(X).shape == (len(X), 2)
    a = roc_auc_score(y, streamed.predict_proba(X)[:, 1])
    assert a > 0.75


def test_a_few_outliers_do_not_bury_a_regression_triple(monkeypatch):
    """A long-tailed target (1 % of rows 40 units late): the squared errors of
    the outliers would decide the test; clipped at CLIP_STD they do not."""
    _, _, codes, logit = make_parity(n=20000)
    rng = np.random.default_rng(7)
    y = 0.1 * logit + rng.normal(0, 1, len(logit))
    late = rng.random(len(y)) < 0.01
    y[late] += 40.0
    kw = dict(first_half=rng.random(len(y)) < 0.5, classification=False)
    assert select_triples(codes, y, None, [4] * 4, **kw) == [(0, 1, 2)]
    monkeypatch.setattr(triple_evidence, "CLIP_STD", np.inf)
    gain, std = triple_gains(
        codes, y, None, [4] * 4, [(0, 1, 2)], return_std=True, **kw
    )
    assert gain[0] < triple_evidence.MIN_Z * std[0]
