"""target_stats="all" in a fit streamed from Parquet: the in-memory statistics."""

import numpy as np
import pandas as pd
import pytest
import torch
from _fit_worker import Fail
from conftest import FAST
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score

from sk_fibinet import (
    FiBiNETClassifier,
    FiBiNETRegressor,
    ParquetSource,
)
from sk_fibinet.data import stream_checkpoint as _stream_checkpoint
from sk_fibinet.data.features import with_statistics
from sk_fibinet.data.held_out import _uniform_hash
from sk_fibinet.data.stream_batches import _StreamDataset
from sk_fibinet.preprocessing.target_stats import TargetStatistics
from sk_fibinet.training.engine import draw_seed

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

PARAMS = dict(FAST, max_epochs=2, batch_size=128, target_stats="all")
SOURCE = dict(target="target", batch_size=170, shuffle_buffer=400)


def _ids(n=2000, seed=0):
    """A user ID carrying the signal, an item mostly fixed by the user (the
    user x item pair is chosen), a noise ID (each value in two rows), a number."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 60, n)
    item = (user * 7 + rng.integers(0, 3, n)) % 90
    noise = rng.permutation(np.repeat(np.arange(n // 2), 2))
    rate = rng.normal(scale=1.5, size=60)
    x = rng.normal(size=n)
    logit = rate[user] + 0.5 * x
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    X = pd.DataFrame(
        {
            "user": pd.Series([f"u{u}" for u in user], dtype="str"),
            "item": pd.Series([f"i{v}" for v in item], dtype="str"),
            "noise_id": pd.Series([f"n{v}" for v in noise], dtype="str"),
            "x": x,
        }
    )
    return X, y, logit


def _write(path, X, y, row_group_size=300):
    table = pa.Table.from_pandas(X.assign(target=y), preserve_index=False)
    pq.write_table(table, path, row_group_size=row_group_size)
    frame = pq.read_table(path).to_pandas()  # the rows as pandas reads them back
    return frame.drop(columns="target"), frame["target"].to_numpy()


@pytest.mark.parametrize("Estimator", [FiBiNETClassifier, FiBiNETRegressor])
def test_streamed_statistics_and_bins_are_the_in_memory_ones(Estimator, tmp_path):
    """Without a hold-out both fits see the same training rows at the same
    positions, hence the same folds, and sum the same rows (chunked otherwise):
    the chosen columns and pairs are identical, the vocabularies hold the same
    categories (categories of equal count may get other codes: the stream
    orders ties by first appearance among the batches' counts, not rows),
    the classifier's statistics (0/1 targets, unit weights: exact sums) and so
    its bins too; the regressor's scaled targets are summed in another order,
    which changes the statistics by float rounding only (1e-12)."""
    X, y, logit = _ids()
    target = logit if Estimator is FiBiNETRegressor else y
    X, target = _write(tmp_path / "t.parquet", X, target)
    params = dict(PARAMS, early_stopping=False)
    streamed = Estimator(**params).fit(ParquetSource(tmp_path / "t.parquet", **SOURCE))
    in_memory = Estimator(**params).fit(X, target)
    a, b = streamed.target_stats_, in_memory.target_stats_
    assert a.columns == b.columns == ["user", "item", "noise_id"]
    assert a.pairs == b.pairs == [("user", "item")]
    assert a.n_rows_ == b.n_rows_ == len(X)
    assert a.feature_names_ == b.feature_names_
    positions = np.arange(len(X))
    exact = Estimator is FiBiNETClassifier
    for got, want in [
        (a.transform(X), b.transform(X)),
        (a.out_of_fold(X, positions), b.out_of_fold(X, positions)),
    ]:
        if exact:
            assert_array_equal(got.to_numpy(), want.to_numpy())
        else:
            assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-12)
    ea, eb = streamed.encoder_, in_memory.encoder_
    assert ea.column_names_ == eb.column_names_
    assert ea.column_names_[-4:] == [
        "user:te",
        "item:te",
        "noise_id:te",
        "user*item:te",
    ]
    for va, vb in zip(ea.vocabularies_, eb.vocabularies_, strict=True):
        assert (va is None) == (vb is None)
        if va is not None:  # the same categories; ties in count may be ordered
            assert sorted(va) == sorted(vb)  # otherwise (see the docstring)
    for edges_a, edges_b in zip(ea.bin_edges_, eb.bin_edges_, strict=True):
        if edges_a is None:
            continue
        if exact:
            assert_array_equal(edges_a, edges_b)
        else:  # an edge is a midpoint of two values, each within 1e-12
            assert_allclose(edges_a, edges_b, rtol=1e-12, atol=1e-12)
    # prediction on a source applies the statistics as on a frame
    assert_allclose(
        streamed.predict(ParquetSource(tmp_path / "t.parquet", batch_size=333)),
        streamed.predict(X),
    )


def test_held_out_rows_get_statistics_of_the_training_rows_only(tmp_path):
    """While training, the held-out rows are left out of the statistics: a
    noise ID's value seen in two rows, one held out, gives the held-out row
    the other row's label, which says nothing of its own (had its own label
    been summed in, the statistic would predict it). Once fitted, the
    statistics take in the held-out rows too, for prediction."""
    X, y, _ = _ids(n=2400)
    X, y = _write(tmp_path / "t.parquet", X, y)
    source = ParquetSource(tmp_path / "t.parquet", **SOURCE)
    clf = FiBiNETClassifier(**PARAMS, early_stopping=True, validation_fraction=0.25)
    clf.fit(source)
    seed = draw_seed(clf)  # the fit's seed: random_state is an int
    positions = np.arange(len(X))
    held = _uniform_hash(positions, seed) < 0.25  # (n,) the held-out rows
    train = ~held
    fitted = clf.target_stats_
    assert fitted.n_rows_ == len(X)  # once fitted: every row
    every = TargetStatistics(fitted.columns, fitted.pairs, seed=seed)
    every.update(X, y.astype(float)[:, None], positions=positions)
    assert_allclose(
        fitted.transform(X).to_numpy(), every.transform(X).to_numpy(), atol=1e-12
    )
    # while training: the statistics of the training rows at their positions
    stats = TargetStatistics(fitted.columns, fitted.pairs, seed=seed)
    stats.update(X[train], y[train].astype(float)[:, None], positions=positions[train])
    noise = stats.transform(X[held])["noise_id:te"].to_numpy()
    assert abs(roc_auc_score(y[held], noise) - 0.5) < 0.08
    leaked = every.transform(X[held])["noise_id:te"].to_numpy()
    assert roc_auc_score(y[held], leaked) > 0.75  # what the test would catch

    # the rows the network sees: held out with those statistics, training
    # rows with their out-of-fold statistics
    stream = _StreamDataset(
        source,
        clf.encoder_,
        clf._targets_from_stats(pd.Series(y).value_counts()),
        seed=seed,
        valid_frac=0.25,
        keep_frac=1.0,
        n_train=int(train.sum()),
        statistics=stats,
    )
    stream.scan()
    values = np.empty((len(X), len(stats.feature_names_)))
    values[held] = stats.transform(X[held]).to_numpy()
    values[train] = stats.out_of_fold(X[train], positions[train]).to_numpy()
    codes = clf.encoder_.transform(with_statistics(X, stats.feature_names_, values))
    assert_array_equal(stream.valid.codes.numpy(), codes[held])
    assert_array_equal(stream.kept.codes.numpy(), codes)
    seen = [c for c, _ in stream.chunks(torch.Generator().manual_seed(1))]
    assert sum(len(c) for c in seen) == train.sum()


def test_streamed_target_stats_resume_and_are_in_the_checkpoint_digest(
    tmp_path, monkeypatch
):
    """A checkpointed fit with statistics resumes to the uninterrupted model; a
    source whose first pass is the same (same categories, numbers, target
    counts) but whose targets sit on other rows has other statistics, and the
    checkpoint's digest refuses it."""
    X, y, _ = _ids(n=1500)
    X, y = _write(tmp_path / "a.parquet", X, y)
    params = dict(PARAMS, max_epochs=2, early_stopping=True, n_iter_no_change=3)
    source = dict(SOURCE, checkpoint_every_n_batches=3)
    directory = tmp_path / "ck"
    interrupted = FiBiNETClassifier(
        **params, checkpoint_dir=directory, callbacks=[("fail", Fail(2, 4))]
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(ParquetSource(tmp_path / "a.parquet", **source))
    resumed = FiBiNETClassifier(**params, checkpoint_dir=directory).fit(
        ParquetSource(tmp_path / "a.parquet", **source)
    )
    uninterrupted = FiBiNETClassifier(**params).fit(
        ParquetSource(tmp_path / "a.parquet", **source)
    )
    assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
    assert [h["train_loss"] for h in resumed.net_.history] == [
        h["train_loss"] for h in uninterrupted.net_.history
    ]

    monkeypatch.setattr(
        _stream_checkpoint, "source_fingerprint", lambda model, source: "0" * 32
    )
    shuffled = np.random.default_rng(1).permutation(y)  # same counts, other rows
    _write(tmp_path / "b.parquet", X, shuffled)
    ck = dict(params, max_epochs=1, checkpoint_dir=tmp_path / "ck2")
    FiBiNETClassifier(**ck).fit(ParquetSource(tmp_path / "a.parquet", **source))
    with pytest.raises(ValueError, match="other contents"):
        FiBiNETClassifier(**ck).fit(ParquetSource(tmp_path / "b.parquet", **source))
    # without statistics the two first passes agree: b is taken for a
    plain = dict(ck, target_stats=None, checkpoint_dir=tmp_path / "ck3")
    FiBiNETClassifier(**plain).fit(ParquetSource(tmp_path / "a.parquet", **source))
    FiBiNETClassifier(**plain).fit(ParquetSource(tmp_path / "b.parquet", **source))


def test_streamed_auto_leaves_out_the_same_statistics_as_in_memory(
    tmp_path, monkeypatch
):
    """The evidence gate of "auto" reads the bin sample's training rows of a
    streamed fit: every row here, so the kept columns and pairs and the
    statistics are the in-memory fit's."""
    from sk_fibinet.preprocessing import target_selection

    monkeypatch.setitem(target_selection.AUTO_RULE, "min_rows", 0)  # a small table
    X, y, _ = _ids()
    X, y = _write(tmp_path / "t.parquet", X, y)
    params = dict(PARAMS, early_stopping=False, target_stats="auto")
    streamed = FiBiNETClassifier(**params).fit(
        ParquetSource(tmp_path / "t.parquet", **SOURCE)
    )
    in_memory = FiBiNETClassifier(**params).fit(X, y)
    every = FiBiNETClassifier(**dict(params, target_stats="all")).fit(X, y)
    a, b = streamed.target_stats_, in_memory.target_stats_
    assert "noise_id" in every.target_stats_.columns
    assert "noise_id" not in a.columns
    assert (a.columns, a.pairs) == (b.columns, b.pairs)
    assert a.feature_names_ == b.feature_names_
    assert_array_equal(a.transform(X).to_numpy(), b.transform(X).to_numpy())
    assert streamed.encoder_.column_names_ == in_memory.encoder_.column_names_
