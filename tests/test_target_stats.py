import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import PredefinedSplit
from sklearn.preprocessing import TargetEncoder

from sk_fibinet.preprocessing.cross_fitting import assign_folds
from sk_fibinet.preprocessing.target_selection import (
    PairSketch,
    select_columns,
    selection_rule,
)
from sk_fibinet.preprocessing.target_stats import TargetStatistics


def make_ids(n=400, seed=0):
    """Two ID columns (with missing values in ``u``) and a latent rate per value."""
    rng = np.random.default_rng(seed)
    u = rng.choice([f"u{i}" for i in range(30)], size=n).astype(object)
    u[rng.random(n) < 0.05] = np.nan
    v = rng.choice([f"v{i}" for i in range(12)], size=n).astype(object)
    X = pd.DataFrame({"u": u, "v": v})
    rate = {f"u{i}": r for i, r in enumerate(rng.random(30))}
    p = np.array([rate.get(x, 0.5) for x in u])
    return X, rng, p


def te_input(X):
    """The frame TargetEncoder sees: the columns and the pair as one string."""
    # (missing, "v2") is a pair value of its own, as in TargetStatistics.
    pair = X["u"].fillna("<NA>").str.cat(X["v"], sep="|")
    return pd.DataFrame({"u": X["u"], "v": X["v"], "uv": pair.astype(object)})


@pytest.mark.parametrize("smooth", ["auto", 3.0])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "continuous"])
def test_matches_target_encoder_without_weights(kind, smooth):
    X, rng, p = make_ids()
    n = len(X)
    if kind == "binary":
        y = (rng.random(n) < p).astype(int)
        target = y.astype(float)
    elif kind == "multiclass":
        y = np.where(rng.random(n) < p, 2, rng.integers(0, 2, size=n))
        target = np.eye(3)[y]
    else:
        y = 3.0 * p + rng.normal(size=n)
        target = y
    positions = np.arange(n)
    ts = TargetStatistics(["u", "v"], [("u", "v")], n_folds=5, smooth=smooth, seed=7)
    ts.update(X, target, positions=positions)
    folds = assign_folds(positions, 5, 7)
    te = TargetEncoder(
        smooth=smooth, target_type=kind, cv=PredefinedSplit(test_fold=folds)
    )
    expected_oof = te.fit_transform(te_input(X), y)
    assert_allclose(ts.out_of_fold(X, positions).to_numpy(), expected_oof, rtol=1e-9)

    X_new, _, _ = make_ids(n=100, seed=1)
    X_new.loc[:4, "u"] = "never seen"
    assert_allclose(
        ts.transform(X_new).to_numpy(), te.transform(te_input(X_new)), rtol=1e-9
    )
    k = 3 if kind == "multiclass" else 1
    assert len(ts.feature_names_) == 3 * k
    if k == 1:
        assert ts.feature_names_ == ["u:te", "v:te", "u*v:te"]
    else:
        assert ts.feature_names_[:3] == ["u:te[0]", "u:te[1]", "u:te[2]"]
    assert ts.sources_[ts.feature_names_[-1]] == ("u", "v")
    assert ts.sources_[ts.feature_names_[0]] == ("u",)


@pytest.mark.parametrize("smooth", ["auto", 2.0])
def test_three_chunks_equal_one_update(smooth):
    X, rng, p = make_ids(n=600)
    y = (rng.random(len(X)) < p).astype(float)
    w = rng.integers(1, 4, size=len(X)).astype(float)
    positions = np.arange(len(X))
    # One update over category dtypes (in memory) ...
    whole = TargetStatistics(["u", "v"], [("u", "v")], smooth=smooth, seed=3)
    whole.update(X.astype("category"), y, w, positions)
    # ... against three chunks (and an empty one) with text dtypes, out of order.
    chunked = TargetStatistics(["u", "v"], [("u", "v")], smooth=smooth, seed=3)
    for part in (slice(350, 600), slice(0, 100), slice(100, 100), slice(100, 350)):
        chunked.update(X.iloc[part].astype("str"), y[part], w[part], positions[part])
    assert_array_equal(
        chunked.out_of_fold(X, positions).to_numpy(),
        whole.out_of_fold(X, positions).to_numpy(),
    )
    assert_array_equal(chunked.transform(X).to_numpy(), whole.transform(X).to_numpy())


