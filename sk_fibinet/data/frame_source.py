"""``fit(X, y)``: the data source of rows in memory.

:class:`FrameSource` answers the questions of
:func:`~sk_fibinet.training.engine.train` (see its module docstring) for a frame
or array in memory: it validates the rows, fingerprints them for checkpoints and
processes, holds rows out (stratified, or by whole groups), adds the target
statistics and encodes every row at once.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils.validation import _check_sample_weight, check_consistent_length

from ..nn.embedding import code_counts
from ..training import checkpoint as _checkpoint
from ..training.engine import Encoded
from ..training.net import _CodesDataset
from .features import (
    _target_weight,
    gate_statistics,
    make_encoder,
    plan_statistics,
    with_statistics,
)
from .held_out import add_held_out_rows, first_half


def _raw_fingerprint(X) -> torch.Tensor:
    """Row hashes ``(n,)`` of the raw data, with its columns and dtypes hashed in."""
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()  # (n,)
    meta = pd.util.hash_pandas_object(
        pd.Series([repr((str(c), str(d))) for c, d in frame.dtypes.items()]),
        index=False,
    ).to_numpy()  # (n_columns,)
    return torch.from_numpy(np.concatenate([meta, rows]).view(np.int64))  # (n + c,)


def _group_codes(groups, n_rows: int) -> np.ndarray:
    """``groups`` as int64 codes ``(n,)``, one per distinct label (missing too)."""
    values = np.asarray(groups, dtype=object)
    if values.ndim != 1 or len(values) != n_rows:
        raise ValueError(
            f"groups must be one label per row of X: expected shape ({n_rows},), "
            f"got {values.shape}."
        )
    codes, _ = pd.factorize(pd.Series(values), use_na_sentinel=False)  # (n,)
    return codes.astype(np.int64)


class FrameSource:
    """``fit(X, y, sample_weight, groups)``: rows in memory, a stratified
    hold-out (or one by whole groups)."""

    can_hold_out = True
    epochs = None  # max_epochs, or until early stopping

    def __init__(self, X, y, sample_weight=None, groups=None):
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.groups = groups

    def check(self, model, *, first: bool = True) -> None:
        X = model._validate_X(self.X, reset=True)
        y = model._validate_y(self.y)
        check_consistent_length(X, y)
        weight = _check_sample_weight(
            self.sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        target, weight = model._prepare_targets(y, weight)
        if not weight.sum() > 0:
            raise ValueError(f"{model._weight_name} sums to zero.")
        weight = weight / weight.mean()
        self.frame, self.target, self.weight = X, target, weight
        self.target_weight = _target_weight(target, weight)  # (n, 2)
        self.n_rows = int(self.target_weight.shape[0])
        self.group_codes = None
        if self.groups is not None:
            self.group_codes = _group_codes(self.groups, self.n_rows)  # (n,)

    def open_checkpoint(self, model, seed: int, processes):
        if processes is None and model.checkpoint_dir is None:
            return None
        raw = _raw_fingerprint(self.frame)  # (n + c,)
        if self.group_codes is not None:  # another grouping, another split
            raw = torch.cat([raw, torch.from_numpy(self.group_codes)])
        fingerprint = _checkpoint.fingerprint(model, raw, self.target_weight)
        if processes is not None:
            processes.check_same(fingerprint)
        if model.checkpoint_dir is None:
            return None
        return _checkpoint.open_checkpoint(
            model,
            model.checkpoint_dir,
            fingerprint,
            seed,
            processes,
            every_n_batches=model._checkpoint_every_n_batches,
        )

    def encode(self, model, *, seed: int, hold_out: bool, checkpoint) -> Encoded:
        frame, target_weight = self.frame, self.target_weight
        tr = va = None
        if hold_out:
            tr, va = self._split(model, seed)
        frame, model.target_stats_ = self._with_statistics(model, seed, tr, va)
        n_statistics = 0
        if model.target_stats_ is not None:
            n_statistics = len(model.target_stats_.feature_names_)
        encoder = make_encoder(
            model, is_frame=isinstance(frame, pd.DataFrame), n_statistics=n_statistics
        )
        codes = torch.from_numpy(encoder.fit_transform(frame))  # (n, F) int64
        everything = _CodesDataset(codes, target_weight)
        train, valid = everything, None
        if hold_out:
            train = _CodesDataset(codes[tr], target_weight[tr])
            valid = _CodesDataset(codes[va], target_weight[va])
        return Encoded(
            encoder=encoder,
            train=train,
            n_train=len(train),
            valid=valid,
            kept=_CodesDataset(codes),
            explain_rows=train,
            centre_rows=train,
            # counted once, when first asked: derived fields may be added first
            counts=functools.cache(
                lambda: code_counts(train.codes, encoder.cardinalities_)  # (R,)
            ),
            evidence=(
                train,
                first_half(
                    np.arange(len(codes))[tr] if hold_out else np.arange(len(codes)),
                    seed,
                ),
            ),
            finish=self._add_held_out_statistics,
        )

    def _add_held_out_statistics(self, model) -> None:
        """Give the target statistics the held-out rows' targets as well.

        They were left out while those rows decided early stopping (their
        statistics then came from the training rows only); prediction uses
        every row. On Book-Crossing, where most users and books have a few
        rows each, adding the 10 % held out raised ROC AUC by 0.013 (3 seeds).
        """
        held, self._held_out = getattr(self, "_held_out", []), []
        statistics = model.target_stats_
        if not held or statistics is None:
            return
        add_held_out_rows(statistics, held)
        statistics.rows_seen_ += sum(len(frame) for frame, *_ in held)

    def _with_statistics(self, model, seed: int, tr, va):
        """The frame with out-of-fold statistics for the training rows and
        statistics of the training rows for the held-out ones; and those
        statistics (None when ``target_stats`` adds none)."""
        frame = self.frame
        if model.target_stats is None or not isinstance(frame, pd.DataFrame):
            return frame, None
        train_frame = frame if tr is None else frame.iloc[tr.numpy()]
        statistics = plan_statistics(model, train_frame, seed)
        if statistics is None:
            return frame, None
        rows = slice(None) if tr is None else tr.numpy()
        # a row's fold is a hash of its position, or of its group: then no row's
        # statistic counts the other rows of its group (one impression's
        # candidates, say, whose labels are related)
        positions = np.arange(len(train_frame))
        if self.group_codes is not None:
            positions = self.group_codes[rows]  # (n_train,)
        target = model._statistics_target(self.target[rows])
        weight = self.weight[rows]
        statistics.update(train_frame, target, weight=weight, positions=positions)
        oof = statistics.out_of_fold(train_frame, positions).to_numpy()  # (n_train, k)
        kept = gate_statistics(model, statistics, oof, target, weight, positions)
        if kept is None:
            return frame, None
        values = np.empty((len(frame), len(kept)))  # (n, k)
        values[rows] = oof[:, kept]
        if va is not None:
            va = va.numpy()
            values[va] = statistics.transform(frame.iloc[va]).to_numpy()
            positions = len(train_frame) + np.arange(len(va))  # (n_valid,)
            if self.group_codes is not None:
                positions = self.group_codes[va]
            self._held_out = [
                (
                    frame.iloc[va],
                    model._statistics_target(self.target[va]),
                    self.weight[va],
                    positions,
                )
            ]
        statistics.rows_seen_ = len(train_frame)
        return with_statistics(frame, statistics.feature_names_, values), statistics

    def _split(self, model, seed: int):
        """Sorted training and validation row indices, stratified if possible."""
        n_samples = self.n_rows
        n_valid = int(np.ceil(model.validation_fraction * n_samples))
        if n_valid < 1 or n_samples - n_valid < 1:
            raise ValueError(
                f"validation_fraction={model.validation_fraction} leaves no "
                f"training or validation data for {n_samples} samples; use "
                "early_stopping=False."
            )
        if self.group_codes is not None:
            return self._group_split(model, seed)
        try:
            tr, va = train_test_split(
                np.arange(n_samples),
                test_size=model.validation_fraction,
                stratify=model._stratify(self.target),
                random_state=seed,
            )
        except ValueError:  # too few samples per class to stratify
            tr, va = train_test_split(
                np.arange(n_samples),
                test_size=model.validation_fraction,
                random_state=seed,
            )
        return torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))

    def _group_split(self, model, seed: int):
        """Sorted training and validation row indices, whole groups each side."""
        n_groups = int(self.group_codes.max()) + 1
        if n_groups < 2:
            raise ValueError(
                "groups has a single group: the early-stopping rows are held out "
                "by whole groups, so at least two are needed; use "
                "early_stopping=False or pass more groups."
            )
        splitter = GroupShuffleSplit(
            n_splits=1, test_size=model.validation_fraction, random_state=seed
        )
        rows = np.arange(self.n_rows)
        tr, va = next(splitter.split(rows, groups=self.group_codes))
        return torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
