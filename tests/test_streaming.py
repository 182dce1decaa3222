"""Streaming fit and prediction from Parquet (ParquetSource)."""

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, ParquetSource
from sk_fibinet.data.stream_batches import _ShuffleBuffer
from sk_fibinet.preprocessing.encoding import FieldEncoder

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")

from conftest import FAST, make_mixed  # noqa: E402

STREAM = dict(FAST, max_epochs=3)


def _write(frame, path, row_group_size=150):
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False),
        path,
        row_group_size=row_group_size,
    )
    return path


@pytest.fixture
def parquet_file(tmp_path):
    X, y = make_mixed(1_200)
    return _write(X.assign(target=y), tmp_path / "train.parquet")


def _source(path, **kwargs):
    kwargs = {"target": "target", "batch_size": 100, "shuffle_buffer": 300, **kwargs}
    return ParquetSource(path, **kwargs)


def _frame(path):
    frame = pq.read_table(path).to_pandas()
    return frame.drop(columns="target"), frame["target"].to_numpy()


def test_streamed_fit_learns_the_in_memory_encoding_and_scores_alike(parquet_file):
    X, y = _frame(parquet_file)
    streamed = FiBiNETClassifier(**STREAM).fit(_source(parquet_file))
    in_memory = FiBiNETClassifier(**STREAM).fit(X, y)
    a, b = streamed.encoder_, in_memory.encoder_
    assert_array_equal(a.categorical_mask_, b.categorical_mask_)
    assert a.cardinalities_ == b.cardinalities_
    for va, vb, ea, eb in zip(
        a.vocabularies_, b.vocabularies_, a.bin_edges_, b.bin_edges_, strict=True
    ):
        if va is None:
            assert_array_equal(ea, eb)
        else:
            assert list(va) == list(vb)  # same categories, same codes
    assert list(streamed.feature_names_in_) == list(X.columns)
    auc_streamed = roc_auc_score(y, streamed.predict_proba(X)[:, 1])
    auc_in_memory = roc_auc_score(y, in_memory.predict_proba(X)[:, 1])
    assert auc_streamed > 0.8
    assert abs(auc_streamed - auc_in_memory) < 0.03
    assert streamed.temperature_ != 1.0  # calibrated on the held-out rows
    assert "valid_loss_calibrated" in streamed.net_.history[-1]


def test_predict_on_a_source_equals_predict_on_its_frame(parquet_file):
    X, _ = _frame(parquet_file)
    clf = FiBiNETClassifier(**STREAM).fit(_source(parquet_file))
    source = ParquetSource(parquet_file, batch_size=70)  # no target: predicting
    assert_allclose(clf.predict_proba(source), clf.predict_proba(X), rtol=1e-6)
    assert_array_equal(clf.predict(source), clf.predict(X))


def test_same_random_state_same_model_other_seed_other_model(parquet_file):
    X, _ = _frame(parquet_file)
    p1 = FiBiNETClassifier(**STREAM).fit(_source(parquet_file)).predict_proba(X)
    p2 = FiBiNETClassifier(**STREAM).fit(_source(parquet_file)).predict_proba(X)
    p3 = (
        FiBiNETClassifier(**{**STREAM, "random_state": 1})
        .fit(_source(parquet_file))
        .predict_proba(X)
    )
    assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)


class _Recorder(Callback):
    """Validation rows and training row counts of every epoch."""

    def on_train_begin(self, net, **kwargs):
        self.valid, self.train_rows, self.batch_sizes = [], [], []

    def on_epoch_begin(self, net, **kwargs):
        self.train_rows.append(0)

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self.train_rows[-1] += batch[0].shape[0]
            self.batch_sizes.append(batch[0].shape[0])

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        self.valid.append(dataset_valid.codes.clone())


def test_same_validation_rows_every_epoch_and_never_trained_on(parquet_file):
    recorder = _Recorder()
    params = {**STREAM, "max_epochs": 3, "n_iter_no_change": 3}  # all 3 epochs
    clf = FiBiNETClassifier(**params, callbacks=[("rec", recorder)])
    clf.fit(_source(parquet_file))
    assert clf.n_iter_ == 3
    n_valid = recorder.valid[0].shape[0]
    assert 60 <= n_valid <= 180  # about validation_fraction=0.1 of 1,200 rows
    for codes in recorder.valid[1:]:
        assert torch.equal(codes, recorder.valid[0])
    assert recorder.train_rows == [1_200 - n_valid] * 3
    # full batches but for the last of each epoch
    assert sorted(set(recorder.batch_sizes))[-1] == STREAM["batch_size"]
    assert sum(s != STREAM["batch_size"] for s in recorder.batch_sizes) <= 3


