"""Data sources of the training engine: a frame in memory, one chunk.

A source answers the questions of :func:`~sk_fibinet._engine.train` (see its
module docstring): ``check``, ``n_rows``, ``can_hold_out``, ``epochs``,
``open_checkpoint`` and ``encode``. :class:`FrameSource` is ``fit(X, y)``,
:class:`ChunkSource` one ``partial_fit`` call; the Parquet source is
``_streaming.StreamSource``. The encoder of every source is built by
:func:`make_encoder`, so every path honours the same parameters.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_consistent_length,
)

from . import _checkpoint
from ._encoding import OTHER_CODE, FieldEncoder
from ._engine import Encoded
from ._network import code_counts
from ._skorch import _CodesDataset


class UnknownCategoryWarning(UserWarning):
    """A later ``partial_fit`` chunk holds categories outside the vocabulary.

    Columns without ``hash_buckets`` keep the vocabulary of the data the
    estimator was first fitted on; their other values share the "other" code
    and get no embedding of their own.
    """


def make_encoder(model, *, is_frame: bool) -> FieldEncoder:
    """The (unfitted) field encoder of ``model``'s parameters.

    Parameters
    ----------
    model : BaseFiBiNET
        The estimator whose encoding parameters apply.
    is_frame : bool
        Whether the data are a DataFrame (or a Parquet source); on an array,
        ``categorical_features="auto"`` means every column is numeric.

    Returns
    -------
    encoder : FieldEncoder
    """
    encoder = FieldEncoder(
        categorical_features=model.categorical_features,
        min_frequency=model.min_frequency,
        n_bins=model.n_bins,
        hash_buckets=model.hash_buckets,
    )
    if not is_frame and isinstance(model.categorical_features, str):
        encoder.categorical_features = None  # "auto" on an array: numeric
    return encoder


def _target_weight(target, weight) -> torch.Tensor:
    return torch.from_numpy(
        np.column_stack([target, weight]).astype(np.float32)
    )  # (n, 2)


def _raw_fingerprint(X) -> torch.Tensor:
    """Row hashes ``(n,)`` of the raw data, with its columns and dtypes hashed in."""
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()  # (n,)
    meta = pd.util.hash_pandas_object(
        pd.Series([repr((str(c), str(d))) for c, d in frame.dtypes.items()]),
        index=False,
    ).to_numpy()  # (n_columns,)
    return torch.from_numpy(np.concatenate([meta, rows]).view(np.int64))  # (n + c,)


class FrameSource:
    """``fit(X, y, sample_weight)``: rows in memory, a stratified hold-out."""

    can_hold_out = True
    epochs = None  # max_epochs, or until early stopping

    def __init__(self, X, y, sample_weight=None):
        self.X, self.y, self.sample_weight = X, y, sample_weight

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
        self.frame, self.target = X, target
        self.target_weight = _target_weight(target, weight)  # (n, 2)
        self.n_rows = int(self.target_weight.shape[0])

    def open_checkpoint(self, model, seed: int, processes):
        if processes is None and model.checkpoint_dir is None:
            return None
        fingerprint = _checkpoint.fingerprint(
            model, _raw_fingerprint(self.frame), self.target_weight
        )
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
        encoder = make_encoder(model, is_frame=isinstance(self.frame, pd.DataFrame))
        codes = torch.from_numpy(encoder.fit_transform(self.frame))  # (n, F) int64
        target_weight = self.target_weight
        everything = _CodesDataset(codes, target_weight)
        train, valid = everything, None
        if hold_out:
            tr, va = self._split(model, seed)
            train = _CodesDataset(codes[tr], target_weight[tr])
            valid = _CodesDataset(codes[va], target_weight[va])
        counts = code_counts(train.codes, encoder.cardinalities_)  # (R,)
        return Encoded(
            encoder=encoder,
            train=train,
            n_train=len(train),
            valid=valid,
            kept=_CodesDataset(codes),
            explain_rows=train,
            centre_rows=train,
            counts=lambda: counts,
        )

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


def _is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask collection (without importing dask)."""
    return type(X).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(
        X, "__dask_graph__"
    )


