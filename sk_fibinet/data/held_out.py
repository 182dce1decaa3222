"""The held-out rows, and the target statistics they get.

A fit on a :class:`~sk_fibinet.data.parquet.ParquetSource` holds out the rows
whose seeded hash of the row position (``_uniform_hash``) falls below the
validation fraction, so the same rows are held out in every pass and every
epoch (an in-memory fit splits in ``FrameSource._split``).

While the held-out rows decide early stopping, a training row gets its
out-of-fold target statistics and a held-out row those of the training rows
(``_statistic_values``); once that is done they join the statistics
(:func:`add_held_out_rows`), so that prediction uses every row, as a fit
without early stopping does.
"""

from __future__ import annotations

import numpy as np


def _uniform_hash(positions: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) for every row position.

    SplitMix64 of the position mixed with the seed: the same (position, seed)
    gives the same number in any order and on any machine.
    """
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53  # (n,)


def first_half(positions: np.ndarray, seed: int) -> np.ndarray:
    """``(n,)`` bool: the rows whose position falls in the first of two seeded
    halves, the halves ``cross_pairs="auto"`` learns on and scores on (a hash of
    the position, apart from the validation split's, so that a stream and a
    frame of the same rows cut them alike)."""
    return _uniform_hash(np.asarray(positions), seed + 0x5EED) < 0.5


def _statistic_values(statistics, frame, positions, train) -> np.ndarray:
    """``(n, k)`` statistics of ``frame``'s rows: out of fold for a training
    row (``train`` true), of the training rows for a held-out one."""
    values = np.empty((len(frame), len(statistics.feature_names_)))  # (n, k)
    if train.any():
        oof = statistics.out_of_fold(frame[train], positions[train])
        values[train] = oof.to_numpy()
    if not train.all():
        values[~train] = statistics.transform(frame[~train]).to_numpy()
    return values


def add_held_out_rows(statistics, held) -> None:
    """Update ``statistics`` with held-out rows, once early stopping is done.

    ``held`` is a list of ``(frame, target, weight, positions)``, the rows left
    out of the statistics while they decided early stopping.
    """
    for frame, target, weight, positions in held:
        statistics.update(frame, target, weight=weight, positions=positions)