def test_continuous_chunks_agree_up_to_rounding():
    X, rng, p = make_ids(n=300)
    y = rng.normal(size=len(X)) + p
    positions = np.arange(len(X))
    whole = TargetStatistics(["u"], [("u", "v")])
    whole.update(X, y, positions=positions)
    chunked = TargetStatistics(["u"], [("u", "v")])
    for part in np.array_split(np.arange(len(X)), 3):
        chunked.update(X.iloc[part], y[part], positions=part)
    assert_allclose(
        chunked.out_of_fold(X, positions), whole.out_of_fold(X, positions), rtol=1e-12
    )


def noise_and_signal(n=6000, seed=0):
    """A noise ID column (every value in one or two rows) and a signal ID column."""
    rng = np.random.default_rng(seed)
    m = int(n / 1.5)
    noise = rng.permutation(np.concatenate([np.arange(m), np.arange(n - m)]))
    rate = rng.beta(0.7, 0.7, size=150)
    signal = rng.integers(0, 150, size=n)
    y = (rng.random(n) < rate[signal]).astype(float)
    X = pd.DataFrame({"noise": noise.astype(str), "signal": signal.astype(str)})
    return X, y


def held_out_auc(ts, X, y, n_train, column):
    """Logistic regression on the statistic: out-of-fold in, full-data out."""
    train = ts.out_of_fold(X.iloc[:n_train], np.arange(n_train))[[column]]
    test = ts.transform(X.iloc[n_train:])[[column]]
    model = LogisticRegression().fit(train, y[:n_train])
    return roc_auc_score(y[n_train:], model.predict_proba(test)[:, 1])


@pytest.mark.parametrize("smooth", ["auto", 10.0])
def test_noise_ids_gain_nothing_on_held_out_rows(smooth):
    X, y = noise_and_signal()
    n_train = 4000
    ts = TargetStatistics(["noise", "signal"], smooth=smooth, seed=0)
    ts.update(X.iloc[:n_train], y[:n_train], positions=np.arange(n_train))

    oof = ts.out_of_fold(X.iloc[:n_train], np.arange(n_train))
    # Out of fold, the noise statistic says nothing about the row's own label...
    assert abs(roc_auc_score(y[:n_train], oof["noise:te"]) - 0.5) < 0.04
    # ... whereas the in-fold (leaky) statistic looks predictive on the same rows.
    leaky = ts.transform(X.iloc[:n_train])["noise:te"]
    assert roc_auc_score(y[:n_train], leaky) > 0.75
    assert abs(held_out_auc(ts, X, y, n_train, "noise:te") - 0.5) < 0.05
    assert held_out_auc(ts, X, y, n_train, "signal:te") > 0.70
    if smooth != "auto":
        # With a fixed prior weight, values seen once or twice stay near the prior.
        prior = y[:n_train].mean()
        assert np.abs(oof["noise:te"] - prior).max() < 0.1


def test_weight_two_equals_a_duplicated_row():
    X, rng, p = make_ids(n=200)
    y = rng.normal(size=len(X)) + p
    w = rng.integers(1, 3, size=len(X))
    positions = np.arange(len(X))
    rep = np.repeat(np.arange(len(X)), w)
    for smooth in ("auto", 1.5):
        weighted = TargetStatistics(["u"], [("u", "v")], smooth=smooth)
        weighted.update(X, y, w.astype(float), positions)
        duplicated = TargetStatistics(["u"], [("u", "v")], smooth=smooth)
        duplicated.update(X.iloc[rep], y[rep], None, positions[rep])
        assert_allclose(
            weighted.out_of_fold(X, positions),
            duplicated.out_of_fold(X, positions),
            rtol=1e-10,
        )
        assert_allclose(weighted.transform(X), duplicated.transform(X), rtol=1e-10)
    assert weighted.n_rows_ == w.sum()


