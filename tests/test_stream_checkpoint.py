"""Checkpoints of fits streamed from Parquet: killed part-way, resumed exactly."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from numpy.testing import assert_array_equal

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, ParquetSource

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fit_worker import (  # noqa: E402
    STREAM_PARAMS,
    STREAM_SOURCE,
    STREAM_STALL,
    CountBatches,
    Fail,
    checkpoint_file,
    kill_at_stall,
)
from conftest import make_mixed  # noqa: E402


def _write(path, n_rows=1_200, seed=0, regression=False):
    X, y = make_mixed(n_rows, seed=seed)
    if regression:
        y = y + X["amount"].to_numpy()
    table = pa.Table.from_pandas(X.assign(target=y), preserve_index=False)
    pq.write_table(table, path, row_group_size=150)
    return path


def _source(path, **kwargs):
    return ParquetSource(path, **{**STREAM_SOURCE, **kwargs})


def _frame(path):
    return pq.read_table(path).to_pandas().drop(columns="target")


def _batches_after(history, epochs_done, batches_done):
    """Training batches an uninterrupted fit ran after a checkpoint."""
    trained = [b for row in history[epochs_done:] for b in row["batches"]]
    return sum("train_loss" in b for b in trained) - batches_done


def _assert_same_fit(resumed, uninterrupted, X):
    assert resumed.n_iter_ == uninterrupted.n_iter_
    assert_array_equal(resumed.predict(X), uninterrupted.predict(X))
    if hasattr(uninterrupted, "temperature_"):
        assert resumed.temperature_ == uninterrupted.temperature_
        assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
    assert_array_equal(resumed.feature_importances_, uninterrupted.feature_importances_)
    for a, b in zip(resumed.net_.history, uninterrupted.net_.history, strict=True):
        assert a["train_loss"] == b["train_loss"]
        assert a.get("valid_loss_calibrated") == b.get("valid_loss_calibrated")


def test_streamed_fit_killed_mid_epoch_resumes_to_the_uninterrupted_model(tmp_path):
    path = _write(tmp_path / "train.parquet")
    kill_at_stall("stream", tmp_path)  # within epoch 2, after its batch 8
    directory = tmp_path / "checkpoints"
    state = torch.load(checkpoint_file(directory), weights_only=True)
    epoch, batch = STREAM_STALL
    every = STREAM_SOURCE["checkpoint_every_n_batches"]
    assert (state["epochs_done"], state["batches_done"]) == (
        epoch - 1,
        batch // every * every,
    )
    assert not state["finished"]

    counter = CountBatches()
    resumed = FiBiNETClassifier(
        **STREAM_PARAMS, checkpoint_dir=directory, callbacks=[counter]
    ).fit(_source(path))
    uninterrupted = FiBiNETClassifier(**STREAM_PARAMS).fit(_source(path))
    # only the batches after the checkpoint were trained again
    assert counter.n_batches == _batches_after(
        uninterrupted.net_.history, state["epochs_done"], state["batches_done"]
    )
    _assert_same_fit(resumed, uninterrupted, _frame(path))


@pytest.mark.parametrize("Estimator", [FiBiNETClassifier, FiBiNETRegressor])
def test_resume_within_the_first_epoch(Estimator, tmp_path):
    """The first epoch also collects the validation rows and the code counts:
    resumed within it, the skipped batches are read again for them."""
    path = _write(tmp_path / "t.parquet", regression=Estimator is FiBiNETRegressor)
    interrupted = Estimator(
        **STREAM_PARAMS, checkpoint_dir=tmp_path, callbacks=[("fail", Fail(1, 7))]
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(_source(path))
    state = torch.load(checkpoint_file(tmp_path), weights_only=True)
    assert (state["epochs_done"], state["batches_done"]) == (0, 6)

    counter = CountBatches()
    resumed = Estimator(
        **STREAM_PARAMS, checkpoint_dir=tmp_path, callbacks=[counter]
    ).fit(_source(path))
    uninterrupted = Estimator(**STREAM_PARAMS).fit(_source(path))
    assert counter.n_batches == _batches_after(uninterrupted.net_.history, 0, 6)
    _assert_same_fit(resumed, uninterrupted, _frame(path))


def test_a_fit_without_random_state_resumes_with_the_seed_it_drew(tmp_path):
    """The seed picks the numeric sample and the held-out rows of the first
    pass, so the checkpoint is found before that pass, and its seed used."""
    path = _write(tmp_path / "t.parquet")
    source = dict(bin_sample_rows=500)  # bins from a seeded sample of the rows
    params = {**STREAM_PARAMS, "random_state": None}
    interrupted = FiBiNETClassifier(
        **params, checkpoint_dir=tmp_path, callbacks=[("fail", Fail(2, 4))]
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(_source(path, **source))
    # an interrupted fit keeps no fitted state: what it trained is in the file
    assert not hasattr(interrupted, "encoder_")
    saved = torch.load(checkpoint_file(tmp_path), weights_only=True)
    # the resumed fit checks that its first pass gives the same digest
    resumed = FiBiNETClassifier(**params, checkpoint_dir=tmp_path)
    resumed.fit(_source(path, **source))
    assert len(list(tmp_path.glob("fit-*.pt"))) == 1
    assert resumed.net_.shuffle_seed == saved["seed"]
    first_epoch = json.loads(saved["history"])[0]
    assert resumed.net_.history[0]["train_loss"] == first_epoch["train_loss"]


def test_a_finished_streamed_fit_is_restored_without_training(tmp_path):
    path = _write(tmp_path / "t.parquet")
    first = FiBiNETClassifier(**STREAM_PARAMS, checkpoint_dir=tmp_path)
    first.fit(_source(path))
    assert torch.load(checkpoint_file(tmp_path), weights_only=True)["finished"]
    counter = CountBatches()
    again = FiBiNETClassifier(
        **STREAM_PARAMS, checkpoint_dir=tmp_path, callbacks=[counter]
    ).fit(_source(path, checkpoint_every_n_batches=None))  # not fingerprinted
    assert counter.n_batches == 0
    _assert_same_fit(again, first, _frame(path))
    for clf in (first, again):  # the callback belongs to the fit that added it
        assert "checkpoint" not in [name for name, _ in clf.net_.callbacks_]
    proba = again.predict_proba(_frame(path))
    assert_array_equal(
        pickle.loads(pickle.dumps(again)).predict_proba(_frame(path)), proba
    )


def test_a_copied_source_resumes_other_data_get_a_file_of_their_own(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    path = _write(tmp_path / "a" / "t.parquet")
    params = dict(STREAM_PARAMS, max_epochs=1)
    first = FiBiNETClassifier(**params, checkpoint_dir=tmp_path / "ck")
    first.fit(_source(path))
    time.sleep(0.01)
    copy = Path(shutil.copy(path, tmp_path / "b" / "u.parquet"))  # new name, mtime
    counter = CountBatches()
    FiBiNETClassifier(
        **params, checkpoint_dir=tmp_path / "ck", callbacks=[counter]
    ).fit(_source(copy))
    assert counter.n_batches == 0  # restored: the file's path is not fingerprinted
    other = _write(tmp_path / "b" / "v.parquet", seed=1)
    FiBiNETClassifier(**params, checkpoint_dir=tmp_path / "ck").fit(_source(other))
    FiBiNETClassifier(**params, checkpoint_dir=tmp_path / "ck").fit(
        _source(path, shuffle_buffer=600)  # trains on another order
    )
    assert len(list((tmp_path / "ck").glob("fit-*.pt"))) == 3


def test_same_metadata_other_contents_is_refused(tmp_path, monkeypatch):
    """Data that the Parquet metadata cannot tell apart: the digest of the
    first pass's statistics, stored in the checkpoint, can."""
    from sk_fibinet.data import stream_checkpoint as _stream_checkpoint

    monkeypatch.setattr(
        _stream_checkpoint, "source_fingerprint", lambda model, source: "0" * 32
    )
    params = dict(STREAM_PARAMS, max_epochs=1, checkpoint_dir=tmp_path)
    FiBiNETClassifier(**params).fit(_source(_write(tmp_path / "a.parquet")))
    other = _write(tmp_path / "b.parquet", seed=1)
    with pytest.raises(ValueError, match=r"fit-0+\.pt.*other contents.*delete it"):
        FiBiNETClassifier(**params).fit(_source(other))


def test_checkpoint_every_n_batches_is_checked(tmp_path):
    path = _write(tmp_path / "t.parquet", n_rows=300)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="checkpoint_every_n_batches must be"):
            ParquetSource(path, target="target", checkpoint_every_n_batches=bad)
