"""Explanations: decision_function, field references, ablation importances and
Shapley contributions (explain)."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, softmax
from scipy.stats import spearmanr
from sklearn.base import clone

import sk_fibinet.training.explain as explain_module
from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model, save_model
from sk_fibinet.datasets import make_signal_and_noise
from sk_fibinet.nn.embedding import code_counts
from sk_fibinet.nn.fibinet import FiBiNET
from sk_fibinet.nn.fibinetpp import FiBiNetPP
from sk_fibinet.training.explain import Replacer, coalitions

QUICK = {**FAST, "max_epochs": 2}


def random_frame(n, n_cat, n_num, seed=0):
    rng = np.random.default_rng(seed)
    cols = {
        f"c{k}": pd.Series(rng.choice(list("abcdef"), n), dtype="str")
        for k in range(n_cat)
    }
    cols.update({f"n{k}": rng.normal(size=n) for k in range(n_num)})
    return pd.DataFrame(cols)


def assert_adds_up(contributions, base, output):
    total = contributions.sum(axis=1).to_numpy() + base
    assert_allclose(total, output, rtol=1e-4, atol=1e-4 * np.abs(output).max())


# ------------------------------------------------------------------ network
def _codes(cards, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (n,), generator=g) for c in cards], 1)


NETWORKS = {
    "fibinet-crosses": lambda cards: FiBiNET(
        cardinalities=cards,
        d_embedding=4,
        d_hidden=(8,),
        max_cross_cells=60,
        n_outputs=2,
        numeric_bins=[0, 0, 30, 0],
    ),
    "fibinet-no-linear": lambda cards: FiBiNET(
        cardinalities=cards, d_embedding=4, d_hidden=(8,), linear=False
    ),
    "fibinet++": lambda cards: FiBiNetPP(
        cardinalities=cards, d_embedding=4, d_hidden=(8,), numeric_bins=[0, 0, 30, 0]
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_forward_replaced_keeps_or_replaces_fields(name):
    cards = [3, 5, 32, 7]
    torch.manual_seed(0)
    net = NETWORKS[name](cards).eval()
    for p in net.parameters():  # move every weight off its (zero) start
        torch.nn.init.normal_(p, std=0.3)
    x = _codes(cards, 64)
    refs = net.field_references(code_counts(x, cards))
    with torch.no_grad():
        none = net.forward_replaced(x, torch.zeros(4, dtype=torch.bool), refs)
        assert_allclose(none, net(x), rtol=1e-5, atol=1e-5)
        every = net.forward_replaced(x, torch.ones(4, dtype=torch.bool), refs)
        assert_allclose(every, every[:1].expand_as(every), rtol=1e-5, atol=1e-5)
        # per-row masks give what each row's mask gives on its own
        mask = torch.rand(64, 4, generator=torch.Generator().manual_seed(1)) < 0.5
        rows = net.forward_replaced(x, mask, refs)
        one_by_one = torch.cat(
            [net.forward_replaced(x[i : i + 1], mask[i], refs) for i in range(64)]
        )
        assert_allclose(rows, one_by_one, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(rows, none)


def test_references_are_frequency_weighted_means():
    cards = [3, 4]
    net = FiBiNET(cardinalities=cards, d_embedding=2, d_hidden=(4,))
    torch.nn.init.normal_(net.linear.weight)
    x = torch.tensor([[0, 1], [0, 1], [2, 3]])
    refs = net.field_references(code_counts(x, cards))
    table = net.embedding.embedding.weight.detach()
    assert_allclose(refs["embedding"][0], (2 * table[0] + table[2]) / 3, rtol=1e-6)
    assert_allclose(refs["embedding"][1], (2 * table[4] + table[6]) / 3, rtol=1e-6)
    lin = net.linear.weight.detach()
    assert_allclose(refs["linear"][1], (2 * lin[4] + lin[6]) / 3, rtol=1e-6)


def test_replacing_a_field_averages_the_first_order_and_crossed_weights():
    # with the DNN's output at 0 the network is its linear part and crosses,
    # additive in the codes: replacing field j is then the expectation over
    # field j's training codes, exactly
    cards = [3, 4, 5]
    net = FiBiNET(cardinalities=cards, d_embedding=2, d_hidden=(4,), max_cross_cells=20)
    for p in (net.linear.weight, net.cross.table.weight):
        torch.nn.init.normal_(p)
    torch.nn.init.zeros_(net.dnn[-1].weight)
    torch.nn.init.zeros_(net.dnn[-1].bias)
    net.eval()
    train = _codes(cards, 200)
    counts = code_counts(train, cards)
    refs = net.field_references(counts)
    x = _codes(cards, 10, seed=3)
    offsets = [0, 3, 7]
    with torch.no_grad():
        for j in range(3):
            p = counts[offsets[j] : offsets[j] + cards[j]]
            p = p / p.sum()  # (card_j,)
            expected = torch.zeros(10, dtype=torch.float64)
            for code in range(cards[j]):
                xc = x.clone()
                xc[:, j] = code
                expected += p[code] * net(xc)[:, 0].double()
            mask = torch.zeros(3, dtype=torch.bool)
            mask[j] = True
            got = net.forward_replaced(x, mask, refs)[:, 0]
            assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        both = torch.tensor([True, True, False])
        expected = torch.zeros(10, dtype=torch.float64)
        p0 = counts[:3] / counts[:3].sum()
        p1 = counts[3:7] / counts[3:7].sum()
        for a in range(3):
            for b in range(4):
                xc = x.clone()
                xc[:, 0], xc[:, 1] = a, b
                expected += p0[a] * p1[b] * net(xc)[:, 0].double()
        got = net.forward_replaced(x, both, refs)[:, 0]
        assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------- coalitions
def _game(kept):
    """v(S) = sum_i a_i [i in S] + b [0 in S and 2 in S]: Shapley a_i, +b/2."""
    a = np.arange(1.0, kept.shape[1] + 1)
    return kept @ a + 3.0 * (kept[:, 0] & kept[:, 2])


@pytest.mark.parametrize("n_fields", [4, 13])
def test_coalition_weights_give_shapley_values_of_a_known_game(n_fields):
    # exact (4 fields) and antithetic permutations (13): both exact for a game
    # with pairwise interactions only, as a permutation and its reverse split
    # each interaction evenly
    kept, weights = coalitions(n_fields, 8, seed=0)
    phi = _game(kept) @ weights
    expected = np.arange(1.0, n_fields + 1)
    expected[[0, 2]] += 1.5
    assert_allclose(phi, expected, atol=1e-12)
    full, empty = kept.all(axis=1), ~kept.any(axis=1)
    assert_allclose(weights.sum(axis=1)[full], 1.0)
    assert_allclose(weights.sum(axis=1)[empty], -1.0)
    assert_allclose(weights.sum(axis=1)[~full & ~empty], 0.0, atol=1e-12)


def test_sampled_contributions_approach_the_exact_ones(monkeypatch):
    X = random_frame(600, 6, 6)
    y = (X["n0"] * X["n1"] + (X["c0"] == "a") + 0.3 * X["n2"] > 0.3).astype(int)
    clf = FiBiNETClassifier(**QUICK).fit(X, y)
    rows = X.iloc[:25]
    sampled = clf.explain(rows)  # 12 fields: 64 permutations
    monkeypatch.setattr(explain_module, "EXACT_MAX_FIELDS", 12)
    exact = clf.explain(rows)  # 2^12 coalitions
    assert_adds_up(sampled, clf.explain_base_value_, clf.decision_function(rows))
    assert_adds_up(exact, clf.explain_base_value_, clf.decision_function(rows))
    error = np.abs(sampled - exact).to_numpy().mean()
    assert error < 0.1 * np.abs(exact).to_numpy().mean()
    assert_array_equal(clf.explain(rows), exact)  # repeatable with random_state


# -------------------------------------------------------- decision_function
def test_decision_function_is_the_calibrated_logit(mixed):
    X, y = mixed
    binary = FiBiNETClassifier(**QUICK, early_stopping=True).fit(X, y)
    assert binary.temperature_ != 1.0
    scores = binary.decision_function(X)
    assert scores.shape == (len(X),)
    assert_allclose(expit(scores), binary.predict_proba(X)[:, 1], rtol=1e-12)
    y3 = np.where(X["size"] == "S", "small", np.where(y == 1, "yes", "no"))
    multi = FiBiNETClassifier(**QUICK).fit(X, y3)
    scores = multi.decision_function(X)
    assert scores.shape == (len(X), 3)
    assert_allclose(softmax(scores, axis=1), multi.predict_proba(X), rtol=1e-12)
    assert_array_equal(multi.classes_[scores.argmax(axis=1)], multi.predict(X))


# --------------------------------------------------------------- additivity
@pytest.mark.parametrize(
    "params",
    [
        {"bilinear_type": "all"},
        {"bilinear_type": "each", "shared_bilinear": True},
        {"bilinear_type": "interaction"},
        {"bilinear_type": "interaction", "linear": False},
        {"bilinear_type": "each", "max_cross_cells": 0},
        {"senet_activation": "sigmoid", "early_stopping": True},
        {"variant": "fibinet++"},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_contributions_add_up_to_the_decision_function(params):
    X = random_frame(400, 3, 2, seed=1)
    y = np.random.default_rng(1).integers(0, 2, len(X))
    clf = FiBiNETClassifier(**QUICK, **params).fit(X, y)
    rows = X.iloc[:50]
    contributions = clf.explain(rows)
    assert list(contributions.columns) == list(X.columns)
    assert contributions.index.equals(rows.index)
    assert_adds_up(contributions, clf.explain_base_value_, clf.decision_function(rows))
    negative = clf.explain(rows, class_of_interest=clf.classes_[0])
    assert_allclose(negative, -contributions)


def test_multiclass_contributions_add_up_per_class():
    X = random_frame(400, 3, 2, seed=2)
    y = np.random.default_rng(2).choice(["a", "b", "c"], len(X))
    clf = FiBiNETClassifier(**QUICK).fit(X, y)
    assert clf.explain_base_value_.shape == (3,)
    scores = clf.decision_function(X.iloc[:40])
    for k, label in enumerate(clf.classes_):
        contributions = clf.explain(X.iloc[:40], class_of_interest=label)
        assert_adds_up(contributions, clf.explain_base_value_[k], scores[:, k])
    with pytest.raises(ValueError, match="class_of_interest must be one of"):
        clf.explain(X, class_of_interest=None)


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "poisson"])
@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
def test_regressor_contributions_add_up_to_the_prediction(loss, variant):
    X = random_frame(400, 3, 2, seed=3)
    y = np.random.default_rng(3).poisson(3.0, len(X)) * 10.0 + 5.0
    reg = FiBiNETRegressor(**QUICK, loss=loss, variant=variant).fit(X, y)
    rows = X.iloc[:50]
    pred = reg.predict(rows)
    target = np.log(pred) if loss == "poisson" else pred
    assert_adds_up(reg.explain(rows), reg.explain_base_value_, target)


def test_arrays_get_a_range_index_and_empty_input_works():
    X, y = make_mixed(n=300)
    X = X[["amount", "noise"]].to_numpy()
    clf = FiBiNETClassifier(**QUICK).fit(X, y)
    contributions = clf.explain(X[10:20])
    assert contributions.index.equals(pd.RangeIndex(10))
    assert list(contributions.columns) == list(clf.field_weights(X[:1]).columns)
    assert clf.explain(X[:0]).shape == (0, 2)


# ---------------------------------------------------- known effects, signal
def additive_data(n, seed):
    """A logit that is a sum of one known effect per signal column."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 6, n), rng.integers(0, 4, n)
    u, v = rng.normal(size=n), rng.uniform(-2, 2, n)
    effects = pd.DataFrame(
        {
            "cat_a": np.array([-1.5, -0.5, 0.0, 0.5, 1.0, 2.0])[a],
            "cat_b": np.array([1.0, -1.0, 0.5, -0.5])[b],
            "num_u": 1.2 * u,
            "num_v": -0.8 * v,
        }
    )
    X = pd.DataFrame(
        {
            "cat_a": pd.Series(np.array(list("abcdef"))[a], dtype="str"),
            "cat_b": pd.Series(np.array(list("wxyz"))[b], dtype="str"),
            "num_u": u,
            "num_v": v,
            "noise_c": pd.Series(rng.choice(list("pqrs"), n), dtype="str"),
            "noise_n": rng.normal(size=n),
        }
    )
    return X, effects