def test_unseen_and_missing_values():
    X = pd.DataFrame({"u": ["a", "a", "b", None, None, "c"], "v": list("xyxyxy")})
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    w = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 3.0])
    ts = TargetStatistics(["u"], [("u", "v")], n_folds=2, smooth=1.0)
    ts.update(X, y, w, np.arange(6))
    prior = (y * w).sum() / w.sum()
    new = pd.DataFrame({"u": ["zz", None, "a"], "v": ["x", "x", "q"]})
    out = ts.transform(new)
    # An unseen value gets the prior; missing is a category of its own.
    assert_allclose(out["u:te"], [prior, (0 + prior) / (2 + 1), (2 + prior) / 3])
    # A pair with an unseen member (here "q") gets the prior.
    assert_allclose(out.loc[[0, 2], "u*v:te"], [prior, prior])
    # Missing never seen in training gets the prior too.
    ts2 = TargetStatistics(["u"], n_folds=2, smooth=1.0)
    ts2.update(X.iloc[:3], y[:3], positions=np.arange(3))
    assert_allclose(ts2.transform(new)["u:te"].iloc[1], y[:3].mean())


def test_value_seen_only_in_its_own_fold_gets_the_fold_prior():
    positions = np.arange(40)
    folds = assign_folds(positions, 2, 0)
    X = pd.DataFrame({"u": np.where(folds == 0, "only0", "other")})
    X.loc[positions[folds == 1][:3], "u"] = "only0_elsewhere"
    y = (positions % 3 == 0).astype(float)
    ts = TargetStatistics(["u"], n_folds=2, smooth=4.0)
    ts.update(X, y, positions=positions)
    oof = ts.out_of_fold(X, positions)["u:te"].to_numpy()
    in0 = folds == 0
    assert_allclose(oof[in0], y[~in0].mean())


def test_prior_all_uses_one_prior_for_every_fold():
    positions = np.arange(40)
    folds = assign_folds(positions, 2, 0)
    X = pd.DataFrame({"u": np.where(folds == 0, "only0", "only1")})
    y = (positions % 3 == 0).astype(float)
    ts = TargetStatistics(["u"], n_folds=2, smooth=4.0, prior="all")
    ts.update(X, y, positions=positions)
    # Every value is seen only in its own fold: all rows get the overall prior.
    assert_allclose(ts.out_of_fold(X, positions)["u:te"], y.mean())


def test_pair_values_do_not_collide_like_concatenated_strings():
    X = pd.DataFrame({"a": ["a_b", "a"] * 10, "b": ["c", "b_c"] * 10})
    y = np.array([1.0, 0.0] * 10)
    ts = TargetStatistics([], [("a", "b")], n_folds=2, smooth=0.0)
    ts.update(X, y, positions=np.arange(20))
    assert_allclose(ts.transform(X.iloc[:2])["a*b:te"], [1.0, 0.0])


def test_folds_are_balanced_and_independent_of_the_validation_hash():
    from sk_fibinet.data.held_out import _uniform_hash
    from sk_fibinet.preprocessing.cross_fitting import _uniform_hash as copied

    positions = np.arange(50_000)
    assert_array_equal(copied(positions, 5), _uniform_hash(positions, 5))
    folds = assign_folds(positions, 5, seed=5)
    held_out = _uniform_hash(positions, 5) < 0.2  # the streaming validation rule
    for rows in (np.ones_like(held_out), held_out, ~held_out):
        share = np.bincount(folds[rows], minlength=5) / rows.sum()
        assert_allclose(share, 0.2, atol=0.015)
    assert_array_equal(assign_folds(positions[::-1], 5, 5), folds[::-1])


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="n_folds"):
        TargetStatistics(["u"], n_folds=1)
    with pytest.raises(ValueError, match="prior"):
        TargetStatistics(["u"], prior="fold")
    with pytest.raises(ValueError, match="smooth"):
        TargetStatistics(["u"], smooth=-1.0)
    with pytest.raises(ValueError, match="pairs"):
        TargetStatistics(["u"], [("u", "u")])
    ts = TargetStatistics(["u"])
    with pytest.raises(ValueError, match="call update"):
        ts.transform(pd.DataFrame({"u": ["a"]}))
    with pytest.raises(KeyError, match="'u'"):
        ts.update(pd.DataFrame({"x": ["a"]}), [1.0], positions=[0])
    with pytest.raises(ValueError, match="positions"):
        ts.update(pd.DataFrame({"u": ["a"]}), [1.0], positions=[0.5])
    ts.update(pd.DataFrame({"u": ["a"]}), [1.0], positions=[0])
    with pytest.raises(ValueError, match="columns"):
        ts.update(pd.DataFrame({"u": ["a"]}), [[1.0, 0.0]], positions=[1])


