"""Data sources of the training engine: a frame in memory, one chunk.

A source answers the questions of :func:`~sk_fibinet.training.engine.train` (see its
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
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_consistent_length,
)

from ..nn.fibinet import code_counts
from ..preprocessing.categories import (
    OTHER_CODE,
    category_counts,
    resolve_categorical_mask,
)
from ..preprocessing.encoding import FieldEncoder
from ..preprocessing.target_selection import (
    PairSketch,
    candidate_pairs,
    select_columns,
)
from ..preprocessing.target_stats import TargetStatistics
from ..training import checkpoint as _checkpoint
from ..training.engine import Encoded
from ..training.net import _CodesDataset


class UnknownCategoryWarning(UserWarning):
    """A later ``partial_fit`` chunk holds categories outside the vocabulary.

    Columns without ``hash_buckets`` keep the vocabulary of the data the
    estimator was first fitted on; their other values share the "other" code
    and get no embedding of their own.
    """


def make_encoder(model, *, is_frame: bool, n_statistics: int = 0) -> FieldEncoder:
    """The (unfitted) field encoder of ``model``'s parameters.

    Parameters
    ----------
    model : BaseFiBiNET
        The estimator whose encoding parameters apply.
    is_frame : bool
        Whether the data are a DataFrame (or a Parquet source); on an array,
        ``categorical_features="auto"`` means every column is numeric.
    n_statistics : int, default=0
        Numeric target-statistic columns appended after the input columns
        (:func:`with_statistics`); a boolean ``categorical_features`` mask is
        extended to them.

    Returns
    -------
    encoder : FieldEncoder
    """
    categorical = model.categorical_features
    if n_statistics and _is_bool_mask(categorical):
        categorical = np.concatenate(
            [np.asarray(categorical, dtype=bool), np.zeros(n_statistics, dtype=bool)]
        )
    encoder = FieldEncoder(
        categorical_features=categorical,
        min_frequency=model.min_frequency,
        n_bins=model.n_bins,
        hash_buckets=model.hash_buckets,
    )
    if not is_frame and isinstance(model.categorical_features, str):
        encoder.categorical_features = None  # "auto" on an array: numeric
    return encoder


def _is_bool_mask(value) -> bool:
    if value is None or isinstance(value, str):
        return False
    array = np.asarray(value)
    return array.dtype == bool and array.ndim == 1


# ------------------------------------------------------------ target statistics
def plan_statistics(model, frame, seed: int):
    """The target statistics ``model.target_stats`` asks for on ``frame``, or None.

    ``frame`` holds the training rows (the held-out rows left out). Under
    ``target_stats="auto"`` the categorical columns and column pairs are chosen
    by :func:`~sk_fibinet.preprocessing.target_selection.select_columns` (more
    than 50 distinct values, at least half of the rows sharing their value
    with another row; a pair must refine both of its columns; at most 12
    pairs). Only DataFrame columns qualify.

    Returns
    -------
    statistics : TargetStatistics or None
        Not yet updated with any rows; None when no column qualifies.
    """
    if model.target_stats is None or not isinstance(frame, pd.DataFrame):
        return None
    names = [str(c) for c in frame.columns]
    mask = resolve_categorical_mask(
        model.categorical_features, list(frame.columns), list(frame.dtypes), True
    )
    counts = {
        name: category_counts(frame.iloc[:, j])
        for j, (name, is_cat) in enumerate(zip(names, mask, strict=True))
        if is_cat
    }
    if not counts:
        return None
    columns, _ = select_columns(counts, len(frame))
    pairs = candidate_pairs(columns)
    summary = None
    if pairs:
        sketch = PairSketch(pairs)
        sketch.update(frame)
        summary = sketch.summary()
    columns, pairs = select_columns(counts, len(frame), summary)
    if not columns and not pairs:
        return None
    return TargetStatistics(columns, pairs, seed=seed)


def add_held_out_rows(statistics, held) -> None:
    """Update ``statistics`` with held-out rows, once early stopping is done.

    ``held`` is a list of ``(frame, target, weight, positions)``, the rows left
    out of the statistics while they decided early stopping.
    """
    for frame, target, weight, positions in held:
        statistics.update(frame, target, weight=weight, positions=positions)


def with_statistics(frame, names, values) -> pd.DataFrame:
    """``frame`` with the statistic columns ``names`` (values ``(n, k)``) appended."""
    clash = [n for n in names if n in set(map(str, frame.columns))]
    if clash:
        raise ValueError(
            f"X has columns named like target statistics ({clash}); rename them "
            "or set target_stats=None."
        )
    stats = pd.DataFrame(np.asarray(values, dtype=np.float64), columns=names)
    stats.index = frame.index
    return pd.concat([frame, stats], axis=1)


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
        statistics.update(
            train_frame,
            model._statistics_target(self.target[rows]),
            weight=self.weight[rows],
            positions=positions,
        )
        values = np.empty((len(frame), len(statistics.feature_names_)))  # (n, k)
        values[rows] = statistics.out_of_fold(train_frame, positions).to_numpy()
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
