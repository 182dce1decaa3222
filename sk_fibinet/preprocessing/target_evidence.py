"""Held-out evidence that a target statistic says something: the gate of ``"auto"``.

A column can pass every size test of :func:`.target_selection.select_columns` and
still be noise: an ID unrelated to the target, each value seen a few times. Its
out-of-fold statistic is then other rows' labels (``smooth="auto"`` trusts a
value seen once fully), a field the network fits and that tells nothing about
a new row. On a synthetic Criteo-shaped table of 100k rows whose signal sits in
columns of ~300 values, the 21 statistics the size rule chose were all of this
kind, and they cost 0.032 ROC AUC (``benchmarks/fit_time.py``: 0.7896 without
them, 0.7572 with them).

The test is cheap, because the statistic of a training row is already out of
fold: cut each statistic into ``n_bins`` quantile bins, learn the mean target
of every bin (an m-estimate with ``pseudo_rows`` rows of the overall mean) on
the rows of the even folds and score the odd folds' rows with it, and the
other way round. :func:`held_out_gain` is the share of the squared error of
the overall mean that this removes (a cross-validated R^2 of the binned
statistic; for a 0/1 target, the Brier skill). A noise column scores about 0
or below (its bins' means are estimated from noise too: about
``-n_bins / n``); the columns the statistics help score far above
(Book-Crossing's user and book 0.20-0.22, MIND's news 0.024-0.026), see
:data:`MIN_GAIN`.
"""

from __future__ import annotations

import numpy as np

#: A statistic whose :func:`held_out_gain` is below this is left out under
#: ``target_stats="auto"``. The synthetic noise columns above scored
#: -0.0024 to +0.0006; the lowest real column the statistics are kept for,
#: MIND's ``news_id`` (folds by impression), scores 0.024-0.026 (3 seeds).
MIN_GAIN = 0.002


def held_out_gain(
    values, target, weight, folds, *, n_bins: int = 32, pseudo_rows: float = 20.0
) -> np.ndarray:
    """Cross-validated share of the target's squared error each statistic removes.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_statistics)
        Out-of-fold statistics of training rows.
    target : ndarray of shape (n_samples,) or (n_samples, n_targets)
        The target the statistics average (0/1 label, one-hot classes or the
        scaled target); statistic column ``j`` is of target column
        ``j % n_targets``.
    weight : ndarray of shape (n_samples,) or None
        Sample weights; None means 1.
    folds : ndarray of int of shape (n_samples,)
        The rows' cross-fitting folds; even and odd folds are the two halves.
    n_bins : int, default=32
        Quantile bins of each statistic.
    pseudo_rows : float, default=20.0
        Weight of the half's overall mean in each bin's mean.

    Returns
    -------
    gain : ndarray of shape (n_statistics,)
        ``1 - binned error / error of the mean``, summed over both halves; 0
        where the target does not vary.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 4000).astype(float)
    >>> signal = y + rng.normal(0, 1, 4000)  # a statistic that knows the label
    >>> noise = rng.random(4000)
    >>> gain = held_out_gain(np.column_stack([signal, noise]), y, None,
    ...                      np.arange(4000) % 10)
    >>> gain.round(3)  # noise scores below 0: its bins' means are noise too
    array([ 0.204, -0.01 ])
    """
    values = np.asarray(values, dtype=np.float64)  # (n, s)
    y = np.asarray(target, dtype=np.float64)
    y = y.reshape(-1, 1) if y.ndim == 1 else y  # (n, k)
    n, k = y.shape
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    odd = (np.asarray(folds) % 2).astype(bool)  # (n,)
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]  # (n_bins - 1,)
    gain = np.zeros(values.shape[1])  # (s,)
    for j in range(values.shape[1]):
        v, t = values[:, j], y[:, j % k]  # (n,) each
        edges = np.unique(np.quantile(v, quantiles))  # (<= n_bins - 1,)
        b = np.searchsorted(edges, v, side="right")  # (n,) bin of each row
        size = len(edges) + 1  # bins
        base = binned = 0.0
        for fit in (odd, ~odd):
            score = ~fit
            if not fit.any() or not score.any():
                continue
            w_fit = w[fit]
            mean = np.average(t[fit], weights=w_fit) if w_fit.sum() > 0 else 0.0
            sum_w = np.bincount(b[fit], weights=w_fit, minlength=size)  # (bins,)
            sum_t = np.bincount(b[fit], weights=w_fit * t[fit], minlength=size)
            rate = (sum_t + pseudo_rows * mean) / (sum_w + pseudo_rows)  # (bins,)
            w_s, t_s = w[score], t[score]
            base += float(np.sum(w_s * (t_s - mean) ** 2))
            binned += float(np.sum(w_s * (t_s - rate[b[score]]) ** 2))
        gain[j] = 1.0 - binned / base if base > 0 else 0.0
    return gain
