"""The statistics passes of a fit on a :class:`~sk_fibinet.data.parquet.ParquetSource`.

``fit`` on a source makes two kinds of passes over it, each reading one batch
of rows at a time: these, which learn the encoding, then the epochs
(:mod:`sk_fibinet.data.stream_batches`).

The first pass learns the encoding: exact category counts per categorical
column (summed batch by batch, then turned into vocabularies by the same
:class:`~sk_fibinet.preprocessing.encoding.FieldEncoder` rules as in memory),
the numeric values of a bounded, seeded sample of rows (``bin_sample_rows``,
as HistGradientBoosting bins from a 200k-row sample) for the bin edges, and
the summaries of the targets the estimator needs (classes, target scale).

With ``target_stats="auto"`` (see :mod:`sk_fibinet.preprocessing.target_stats`)
the statistics are those of an in-memory fit on the same rows, at the cost of
one or two more passes that read only the columns they need, made when the
first pass chose some columns:

* the columns are chosen by ``select_columns`` on the first pass's category
  counts of the training rows (all counts minus those of the held-out rows,
  which the first pass also counts);
* with two or more chosen columns, a pass over those columns sketches their
  pairs (``PairSketch``, training rows only) and the pairs are chosen;
* a pass over the chosen columns and the target accumulates
  ``TargetStatistics.update`` over the training rows (the held-out ones left
  out), each row at its position in the source, the position the validation
  hash reads (so, without a hold-out, the folds of an in-memory fit). The
  first pass cannot do it: the columns, and the targets' encoding the
  statistics average, are known only at its end. The same pass keeps the bin
  sample's rows of those columns; their statistics (out-of-fold for a
  training row, of the training rows for a held-out one) give the bin edges
  of the statistic columns, as the in-memory encoder bins the out-of-fold
  values of its rows (the same values when the sample holds every row).

Memory grows with the distinct values of the chosen columns (times the folds),
not with the rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..preprocessing.binning import _numeric_values
from ..preprocessing.categories import category_counts, resolve_categorical_mask
from ..preprocessing.target_selection import (
    PairSketch,
    candidate_pairs,
    select_columns,
    selection_rule,
)
from ..preprocessing.target_stats import TargetStatistics
from ..training.engine import asks_cross_evidence
from .features import gate_statistics, make_encoder
from .held_out import _statistic_values, _uniform_hash

# Category counts of this many batches are summed at once (summing each batch
# into the running totals re-hashes the whole vocabulary every time).
_MERGE_EVERY = 16


def _merge_counts(counts: list[pd.Series]) -> pd.Series:
    """Sum category counts, first appearances first."""
    if len(counts) == 1:
        return counts[0]
    return pd.concat(counts).groupby(level=0, sort=False).sum()


def _learn_encoding(
    estimator, source, *, seed: int, valid_frac: float, statistics=None
):
    """The first pass, and the statistics passes: encoder, target summary,
    number of validation rows and target statistics.

    ``statistics``, a :class:`~sk_fibinet.data.stream_checkpoint.StatisticsDigest`
    or None, is fed every statistic learned: the summed category counts, the
    numeric sample, the target summary, the number of validation rows and the
    target statistics (see :func:`_target_statistics`).

    Returns
    -------
    encoder : FieldEncoder
    target_summary : Series
        The summed target summaries (``_targets_from_stats``).
    n_valid : int
    target_stats : TargetStatistics or None
        Updated with the training rows; None when ``target_stats`` adds none.
    held_out : list
        The held-out rows the statistics take in once fitted (see
        :func:`_target_statistics`); empty without statistics.
    sample : tuple or None
        ``(frame, positions, is_train)`` of the bin sample's rows (the input
        columns and the target), for the evidence of ``cross_pairs="auto"``;
        None when that does not apply.
    """
    names = list(source.feature_names)
    empty = source._empty_frame(names)
    mask = resolve_categorical_mask(
        estimator.categorical_features, names, list(empty.dtypes), True
    )
    for name, is_cat in zip(names, mask, strict=True):
        if not is_cat:
            _numeric_values(empty[name], name)  # a clear error for text columns
    n_rows = source.n_rows
    if n_rows <= source.bin_sample_rows:
        sample = np.arange(n_rows)
    else:
        sample = np.sort(
            np.random.default_rng(seed).choice(
                n_rows, size=source.bin_sample_rows, replace=False
            )
        )
    counts = {name: [] for name, c in zip(names, mask, strict=True) if c}
    values = {name: [] for name, c in zip(names, mask, strict=True) if not c}
    # categories of the held-out rows: target statistics choose their columns
    # on the training rows' counts (all counts minus these), as in memory
    valid_counts = (
        {name: [] for name in counts}
        if estimator.target_stats is not None and valid_frac > 0
        else None
    )
    target_stats = []
    n_valid = 0
    target = source.target
    sample_rows = [] if asks_cross_evidence(estimator, n_rows) else None
    for position, batch in source._batches([*names, target]):
        if batch.column(target).null_count:
            raise ValueError(
                f"The target column {target!r} has missing values; drop those "
                "rows or fill them."
            )
        frame = batch.to_pandas()
        y = estimator._validate_y(frame[target].to_numpy())
        target_stats.append(estimator._target_summary(y))
        lo, hi = np.searchsorted(sample, [position, position + len(frame)])
        rows = sample[lo:hi] - position
        positions = np.arange(position, position + len(frame))
        is_valid = _uniform_hash(positions, seed) < valid_frac  # (n,)
        for name in counts:
            counts[name].append(category_counts(frame[name]))
            if len(counts[name]) >= _MERGE_EVERY:
                counts[name] = [_merge_counts(counts[name])]
            if valid_counts is not None and is_valid.any():
                valid_counts[name].append(category_counts(frame[name][is_valid]))
                if len(valid_counts[name]) >= _MERGE_EVERY:
                    valid_counts[name] = [_merge_counts(valid_counts[name])]
        for name in values:
            if rows.size:
                values[name].append(_numeric_values(frame[name], name)[rows])
        if sample_rows is not None and rows.size:
            sample_rows.append((frame.iloc[rows], positions[rows], ~is_valid[rows]))
        if len(target_stats) >= _MERGE_EVERY:
            target_stats = [pd.concat(target_stats).groupby(level=0).sum()]
        n_valid += int(is_valid.sum())
    stats = [
        _merge_counts(counts[name]) if name in counts else _concat_values(values[name])
        for name in names
    ]
    if statistics is not None:
        stats = [statistics.update(stat) for stat in stats]
    target_stats = pd.concat(target_stats).groupby(level=0).sum()
    if statistics is not None:
        statistics.update(target_stats)
        statistics.update(np.array([n_valid]))
    te, held_out = None, []
    if estimator.target_stats is not None and n_rows - n_valid > 0:
        train_counts = {}
        for name in counts:
            merged = stats[names.index(name)]
            if valid_counts is not None and valid_counts[name]:
                held = _merge_counts(valid_counts[name])
                merged = merged.sub(held.reindex(merged.index, fill_value=0))
            train_counts[name] = merged
        te, te_values, held_out = _target_statistics(
            estimator,
            source,
            train_counts,
            seed=seed,
            valid_frac=valid_frac,
            n_train=n_rows - n_valid,
            targets=estimator._targets_from_stats(target_stats),
            sample=sample,
        )
        if te is not None:
            names = [*names, *te.feature_names_]
            mask = np.concatenate([mask, np.zeros(te_values.shape[1], dtype=bool)])
            stats += list(te_values.T)  # (n_sample,) per statistic column
            if statistics is not None:
                statistics.update(np.array(te.feature_names_))
                for array in te.digest_arrays():
                    statistics.update(array)
                statistics.update(te_values)
    n_statistics = 0 if te is None else len(te.feature_names_)
    encoder = make_encoder(estimator, is_frame=True, n_statistics=n_statistics)
    encoder._fit_stats(names, mask, stats)
    sample = None
    if sample_rows:
        sample = (
            pd.concat([r[0] for r in sample_rows], ignore_index=True),
            np.concatenate([r[1] for r in sample_rows]),
            np.concatenate([r[2] for r in sample_rows]),
        )
    return encoder, target_stats, n_valid, te, held_out, sample


def _training_frames(source, columns, *, seed: int, valid_frac: float):
    """``(frame, positions, is_train)`` of every record batch, in source order."""
    for position, batch in source._batches(list(columns)):
        frame = batch.to_pandas()
        positions = np.arange(position, position + len(frame))  # (n,)
        yield frame, positions, _uniform_hash(positions, seed) >= valid_frac


def _target_statistics(
    estimator, source, train_counts, *, seed, valid_frac, n_train, targets, sample
):
    """Choose and accumulate the target statistics of a streamed fit.

    The rule is :func:`~sk_fibinet.data.features.plan_statistics`'s, on the training
    rows (the held-out rows left out): the columns from the first pass's
    training counts; then, with two or more columns, one pass over those
    columns only to sketch their pairs (:class:`PairSketch`); then one pass over
    the chosen columns and the target to accumulate the statistics of the
    training rows (positions: each row's position in the source, the one the
    validation hash reads). The second pass also keeps the bin sample's rows,
    whose statistics (out-of-fold for a training row, of the training rows for
    a held-out one) are returned for the encoder's bins.

    Returns
    -------
    statistics : TargetStatistics or None
    values : ndarray of shape (n_sample, n_statistics) or None
    held : list of (DataFrame, ndarray, ndarray, ndarray)
        The held-out rows of the chosen columns with their target, weight and
        positions (at most ``max_validation_rows``), for
        :func:`~sk_fibinet.data.held_out.add_held_out_rows` once fitted.
    """
    if not train_counts:
        return None, None, []
    rule = selection_rule(estimator.target_stats)
    columns, _ = select_columns(train_counts, n_train, **rule)
    pairs = candidate_pairs(columns)
    summary = None
    if pairs:
        sketch = PairSketch(pairs)
        for frame, _, train in _training_frames(
            source, columns, seed=seed, valid_frac=valid_frac
        ):
            sketch.update(frame[train] if not train.all() else frame)
        summary = sketch.summary()
    columns, pairs = select_columns(train_counts, n_train, summary, **rule)
    if not columns and not pairs:
        return None, None, []
    statistics = TargetStatistics(columns, pairs, seed=seed)
    members = list(dict.fromkeys([*columns, *(c for p in pairs for c in p)]))
    kept, held = [], []
    for frame, positions, train in _training_frames(
        source, [*members, source.target], seed=seed, valid_frac=valid_frac
    ):
        if not len(frame):
            continue
        target, weight = targets(frame[source.target].to_numpy())
        rows = frame[members]
        if train.any():
            statistics.update(
                rows[train],
                estimator._statistics_target(target[train]),
                weight=weight[train],
                positions=positions[train],
            )
        if not train.all():  # at most max_validation_rows rows in all
            held.append(
                (
                    rows[~train],
                    estimator._statistics_target(target[~train]),
                    weight[~train],
                    positions[~train],
                )
            )
        lo, hi = np.searchsorted(sample, [positions[0], positions[-1] + 1])
        if hi > lo:
            at = sample[lo:hi] - positions[0]
            kept.append(
                (rows.iloc[at], positions[at], train[at], target[at], weight[at])
            )
    statistics.rows_seen_ = source.n_rows  # positions of a later partial_fit
    frame = pd.concat([k[0] for k in kept], ignore_index=True)
    positions, train, target, weight = (
        np.concatenate([k[i] for k in kept]) for i in range(1, 5)
    )  # (n_sample,) each (target: (n_sample,) or (n_sample, n_classes))
    values = _statistic_values(statistics, frame, positions, train)  # (n_sample, k)
    # the evidence of "auto" from the sample's training rows (every training
    # row when the sample holds them all, as in memory)
    columns = gate_statistics(
        estimator,
        statistics,
        values[train],
        estimator._statistics_target(target[train]),
        weight[train],
        positions[train],
    )
    if columns is None:
        return None, None, []
    return statistics, values[:, columns], held


def _concat_values(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(values) if values else np.empty(0)