@pytest.mark.parametrize("estimator", ["classifier", "fibinet++", "regressor"])
def test_contributions_follow_known_additive_effects(estimator):
    # 6000 rows: at 3000 one fit's noise decides (FiBiNet++ num_v rho 0.864 with
    # random_state 0, 0.93-0.95 with 1-3); at 6000, seeds 0-3 gave 0.914-0.986
    X, effects = additive_data(6000, seed=0)
    logit = effects.sum(axis=1).to_numpy()
    rng = np.random.default_rng(0)
    if estimator == "regressor":
        model = FiBiNETRegressor(**FAST)
        y = logit + 0.5 * rng.normal(size=len(X))
    else:
        variant = "fibinet++" if estimator == "fibinet++" else "fibinet"
        model = FiBiNETClassifier(**FAST, variant=variant)
        y = (rng.random(len(X)) < expit(logit)).astype(int)
    contributions = model.fit(X, y).explain(X)
    for column in effects:
        rho = spearmanr(contributions[column], effects[column]).statistic
        assert rho >= 0.9, (column, rho)
    size = contributions.abs().mean()
    assert size[["noise_c", "noise_n"]].max() < 0.3
    assert size[["noise_c", "noise_n"]].max() < 0.4 * size[effects.columns].min()


def test_a_pure_interaction_is_shared_by_its_two_columns():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"x{i}": rng.normal(size=3000) for i in range(5)})
    y = (X["x1"] * X["x3"] + 0.3 * rng.normal(size=3000) > 0).astype(int)
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 12}).fit(X, y)
    contributions = clf.explain(X.iloc[:1000])
    size = contributions.abs().mean()
    assert 2 / 3 < size["x1"] / size["x3"] < 3 / 2
    assert min(size["x1"], size["x3"]) > 3 * size[["x0", "x2", "x4"]].max()
    assert np.corrcoef(contributions["x1"], contributions["x3"])[0, 1] > 0.8
    # the interaction strengths still rank the pair first
    strengths = clf.interaction_strengths(X)
    upper = strengths.where(np.triu(np.ones((5, 5), dtype=bool), k=1)).stack()
    assert upper.idxmax() == ("x1", "x3")


