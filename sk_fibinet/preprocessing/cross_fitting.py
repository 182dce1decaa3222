"""The cross-fitting arithmetic of target statistics: folds and m-estimates.

Which fold a training row is in, and the statistic a row gets from the sums
accumulated per (value, fold) (:mod:`.target_sums`): out of its fold for a
training row, from all training rows for any other. :class:`.TargetStatistics`
holds the sums and calls these functions.

Folds
-----
A row's fold is ``floor(u * n_folds)`` with ``u`` a SplitMix64 hash of the row's
position in the training data (the same kind of hash as ``_uniform_hash`` in
``data/held_out.py``, which holds out validation rows), so it does not depend on
chunking or row order. The seed is salted before hashing: passing the estimator's
seed here keeps the folds independent of the validation split made with it.

The statistics
--------------
For a value with totals ``W``, ``S`` over all folds and ``W_k``, ``S_k`` in fold
``k``, a training row in fold ``k`` gets the out-of-fold m-estimate::

    (S - S_k + m * prior_k) / (W - W_k + m)

where ``prior_k`` is the weighted target mean of the training rows *outside*
fold ``k`` (as ``TargetEncoder`` does: the row's own target then never enters its
statistic, not even through the prior). Its cost: folds drawn by a hash are not
stratified, so the folds' label rates differ a little (0.497 to 0.507 on
Book-Crossing) and every out-of-fold value carries its fold's offset, a pattern
the test rows do not have; ``prior="all"`` uses one prior for all folds instead
(measured on Book-Crossing, seed 0: FiBiNet++ 0.8542 against 0.8553, no gain).
Validation and prediction rows get the full-data value
``(S + m * prior) / (W + m)`` with ``prior`` the weighted mean of all training
rows (:meth:`.TargetStatistics.transform`).

``smooth="auto"`` (the default) is ``TargetEncoder``'s empirical-Bayes shrinkage:
``m = s2 / v`` per value, ``s2`` the within-value variance of the target and ``v``
its variance over the rows the prior comes from; a float sets ``m`` itself. Auto
is the default because it is what was measured in issue 22 (Book-Crossing
FiBiNet++ 0.7225 -> 0.8678 ROC AUC with ``TargetEncoder``'s defaults) and it needs
no tuning per table: a value seen a handful of times with a consistent target is
trusted, a noisy one is pulled to the prior. Its cost: a value seen once (out of
fold) has no within-value variance and is trusted fully, so a noise ID's
out-of-fold statistics are other rows' labels, uncorrelated with the row's own
(no leak, but a noisy field); a float ``smooth`` keeps them near the prior.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
# Salt mixed into the seed so that the folds are independent of the validation
# split data/held_out.py draws with ``_uniform_hash(positions, seed)``.
_FOLD_SALT = 0x5EED_F01D_7A59_57A7


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))  # (n,)


def _uniform_hash(positions: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per row position.

    The same function as ``data.held_out._uniform_hash`` (SplitMix64 of the position
    mixed with the seed), copied so that this module imports no estimator code.
    """
    z = np.asarray(positions).astype(np.uint64) ^ np.uint64((seed * _GOLDEN) % 2**64)
    return (_mix64(z) >> np.uint64(11)).astype(np.float64) * 2.0**-53  # (n,)


def assign_folds(positions, n_folds: int, seed: int) -> np.ndarray:
    """Fold of every training row, from its position in the training data.

    Parameters
    ----------
    positions : array-like of int of shape (n_samples,)
        Row positions in the whole training data (0-based), the same numbers
        whichever chunk a row arrives in.
    n_folds : int
        Number of folds (>= 2).
    seed : int
        Seed; it is salted, so the estimator's seed can be passed as is.

    Returns
    -------
    folds : ndarray of int64 of shape (n_samples,)
        Values in ``0 .. n_folds - 1``.
    """
    positions = _check_positions(positions)
    u = _uniform_hash(positions, (int(seed) ^ _FOLD_SALT) % 2**64)  # (n,)
    return np.minimum((u * n_folds).astype(np.int64), n_folds - 1)  # (n,)