class ChunkSource:
    """One ``partial_fit`` call: one pass over a chunk, nothing held out.

    The first call (on an estimator never fitted) learns the encoder and the
    targets' encoding from the chunk; later calls keep them.
    """

    can_hold_out = False
    epochs = 1

    def __init__(self, X, y, *, classes=None, sample_weight=None):
        self.X, self.y = X, y
        self.classes, self.sample_weight = classes, sample_weight

    def check(self, model, *, first: bool) -> None:
        if _is_dask_collection(self.X) or _is_dask_collection(self.y):
            raise TypeError(
                "partial_fit takes in-memory chunks (pandas or NumPy), got a Dask "
                "collection. Train on it with dask_ml.wrappers.Incremental("
                "estimator).fit(X, y, classes=...), which calls partial_fit on "
                "every partition (pip install sk_fibinet[dask])."
            )
        if model.distributed:
            raise ValueError(
                "partial_fit does not train data-parallel: with distributed=True "
                "each process would train its own copy on its own chunk. Use fit "
                "under torchrun, or set distributed=False and feed the chunks to "
                "one process."
            )
        X = model._validate_X(self.X, reset=first)
        self.first = first
        if not first and X.shape[0] == 0 and self.y is not None:
            if _num_samples(self.y) == 0:
                self.n_rows = 0  # an empty partition: nothing to learn
                return
        y = model._validate_y(self.y)
        check_consistent_length(X, y)
        weight = _check_sample_weight(
            self.sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        # Weights are not normalised per chunk: chunks keep their relative weight.
        target, weight = model._partial_fit_targets(
            y, weight, first=first, classes=self.classes
        )
        if not weight.sum() > 0:
            raise ValueError(f"{model._weight_name} sums to zero in this chunk.")
        self.frame = X
        self.target_weight = _target_weight(target, weight)  # (n, 2)
        self.n_rows = int(self.target_weight.shape[0])

    def open_checkpoint(self, model, seed: int, processes):
        return None  # partial_fit writes no checkpoint

    def encode(self, model, *, seed: int, hold_out: bool, checkpoint) -> Encoded:
        if self.first:
            encoder = make_encoder(model, is_frame=isinstance(self.frame, pd.DataFrame))
            codes = encoder.fit_transform(self.frame)  # (n, F) int64
        else:
            encoder = model.encoder_
            codes = encoder.transform(self.frame)  # (n, F) int64
            _warn_unknown(encoder, codes)
        codes = torch.from_numpy(codes)  # (n, F)
        dataset = _CodesDataset(codes, self.target_weight)
        # embedding_l2 of a new net scales by the first chunk's counts
        counts = code_counts(codes, encoder.cardinalities_)  # (R,)
        return Encoded(
            encoder=encoder,
            train=dataset,
            n_train=len(dataset),
            valid=None,
            kept=dataset,
            explain_rows=dataset,
            centre_rows=None,
            counts=lambda: counts,
        )


def _warn_unknown(encoder, codes: np.ndarray) -> None:
    """Warn when exactly-encoded columns of a later chunk hit the "other" code."""
    hashed = getattr(encoder, "hash_buckets_", None) or [None] * codes.shape[1]
    counts = {
        name: int(np.count_nonzero(codes[:, j] == OTHER_CODE))
        for j, (name, vocab, buckets) in enumerate(
            zip(encoder.column_names_, encoder.vocabularies_, hashed, strict=True)
        )
        if vocab is not None and buckets is None
    }
    counts = {name: n for name, n in counts.items() if n}
    if counts:
        listed = ", ".join(f"{name!r}: {n}" for name, n in counts.items())
        warnings.warn(
            "partial_fit: categories outside the vocabulary fixed when the "
            "estimator was first fitted (unseen then, or rarer than "
            "min_frequency) share the 'other' code in this chunk of "
            f"{len(codes)} rows; rows per column: {listed}. Give such columns "
            "hash_buckets to learn new categories.",
            UnknownCategoryWarning,
            stacklevel=6,  # _warn_unknown, encode, train, partial_fit, its wrapper
        )