# -------------------------------------------------------------- importances
def test_importances_rank_the_signal_columns_first():
    X, y = make_signal_and_noise(5000, random_state=0)
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    importances = pd.Series(clf.feature_importances_, index=clf.feature_names_in_)
    assert (importances >= 0).all()
    assert_allclose(importances.sum(), 1.0)
    top = importances.sort_values(ascending=False).index[:6]
    assert sorted(top) == sorted(c for c in X.columns if c.startswith("sig"))
    # the SENET gate keeps its own name: its mean over the rows passed to fit
    assert_allclose(clf.senet_weights_, clf.field_weights(X).mean(), rtol=1e-5)


def test_importances_are_the_normalised_rise_in_validation_loss():
    X, y = make_mixed(n=1500)
    clf = FiBiNETClassifier(**FAST, early_stopping=True).fit(X, y)
    # recompute on the validation rows: same split as fit, same references
    from sklearn.model_selection import train_test_split

    rng = np.random.RandomState(FAST["random_state"])
    seed = int(rng.randint(np.iinfo(np.int32).max))
    _, va = train_test_split(
        np.arange(len(X)), test_size=0.1, stratify=y, random_state=seed
    )
    X_va, y_va = X.iloc[np.sort(va)], y[np.sort(va)]
    proba = clf.predict_proba(X_va)[:, 1]

    def loss(p):
        return -np.mean(y_va * np.log(p) + (1 - y_va) * np.log(1 - p))

    base = loss(proba)
    replacer = clf._replacer()
    codes = torch.from_numpy(clf.encoder_.transform(X_va))
    rise = []
    for j in range(X.shape[1]):
        mask = torch.zeros(X.shape[1], dtype=torch.bool)
        mask[j] = True
        z = replacer(codes, mask)[:, 0].numpy() / clf.temperature_
        rise.append(max(loss(expit(z)) - base, 0.0))
    rise = np.array(rise)
    assert_allclose(clf.feature_importances_, rise / rise.sum(), rtol=1e-4)
    assert clf.feature_importances_[X.columns.get_loc("amount")] == max(
        clf.feature_importances_
    )


