"""The encoder's input as every data source builds it from the model's parameters.

The field encoder (:func:`make_encoder`), the target statistics asked for
(:func:`plan_statistics`, chosen on the training rows), the frame with their
columns appended (:func:`with_statistics`) and the rows' target and weight as
one tensor (``_target_weight``): the in-memory, chunk and Parquet sources all
build them here, so every training path honours the same parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..preprocessing.categories import category_counts, resolve_categorical_mask
from ..preprocessing.cross_fitting import assign_folds
from ..preprocessing.encoding import FieldEncoder
from ..preprocessing.target_evidence import MIN_GAIN, held_out_gain
from ..preprocessing.target_selection import (
    PairSketch,
    candidate_pairs,
    select_columns,
    selection_rule,
)
from ..preprocessing.target_stats import TargetStatistics


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
    by :func:`~sk_fibinet.preprocessing.target_stats.select_columns` (more
    than 50 distinct values, at least half of the rows sharing their value
    with another row; a pair must refine both of its columns; at most 12
    pairs; under ``"auto"`` also at least 50,000 rows and at most 50 rows per
    value; :func:`gate_statistics` then drops those without held-out
    evidence). Only DataFrame columns qualify.

    Returns
    -------
    statistics : TargetStatistics or None
        Not yet updated with any rows; None when no column qualifies.
    """
    if model.target_stats is None or not isinstance(frame, pd.DataFrame):
        return None
    rule = selection_rule(model.target_stats)
    if len(frame) < rule.get("min_rows", 0):
        return None  # "auto" on a small table: nothing to count
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
    columns, _ = select_columns(counts, len(frame), **rule)
    pairs = candidate_pairs(columns)
    summary = None
    if pairs:
        sketch = PairSketch(pairs)
        sketch.update(frame)
        summary = sketch.summary()
    columns, pairs = select_columns(counts, len(frame), summary, **rule)
    if not columns and not pairs:
        return None
    return TargetStatistics(columns, pairs, seed=seed)


def gate_statistics(model, statistics, values, target, weight, positions):
    """Under ``target_stats="auto"``, leave out the statistics without evidence.

    A column or pair is kept when the out-of-fold statistics of the training
    rows (``values``) remove at least
    :data:`~sk_fibinet.preprocessing.target_evidence.MIN_GAIN` of the squared
    error of the target's mean on held-out folds
    (:func:`~sk_fibinet.preprocessing.target_evidence.held_out_gain`; a
    multiclass source sums its classes). ``"all"`` keeps every one.

    Parameters
    ----------
    model : BaseFiBiNET
    statistics : TargetStatistics
        Updated with the training rows; :meth:`~TargetStatistics.keep` is
        applied to it.
    values : ndarray of shape (n_samples, len(statistics.feature_names_))
        The training rows' out-of-fold statistics.
    target : ndarray of shape (n_samples,) or (n_samples, n_targets)
        The target given to ``statistics.update``.
    weight : ndarray of shape (n_samples,) or None
    positions : ndarray of int of shape (n_samples,)
        The positions (or group codes) given to ``statistics.update``.

    Returns
    -------
    kept : ndarray of int or None
        The kept output columns (indices into the old ``feature_names_``); None
        when no source is kept (the fit then has no statistics).
    """
    n_out = len(statistics.feature_names_)
    if model.target_stats != "auto":
        return np.arange(n_out)
    folds = assign_folds(positions, statistics.n_folds, statistics.seed)  # (n,)
    gain = held_out_gain(values, target, weight, folds)  # (n_out,)
    names = list(statistics.feature_names_)
    by_source = {}
    for j, name in enumerate(names):
        by_source.setdefault(statistics.sources_[name], []).append(j)
    keep = [s for s, cols in by_source.items() if gain[cols].sum() >= MIN_GAIN]
    if not keep:
        return None
    statistics.keep(keep)
    return np.concatenate([by_source[s] for s in keep])


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