def selection_table(n=6000, seed=0):
    """a x b repeats 400 combinations; c is fine alone but unique with a or b;
    d is a function of a (a redundant pair); e is a row ID."""
    rng = np.random.default_rng(seed)
    combos = np.stack([rng.integers(0, 100, 400), rng.integers(0, 90, 400)], 1)
    ab = combos[rng.integers(0, 400, size=n)]
    a = ab[:, 0]
    return pd.DataFrame(
        {
            "a": a.astype(str),
            "b": ab[:, 1].astype(str),
            "c": rng.integers(0, 1000, size=n).astype(str),
            "d": (a // 1).astype(str) + "_d",
            "e": np.arange(n).astype(str),
            "small": rng.integers(0, 5, size=n).astype(str),
        }
    )


def test_selection_picks_the_dense_pair_and_refuses_the_unique_ones():
    X = selection_table()
    counts = {c: X[c].value_counts() for c in X.columns}
    sketch = PairSketch(
        [("a", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("b", "d"), ("c", "d")]
    )
    for part in np.array_split(np.arange(len(X)), 4):
        sketch.update(X.iloc[part])
    columns, pairs = select_columns(counts, len(X), sketch.summary())
    # e (a row ID) and small (5 values) are not columns; a x d repeats a.
    assert columns == ["a", "b", "c", "d"]
    assert ("a", "b") in pairs
    assert ("b", "d") in pairs  # d is a, so b x d is the dense a x b again
    assert not {("a", "c"), ("b", "c"), ("c", "d"), ("a", "d")} & set(pairs)
    # Equal shares: the first candidate in column order is kept.
    assert select_columns(counts, len(X), sketch.summary(), max_pairs=1)[1] == [
        ("a", "b")
    ]
    assert select_columns(counts, len(X))[1] == []


def test_auto_rule_needs_enough_rows_and_ids_with_few_rows_each():
    n = 60_000
    counts = {
        "thin": pd.Series(np.full(3_000, 20)),  # 20 rows per value
        "thin2": pd.Series(np.full(2_000, 30)),  # 30 rows per value
        "thick": pd.Series(np.full(200, 300)),  # 300 rows per value
    }
    summary = pd.DataFrame(
        {"n_rows": n, "n_distinct": 40_000.0, "repeated_share": 0.6},
        index=pd.MultiIndex.from_tuples(
            [("thin", "thin2"), ("thin", "thick"), ("thin2", "thick")]
        ),
    )
    every = select_columns(counts, n, summary, **selection_rule("all"))
    assert every[0] == ["thin", "thin2", "thick"]
    assert len(every[1]) == 3
    auto = select_columns(counts, n, summary, **selection_rule("auto"))
    assert auto == (["thin", "thin2"], [("thin", "thin2")])
    # fewer training rows than AUTO_RULE's 50,000: nothing under "auto"
    small = {k: v * 0.8 for k, v in counts.items()}  # 48,000 rows
    assert select_columns(small, 48_000, summary, **selection_rule("auto")) == (
        [],
        [],
    )
    assert select_columns(small, 48_000, summary)[0] == ["thin", "thin2", "thick"]
    with pytest.raises(ValueError, match="target_stats must be 'auto', 'all'"):
        selection_rule("yes")


def test_pair_sketch_is_exact_below_k_and_close_above():
    X = selection_table()
    exact = X.groupby(["a", "c"]).size()
    share = exact[exact >= 2].sum() / len(X)
    big = PairSketch([("a", "c")], k=len(X)).summary().iloc[0]  # not updated
    assert big["n_distinct"] == 0
    full = PairSketch([("a", "c")], k=len(X))
    full.update(X)
    got = full.summary().iloc[0]
    assert got["n_distinct"] == len(exact)
    assert_allclose(got["repeated_share"], share)
    small = PairSketch([("a", "c")], k=512)
    for part in np.array_split(np.arange(len(X)), 3):
        small.update(X.iloc[part])
    once = PairSketch([("a", "c")], k=512)
    once.update(X)
    assert_array_equal(small.summary().to_numpy(), once.summary().to_numpy())
    est = small.summary().iloc[0]
    assert abs(est["n_distinct"] / len(exact) - 1) < 0.15
    assert abs(est["repeated_share"] - share) < 0.05


@pytest.mark.parametrize("smooth", ["auto", 2.0])
def test_lookup_tables_and_state_reproduce_transform_exactly(smooth):
    X, rng, p = make_ids()
    y = np.column_stack([rng.random(len(X)) < p, rng.random(len(X)) < 0.3])
    ts = TargetStatistics(["u"], [("u", "v")], n_folds=3, smooth=smooth)
    ts.update(X, y.astype(float), positions=np.arange(len(X)))
    new = pd.DataFrame(
        {"u": ["u1", None, "zz", "u2", np.nan], "v": ["v1", "v1", "v1", "zz", "v3"]}
    )
    rows = pd.concat([X.head(30), new], ignore_index=True)
    lookup = ts.lookup_tables()
    # by hand: the value's code in the source's vocabulary (0 missing, -1 unseen)

    def code(column):
        c = pd.Index(lookup["vocabularies"][column]).get_indexer(rows[column]) + 1
        c[c == 0] = -1
        c[rows[column].isna().to_numpy()] = 0
        return c

    u, v = code("u"), code("v")
    key = u.astype(np.int64) * 2**32 + v
    pair = pd.Index(lookup["pair_keys"][("u", "v")]).get_indexer(key) + 1
    pair = np.where((u < 0) | (v < 0) | (pair == 0), -1, pair)
    expected = ts.transform(rows).to_numpy()  # (n, 4)
    assert_array_equal(lookup["tables"][("u",)][u], expected[:, :2])
    assert_array_equal(lookup["tables"][("u", "v")][pair], expected[:, 2:])
    assert (u == -1).any() and (pair == -1).any()  # the prior rows are used
    again = TargetStatistics.from_state(ts.to_state())
    pd.testing.assert_frame_equal(again.transform(rows), ts.transform(rows))
    more = X.sample(100, random_state=1)
    for stats in (ts, again):
        stats.update(more, np.ones((100, 2)), positions=np.arange(400, 500))
    pd.testing.assert_frame_equal(again.transform(rows), ts.transform(rows))


def test_held_out_gain_separates_signal_from_noise():
    from sk_fibinet.preprocessing.target_evidence import MIN_GAIN, held_out_gain

    rng = np.random.default_rng(1)
    n = 6000
    user = rng.integers(0, 300, n)
    rate = rng.normal(scale=1.5, size=300)
    y = (rate[user] + rng.logistic(size=n) > 0).astype(float)
    frame = pd.DataFrame(
        {
            "user": user.astype(str),
            "noise": rng.permutation(np.repeat(np.arange(n // 2), 2)).astype(str),
        }
    )
    ts = TargetStatistics(["user", "noise"], seed=0)
    positions = np.arange(n)
    ts.update(frame, y, positions=positions)
    oof = ts.out_of_fold(frame, positions).to_numpy()
    folds = assign_folds(positions, ts.n_folds, ts.seed)
    gain = held_out_gain(oof, y, None, folds)
    assert gain[0] > 0.05 and gain[1] < MIN_GAIN, gain
    # with weights: the rows' errors count by weight, the verdicts stand
    w = rng.integers(1, 4, n).astype(float)
    weighted = held_out_gain(oof, y, w, folds)
    assert weighted[0] > 0.05 and weighted[1] < MIN_GAIN, weighted
    assert not np.allclose(weighted, gain)
    # a target that never varies: nothing to explain, no error
    assert_allclose(held_out_gain(oof, np.ones(n), None, folds), 0.0)