def test_regressor_importances_find_the_signal():
    X, effects = additive_data(2000, seed=1)
    y = effects.sum(axis=1).to_numpy()
    reg = FiBiNETRegressor(**FAST).fit(X, y)
    importances = pd.Series(reg.feature_importances_, index=X.columns)
    assert_allclose(importances.sum(), 1.0)
    noise = importances[["noise_c", "noise_n"]]
    assert noise.max() < importances[effects.columns].min()


# ---------------------------------------------------------- sklearn & files
def test_clone_pickle_and_save_keep_explanations(tmp_path):
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**QUICK).fit(X, y)
    expected = clf.explain(X.iloc[:20])
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.explain(X.iloc[:20]), expected)
    assert not hasattr(clone(clf), "explain_base_value_")
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.explain_base_value_ == clf.explain_base_value_
    assert_array_equal(loaded.senet_weights_, clf.senet_weights_)
    assert_allclose(loaded.explain(X.iloc[:20]), expected, rtol=1e-6, atol=1e-7)
    reg = FiBiNETRegressor(**QUICK).fit(X.drop(columns="amount"), X["amount"])
    save_model(reg, tmp_path / "reg.pt")
    loaded = load_model(tmp_path / "reg.pt")
    assert loaded.explain_base_value_ == reg.explain_base_value_


def test_explain_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    X, _ = make_mixed(n=50)
    with pytest.raises(NotFittedError):
        FiBiNETClassifier().explain(X)
    with pytest.raises(NotFittedError):
        FiBiNETRegressor().explain(X)
    with pytest.raises(NotFittedError):
        FiBiNETClassifier().decision_function(X)


def test_replacer_base_is_the_all_replaced_output():
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**QUICK).fit(X, y)
    replacer = clf._replacer()
    assert isinstance(replacer, Replacer)
    codes = torch.from_numpy(clf.encoder_.transform(X.iloc[:5]))
    every = replacer(codes, torch.ones(X.shape[1], dtype=torch.bool))[:, 0].numpy()
    assert_allclose(every / clf.temperature_, clf.explain_base_value_, rtol=1e-6)
