"""fit(X, y, groups=...): hold-out and target-statistic folds by whole groups."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.data.frame_source import FrameSource

FAST = dict(
    embedding_dim=4,
    hidden_layer_sizes=(16,),
    max_epochs=2,
    batch_size=256,
    random_state=0,
)


def impressions(n_impressions=600, size=4, n_users=60, seed=0):
    """Impressions of ``size`` candidates with exactly one click each; the user
    says nothing about which candidate is clicked."""
    rng = np.random.default_rng(seed)
    n = n_impressions * size
    groups = np.repeat(np.arange(n_impressions), size)  # (n,)
    users = rng.integers(0, n_users, n_impressions)[groups]  # one user per impression
    y = np.zeros(n, dtype=int)
    y[np.arange(n_impressions) * size + rng.integers(0, size, n_impressions)] = 1
    X = pd.DataFrame(
        {
            "user": pd.Series([f"u{u}" for u in users], dtype="str"),
            "slot": pd.Series(rng.choice(list("abcdefgh"), n), dtype="str"),
        }
    )
    return X, y, groups


def training_statistics(groups):
    """The user statistic of every training row, and those rows' targets."""
    X, y, g = impressions()
    model = FiBiNETClassifier(**FAST, target_stats="all")
    source = FrameSource(X, y, groups=g if groups else None)
    source.check(model)
    frame, statistics = source._with_statistics(model, 0, None, None)
    assert statistics.columns == ["user"]
    return frame["user:te"].to_numpy(), y


def test_group_folds_keep_a_rows_group_out_of_its_statistic():
    # hashed row folds: a row's user statistic counts the other candidates of
    # its own impression, whose labels are the opposite of its own (one click
    # per impression), so the statistic anti-predicts the label on training
    # rows, a pattern no test row has; folds by impression remove it
    by_row, y = training_statistics(groups=False)
    by_group, _ = training_statistics(groups=True)
    assert roc_auc_score(y, by_row) < 0.4
    assert abs(roc_auc_score(y, by_group) - 0.5) < 0.05


def test_early_stopping_rows_are_whole_groups():
    X, y, g = impressions()
    model = FiBiNETClassifier(**FAST)
    source = FrameSource(X, y, groups=g)
    source.check(model)
    tr, va = source._split(model, 0)
    assert len(va) > 0 and len(tr) > 0
    assert not set(g[tr.numpy()]) & set(g[va.numpy()])
    # without groups the stratified split cuts impressions apart
    plain = FrameSource(X, y)
    plain.check(model)
    tr, va = plain._split(model, 0)
    assert set(g[tr.numpy()]) & set(g[va.numpy()])


def test_fit_with_groups_trains_and_predicts():
    X, y, g = impressions()
    clf = FiBiNETClassifier(**FAST, target_stats="all").fit(X, y, groups=g)
    assert clf.predict_proba(X).shape == (len(X), 2)
    again = FiBiNETClassifier(**FAST, target_stats="all").fit(X, y, groups=g)
    np.testing.assert_array_equal(clf.predict_proba(X), again.predict_proba(X))


@pytest.mark.parametrize(
    "groups, message",
    [(np.zeros(5), "one label per row"), (np.zeros(2400), "single group")],
)
def test_bad_groups_are_refused_by_name(groups, message):
    X, y, _ = impressions()
    clf = FiBiNETClassifier(**FAST)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y, groups=groups)
    assert not hasattr(clf, "n_iter_")