def test_shuffle_buffer_holds_at_most_its_capacity_and_loses_no_row():
    generator = torch.Generator().manual_seed(0)
    buffer = _ShuffleBuffer(capacity=50, batch_size=8, generator=generator)
    rows = torch.arange(333)
    out = []
    for start, stop in [(0, 7), (7, 130), (130, 131), (131, 333)]:  # uneven chunks
        codes = rows[start:stop, None]  # (n, 1)
        target = codes.float().repeat(1, 2)  # (n, 2)
        for c, _ in buffer.push(codes, target):
            assert buffer.n_rows <= 50
            out.append(c[:, 0])
    out += [c[:, 0] for c, _ in buffer.drain()]
    assert buffer.peak == 50
    got = torch.cat(out)
    assert torch.equal(torch.sort(got).values, rows)  # every row exactly once
    assert not torch.equal(got, rows)  # and mixed
    assert all(len(b) == 8 for b in out[:-1])


class _BufferBound(Callback):
    """The most rows the stream's shuffle buffer held, read when training ends."""

    def on_train_end(self, net, X=None, **kwargs):
        self.max_buffered_rows = X.max_buffered_rows


def test_fit_works_when_read_batches_exceed_the_shuffle_buffer(parquet_file):
    source = _source(parquet_file, batch_size=1_000, shuffle_buffer=128)
    bound = _BufferBound()
    clf = FiBiNETClassifier(**STREAM, callbacks=[("bound", bound)]).fit(source)
    assert clf.predict_proba(source).shape == (1_200, 2)
    # record batches of 1,000 rows were split: the buffer never held more
    assert 0 < bound.max_buffered_rows <= source.shuffle_buffer


def test_numeric_bins_come_from_a_seeded_bounded_sample(parquet_file):
    X, _ = _frame(parquet_file)
    clf = FiBiNETClassifier(**STREAM).fit(_source(parquet_file, bin_sample_rows=300))
    seed = np.random.RandomState(STREAM["random_state"]).randint(np.iinfo(np.int32).max)
    rows = np.sort(np.random.default_rng(seed).choice(1_200, size=300, replace=False))
    expected = FieldEncoder(n_bins=32).fit(X[["amount", "noise"]].iloc[rows])
    for name, edges in zip(["amount", "noise"], expected.bin_edges_, strict=True):
        j = clf.encoder_.column_names_.index(name)
        assert_array_equal(clf.encoder_.bin_edges_[j], edges)
    full = FieldEncoder(n_bins=32).fit(X[["amount"]])
    j = clf.encoder_.column_names_.index("amount")
    assert not np.array_equal(clf.encoder_.bin_edges_[j], full.bin_edges_[0])


def test_unknown_categories_at_predict(parquet_file, tmp_path):
    clf = FiBiNETClassifier(**STREAM).fit(_source(parquet_file))
    X, _ = make_mixed(200, seed=1)
    X["color"] = pd.Series(["purple", "red"] * 100, dtype="str")  # purple: unseen
    path = _write(X, tmp_path / "new.parquet")
    proba = clf.predict_proba(ParquetSource(path))
    assert np.isfinite(proba).all()
    assert_allclose(proba, clf.predict_proba(X), rtol=1e-6)


def test_directory_of_files_and_a_pyarrow_dataset(tmp_path):
    X, y = make_mixed(1_200)
    frame = X.assign(target=y)
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(3):
        _write(frame.iloc[400 * k : 400 * (k + 1)], folder / f"part-{k}.parquet")
    from_folder = FiBiNETClassifier(**STREAM).fit(_source(folder))
    dataset = ds.dataset(folder, format="parquet")
    from_dataset = FiBiNETClassifier(**STREAM).fit(_source(dataset))
    in_memory = FiBiNETClassifier(**STREAM).fit(*_frame(_write(frame, tmp_path / "a")))
    assert _source(folder).n_rows == 1_200
    for j, vocab in enumerate(in_memory.encoder_.vocabularies_):
        if vocab is not None:
            assert list(from_folder.encoder_.vocabularies_[j]) == list(vocab)
    assert_array_equal(
        from_folder.predict_proba(ParquetSource(folder)),
        from_dataset.predict_proba(ParquetSource(dataset)),
    )


def test_predict_to_parquet_writes_predictions_in_source_order(parquet_file, tmp_path):
    clf = FiBiNETClassifier(**STREAM).fit(_source(parquet_file))
    source = ParquetSource(parquet_file, batch_size=250)
    out = clf.predict_to_parquet(
        source, tmp_path / "scores.parquet", method="predict_proba", columns=["color"]
    )
    scores = pq.read_table(out).to_pandas()
    X, _ = _frame(parquet_file)
    assert list(scores.columns) == ["color", "proba_0", "proba_1"]
    assert_array_equal(scores["color"], X["color"])
    assert_allclose(scores[["proba_0", "proba_1"]], clf.predict_proba(X), rtol=1e-6)
    labels = pq.read_table(clf.predict_to_parquet(source, tmp_path / "p.parquet"))
    assert_array_equal(labels.column("prediction").to_numpy(), clf.predict(X))