def _check_positions(positions) -> np.ndarray:
    positions = np.asarray(positions)
    if positions.ndim != 1 or (
        positions.size and not np.issubdtype(positions.dtype, np.integer)
    ):
        raise ValueError(
            f"positions must be a 1-d array of ints, got dtype {positions.dtype} "
            f"and shape {positions.shape}."
        )
    if positions.size and positions.min() < 0:
        raise ValueError("positions must be >= 0 (row positions in the training data).")
    return positions.astype(np.int64, copy=False)  # (n,)


def fold_priors(fold_w, fold_s, fold_q, fold, n):
    """Prior (weighted target mean) and target variance of every row.

    Parameters
    ----------
    fold_w : ndarray of shape (n_folds,)
        Weighted row count of each fold.
    fold_s : ndarray of shape (n_folds, n_targets)
        Weighted target sums of each fold.
    fold_q : ndarray of shape (n_folds, n_targets)
        Weighted sums of squared targets of each fold.
    fold : ndarray of int of shape (n,) or None
        Each row's fold: its prior comes from the rows outside it; None for the
        prior of all training rows.
    n : int
        Number of rows.

    Returns
    -------
    prior : ndarray of shape (n, n_targets)
        0 where there are no rows to take the mean of.
    var : ndarray of shape (n, n_targets)
        The target's variance over the same rows (NaN where there are none).
    """
    k = fold_s.shape[1]
    if fold is None:
        n_w = np.full(n, fold_w.sum())  # (n,)
        t_s = np.broadcast_to(fold_s.sum(0), (n, k))  # (n, k)
        t_q = np.broadcast_to(fold_q.sum(0), (n, k))  # (n, k)
    else:
        n_w = fold_w.sum() - fold_w[fold]  # (n,)
        t_s = fold_s.sum(0) - fold_s[fold]  # (n, k)
        t_q = fold_q.sum(0) - fold_q[fold]  # (n, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        prior = t_s / n_w[:, None]  # (n, k)
        var = t_q / n_w[:, None] - prior**2  # (n, k)
    prior = np.where(np.isfinite(prior), prior, 0.0)  # (n, k)
    return prior, var


def m_estimates(sum_w, sum_s, sum_q, r, fold, prior, var, smooth):
    """The m-estimates of one source's values, out of fold or on full data.

    Parameters
    ----------
    sum_w : ndarray of shape (n_values, n_folds)
        Weighted row count per (value code, fold).
    sum_s : ndarray of shape (n_values, n_folds, n_targets)
        Weighted target sums per (value code, fold).
    sum_q : ndarray of shape (n_values, n_folds, n_targets) or None
        Weighted sums of squared targets, for ``smooth="auto"``; None when
        ``smooth`` is a float.
    r : ndarray of int of shape (n,)
        Value code of every row, -1 for a value never seen (it gets the prior).
    fold : ndarray of int of shape (n,) or None
        Each row's fold, left out of its statistic; None for full-data values.
    prior, var : ndarray of shape (n, n_targets)
        From :func:`fold_priors`.
    smooth : float
        ``m``, used when ``sum_q`` is None.

    Returns
    -------
    values : ndarray of shape (n, n_targets)
        The prior wherever the estimate is not finite.
    """
    seen = r >= 0  # (n,)
    r = np.where(seen, r, 0)  # (n,)
    w = sum_w[r].sum(1)  # (n,)
    sm = sum_s[r].sum(1)  # (n, k)
    if fold is not None:
        w = w - sum_w[r, fold]  # (n,)
        sm = sm - sum_s[r, fold]  # (n, k)
    w = np.where(seen, w, 0.0)  # (n,)
    sm = np.where(seen[:, None], sm, 0.0)  # (n, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        if sum_q is None:
            m = smooth
            value = (sm + m * prior) / (w[:, None] + m)  # (n, k)
        else:
            q = sum_q[r].sum(1)  # (n, k)
            if fold is not None:
                q = q - sum_q[r, fold]  # (n, k)
            mean = sm / w[:, None]  # (n, k)
            s2 = np.maximum(q / w[:, None] - mean**2, 0.0)  # (n, k)
            lam = var * w[:, None] / (var * w[:, None] + s2)  # (n, k)
            value = lam * mean + (1.0 - lam) * prior  # (n, k)
    return np.where(np.isfinite(value), value, prior)  # (n, k)
