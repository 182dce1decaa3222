"""Checkpoints: a fit killed part-way resumes and ends with the same model."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model, save_model

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fit_worker import (  # noqa: E402
    CHECKPOINT_PARAMS,
    CHECKPOINT_ROWS,
    STALL_EPOCH,
    CountBatches,
    Fail,
    checkpoint_file,
    kill_at_stall,
)
from conftest import FAST, make_mixed  # noqa: E402


def test_fit_killed_mid_epoch_resumes_to_the_uninterrupted_model(tmp_path):
    X, y = make_mixed(CHECKPOINT_ROWS, seed=0)
    kill_at_stall("checkpoint", tmp_path)  # in the middle of epoch STALL_EPOCH
    state = torch.load(checkpoint_file(tmp_path), weights_only=True)
    assert (state["epochs_done"], state["batches_done"]) == (STALL_EPOCH - 1, 0)
    assert not state["finished"]

    counter = CountBatches()
    resumed = FiBiNETClassifier(
        **CHECKPOINT_PARAMS, checkpoint_dir=tmp_path, callbacks=[counter]
    ).fit(X, y)
    uninterrupted = FiBiNETClassifier(**CHECKPOINT_PARAMS).fit(X, y)
    # the resumed fit trained only the epochs after the checkpoint
    n_batches = len(uninterrupted.net_.history[-1, "batches"])
    assert 0 < counter.n_batches
    assert counter.n_batches <= (uninterrupted.n_iter_ - STALL_EPOCH + 1) * n_batches
    assert resumed.n_iter_ == uninterrupted.n_iter_
    assert resumed.temperature_ == uninterrupted.temperature_
    assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
    for a, b in zip(resumed.net_.history, uninterrupted.net_.history, strict=True):
        assert a["train_loss"] == b["train_loss"]
        assert a.get("valid_loss_calibrated") == b.get("valid_loss_calibrated")


@pytest.mark.parametrize("Estimator", [FiBiNETClassifier, FiBiNETRegressor])
def test_resume_within_an_epoch_from_a_batch_checkpoint(Estimator, tmp_path):
    """The every-N-batches hook (for streaming fits) resumes mid-epoch exactly."""
    X, y = make_mixed(1200, seed=0)
    if Estimator is FiBiNETRegressor:
        y = y + X["amount"].to_numpy()
    params = dict(FAST, max_epochs=4, n_iter_no_change=3)
    interrupted = Estimator(
        **params, checkpoint_dir=tmp_path, callbacks=[("fail", Fail(2, 7))]
    )
    interrupted._checkpoint_every_n_batches = 5
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(X, y)
    state = torch.load(checkpoint_file(tmp_path), weights_only=True)
    assert (state["epochs_done"], state["batches_done"]) == (1, 5)

    resumed = Estimator(**params, checkpoint_dir=tmp_path)
    resumed._checkpoint_every_n_batches = 5
    resumed.fit(X, y)
    uninterrupted = Estimator(**params).fit(X, y)
    assert_array_equal(resumed.predict(X), uninterrupted.predict(X))
    assert [h["train_loss"] for h in resumed.net_.history] == [
        h["train_loss"] for h in uninterrupted.net_.history
    ]


def test_a_finished_fit_is_restored_without_training(tmp_path):
    X, y = make_mixed(600, seed=0)
    first = FiBiNETClassifier(**FAST, checkpoint_dir=tmp_path).fit(X, y)
    counter = CountBatches()
    again = FiBiNETClassifier(
        **FAST, checkpoint_dir=str(tmp_path), callbacks=[counter]
    ).fit(X, y)
    assert counter.n_batches == 0
    assert again.n_iter_ == first.n_iter_
    assert_array_equal(again.predict_proba(X), first.predict_proba(X))
    assert torch.load(checkpoint_file(tmp_path), weights_only=True)["finished"]


def test_other_data_or_parameters_get_a_file_of_their_own(tmp_path):
    X, y = make_mixed(400, seed=0)
    params = dict(FAST, max_epochs=2, checkpoint_dir=tmp_path)
    FiBiNETClassifier(**params).fit(X, y)
    FiBiNETClassifier(**params).fit(X, 1 - y)
    FiBiNETClassifier(**dict(params, learning_rate=0.02)).fit(X, y)
    FiBiNETClassifier(**params, verbose=0, device="cpu").fit(X, y)  # same fit
    assert len(list(tmp_path.glob("fit-*.pt"))) == 3
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_a_damaged_checkpoint_is_refused_with_its_name(tmp_path):
    X, y = make_mixed(300, seed=0)
    params = dict(FAST, max_epochs=1, checkpoint_dir=tmp_path)
    FiBiNETClassifier(**params).fit(X, y)
    path = checkpoint_file(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])  # a truncated file
    with pytest.raises(ValueError, match=f"{path.name}.*delete it"):
        FiBiNETClassifier(**params).fit(X, y)


def test_a_checkpointed_fit_pickles_saves_and_clones(tmp_path):
    from sklearn.base import clone

    X, y = make_mixed(300, seed=0)
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2), checkpoint_dir=tmp_path)
    clf.fit(X, y)
    names = [name for name, _ in clf.net_.callbacks_]
    assert "checkpoint" not in names  # a later net.partial_fit writes nothing
    proba = clf.predict_proba(X)
    assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.checkpoint_dir == str(tmp_path)
    assert_array_equal(loaded.predict_proba(X), proba)
    assert clone(clf).get_params()["checkpoint_dir"] == tmp_path
    assert np.isfinite(proba).all()


def test_a_resumed_fit_follows_its_learning_rate_schedule(tmp_path):
    # StepLR halves the learning rate after every epoch; after a resume the
    # restored optimizer must still pass the scheduler's rates to the dense
    # parameters (the embedding tables take their own path)
    from skorch.callbacks import LRScheduler
    from torch.optim.lr_scheduler import StepLR

    X, y = make_mixed(600, seed=0)
    params = dict(FAST, max_epochs=4, n_iter_no_change=4)

    def schedule():
        return ("lr", LRScheduler(StepLR, step_size=1, gamma=0.5))

    interrupted = FiBiNETClassifier(
        **params, checkpoint_dir=tmp_path, callbacks=[schedule(), ("fail", Fail(3, 2))]
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(X, y)
    assert torch.load(checkpoint_file(tmp_path), weights_only=True)["epochs_done"] == 2
    resumed = FiBiNETClassifier(
        **params, checkpoint_dir=tmp_path, callbacks=[schedule()]
    ).fit(X, y)
    uninterrupted = FiBiNETClassifier(**params, callbacks=[schedule()]).fit(X, y)
    dense = resumed.net_.optimizer_._dense.param_groups[0]["lr"]
    assert dense == uninterrupted.net_.optimizer_._dense.param_groups[0]["lr"]
    assert [h["train_loss"] for h in resumed.net_.history] == [
        h["train_loss"] for h in uninterrupted.net_.history
    ]
    assert_array_equal(resumed.predict_proba(X), uninterrupted.predict_proba(X))