def test_string_labels_and_balanced_class_weight(tmp_path):
    X, y = make_mixed(1_200)
    labels = np.where(y == 1, "click", "no click")
    path = _write(X.assign(target=labels), tmp_path / "t.parquet")
    clf = FiBiNETClassifier(**STREAM, class_weight="balanced").fit(_source(path))
    assert list(clf.classes_) == ["click", "no click"]
    assert set(clf.predict(X)) <= {"click", "no click"}


def test_regressor_streams_with_the_in_memory_target_scale(tmp_path):
    X, _ = make_mixed(1_200)
    y = 3.0 + 2.0 * X["amount"].to_numpy() + (X["color"] == "red").to_numpy()
    path = _write(X.assign(target=y), tmp_path / "r.parquet")
    reg = FiBiNETRegressor(**STREAM).fit(_source(path))
    assert_allclose(reg.target_offset_, y.mean())
    assert_allclose(reg.target_scale_, y.std())
    pred = reg.predict(ParquetSource(path))
    assert pred.shape == (1_200,)
    assert np.corrcoef(pred, y)[0, 1] > 0.5


def test_clear_errors(parquet_file):
    with pytest.raises(ValueError, match="target='clicks' is not a column"):
        ParquetSource(parquet_file, target="clicks")
    with pytest.raises(ValueError, match=r"columns \['nope'\]"):
        ParquetSource(parquet_file, target="target", columns=["color", "nope"])
    clf = FiBiNETClassifier(**STREAM)
    with pytest.raises(ValueError, match="name its target column"):
        clf.fit(ParquetSource(parquet_file))
    with pytest.raises(ValueError, match="y must be None"):
        clf.fit(_source(parquet_file), np.zeros(1_200))
    with pytest.raises(ValueError, match="shuffle_buffer=10 is smaller"):
        clf.fit(_source(parquet_file, shuffle_buffer=10))
    clf.fit(_source(parquet_file))
    X, _ = _frame(parquet_file)
    no_amount = _write(X.drop(columns="amount"), parquet_file.with_name("x.parquet"))
    with pytest.raises(ValueError, match=r"lacks the columns \['amount'\]"):
        clf.predict_proba(ParquetSource(no_amount))


def test_missing_pyarrow_names_the_extra(monkeypatch, parquet_file):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow.dataset", None)
    with pytest.raises(ImportError, match=r"sk_fibinet\[parquet\]"):
        ParquetSource(parquet_file, target="target")


def test_codes_unseen_in_training_get_their_fields_mean_row(parquet_file):
    X, _ = _frame(parquet_file)
    params = {**STREAM, "early_stopping": False}  # every row trains
    clf = FiBiNETClassifier(**params).fit(_source(parquet_file))
    j = clf.encoder_.column_names_.index("flag")  # no missing values: code 0 unseen
    codes = clf.encoder_.transform(X)[:, j]
    counts = np.bincount(codes, minlength=clf.encoder_.cardinalities_[j])
    assert counts[0] == 0
    start = sum(clf.encoder_.cardinalities_[:j])
    table = clf.net_.module_.embedding.embedding.weight.detach().double().numpy()
    rows = table[start : start + counts.size]  # (c, d)
    assert_allclose(rows[0], counts @ rows / counts.sum(), rtol=1e-5, atol=1e-7)


def test_embedding_l2_scales_by_the_training_counts_as_in_memory(parquet_file):
    X, y = _frame(parquet_file)
    params = {**STREAM, "early_stopping": False}  # every row trains, in both fits
    streamed = FiBiNETClassifier(**params).fit(_source(parquet_file))
    in_memory = FiBiNETClassifier(**params).fit(X, y)

    def scales(clf):
        weight = clf.net_.module_.embedding.embedding.weight
        (group,) = [
            g
            for g in clf.net_.optimizer_.param_groups
            if any(p is weight for p in g["params"])
        ]
        return group["row_l2"], group["row_scale"]

    l2, scale = scales(streamed)
    assert l2 == 0.03
    assert_allclose(scale, scales(in_memory)[1])  # counted before training
    off = FiBiNETClassifier(**params, embedding_l2=0.0).fit(_source(parquet_file))
    assert not any(g.get("row_l2") for g in off.net_.optimizer_.param_groups)


def test_explanations_of_a_streamed_fit_add_up(parquet_file):
    X, _ = _frame(parquet_file)
    clf = FiBiNETClassifier(**STREAM).fit(_source(parquet_file))
    assert clf.feature_importances_.shape == (X.shape[1],)
    assert np.isclose(clf.feature_importances_.sum(), 1.0)
    assert clf.senet_weights_.shape == (X.shape[1],)
    contributions = clf.explain(X.iloc[:50])
    assert_allclose(
        contributions.sum(axis=1) + clf.explain_base_value_,
        clf.decision_function(X.iloc[:50]),
        rtol=1e-4,
        atol=1e-5,
    )
