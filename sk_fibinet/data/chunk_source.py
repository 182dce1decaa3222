"""``partial_fit``: the data source of one chunk, one pass, nothing held out.

:class:`ChunkSource` answers the questions of
:func:`~sk_fibinet.training.engine.train` for one ``partial_fit`` call; the
first call learns the encoder, later ones keep it and warn
(:class:`UnknownCategoryWarning`) when their categories fall outside it.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_consistent_length,
)

from ..nn.embedding import code_counts
from ..preprocessing.categories import OTHER_CODE
from ..training.engine import Encoded
from ..training.net import _CodesDataset
from .features import (
    _target_weight,
    gate_statistics,
    make_encoder,
    plan_statistics,
    with_statistics,
)
from .held_out import first_half


class UnknownCategoryWarning(UserWarning):
    """A later ``partial_fit`` chunk holds categories outside the vocabulary.

    Columns without ``hash_buckets`` keep the vocabulary of the data the
    estimator was first fitted on; their other values share the "other" code
    and get no embedding of their own.
    """


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
        self.frame, self.target, self.weight = X, target, weight
        self.target_weight = _target_weight(target, weight)  # (n, 2)
        self.n_rows = int(self.target_weight.shape[0])

    def open_checkpoint(self, model, seed: int, processes):
        return None  # partial_fit writes no checkpoint

    def _with_statistics(self, model, seed: int):
        """The chunk with its target statistics. The first chunk gets its
        out-of-fold statistics; a later one the statistics of the chunks before
        it (ordered statistics, as CatBoost's: a row's own target never enters
        its value), then its rows are added to them."""
        frame = self.frame
        statistics = (
            plan_statistics(model, frame, seed)
            if self.first
            else getattr(model, "target_stats_", None)
        )
        if statistics is None:
            return frame, None
        start = getattr(statistics, "rows_seen_", 0)
        positions = np.arange(start, start + len(frame))
        if not self.first:
            values = statistics.transform(frame).to_numpy()  # (n, k)
        statistics.update(
            frame,
            model._statistics_target(self.target),
            weight=self.weight,
            positions=positions,
        )
        if self.first:
            values = statistics.out_of_fold(frame, positions).to_numpy()  # (n, k)
            kept = gate_statistics(
                model,
                statistics,
                values,
                model._statistics_target(self.target),
                self.weight,
                positions,
            )
            if kept is None:
                return frame, None
            values = values[:, kept]  # (n, k kept)
        statistics.rows_seen_ = start + len(frame)
        return with_statistics(frame, statistics.feature_names_, values), statistics

    def encode(self, model, *, seed: int, hold_out: bool, checkpoint) -> Encoded:
        frame, statistics = self._with_statistics(model, seed)
        if self.first:
            model.target_stats_ = statistics
            n_statistics = 0
            if statistics is not None:
                n_statistics = len(statistics.feature_names_)
            encoder = make_encoder(
                model,
                is_frame=isinstance(frame, pd.DataFrame),
                n_statistics=n_statistics,
            )
            codes = encoder.fit_transform(frame)  # (n, F) int64
        else:
            encoder = model.encoder_
            codes = encoder.transform(frame)  # (n, F) int64
            _warn_unknown(encoder, codes)
        codes = torch.from_numpy(codes)  # (n, F)
        dataset = _CodesDataset(codes, self.target_weight)
        return Encoded(
            encoder=encoder,
            train=dataset,
            n_train=len(dataset),
            valid=None,
            kept=dataset,
            explain_rows=dataset,
            centre_rows=None,
            # embedding_l2 of a new net scales by the first chunk's counts,
            # counted once, when first asked: derived fields may be added first
            counts=functools.cache(
                lambda: code_counts(dataset.codes, encoder.cardinalities_)  # (R,)
            ),
            evidence=(dataset, first_half(np.arange(len(dataset)), seed))
            if self.first
            else None,
        )


def _warn_unknown(encoder, codes: np.ndarray) -> None:
    """Warn when exactly-encoded columns of a later chunk hit the "other" code."""
    n_columns = len(encoder.column_names_)  # the derived fields have no vocabulary
    hashed = getattr(encoder, "hash_buckets_", None) or [None] * n_columns
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
