"""Held-out evidence for a crossed pair: which pairs ``cross_pairs="auto"`` crosses.

The crossed pairs (:class:`~sk_fibinet.nn.pairs.PairLinear`) give every code
combination of a small pair of fields a weight of its own. Crossing every pair
small enough (``max_cross_cells``) over-fits the pairs whose combinations say
nothing beyond their two fields: on Census-Income (80k training rows, 723
pairs within 2,000 cells) the defaults' log loss stayed 0.0022 behind
LightGBM's. :func:`pair_gains` asks each pair for evidence: on one random half
of the training rows it learns a naive model of the pair's two fields (the
smoothed target rate of each field's codes, added on the logit scale for a
classifier, on the target's scale for a regressor) and, on top, a smoothed
residual of every code combination; on the other half it scores how much the
residuals lower the loss of the naive model; then the other way round. A pair
is crossed when the sum is positive.

On small tables the test lacks power: on the 7k-10k-row Criteo and Avazu
samples it dropped pairs the network uses (ROC AUC 0.7342 against 0.7397,
0.6885 against 0.6907), so it applies from :data:`MIN_ROWS` training rows;
below, every pair within ``max_cross_cells`` is crossed, as with
``cross_pairs="all"``. The next smallest benchmark tables (Adult, KDD 2012
clicks, Bank marketing: 32k-36k training rows) gain or stay level with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..nn.pairs import crossable_pairs

#: Training rows from which ``cross_pairs="auto"`` asks the pairs for evidence:
#: between the samples where the test lost (<= 10k) and the tables where it
#: gained or was level (>= 32k).
MIN_ROWS = 20_000

#: Rows of the half's overall rate in every code's and combination's estimate.
PRIOR_ROWS = 20.0


def pair_gains(
    codes,
    target,
    weight,
    cardinalities: Sequence[int],
    pairs: Sequence[tuple[int, int]],
    *,
    first_half,
    classification: bool,
    prior_rows: float = PRIOR_ROWS,
) -> np.ndarray:
    """Held-out loss each crossed pair removes from a naive model of its fields.

    Parameters
    ----------
    codes : ndarray of int of shape (n_samples, n_fields)
        The training rows' field codes.
    target : ndarray of shape (n_samples,) or (n_samples, n_targets)
        0/1 labels (one column per class for a multiclass target) when
        ``classification``, else the target (any scale: it is standardised).
    weight : ndarray of shape (n_samples,) or None
        Sample weights; None means 1.
    cardinalities : sequence of int
        Codes of each field.
    pairs : sequence of (int, int)
        The candidate pairs of fields.
    first_half : ndarray of bool of shape (n_samples,)
        The rows of the first half (a seeded hash of each row's position, so
        that the halves do not depend on the rows' order).
    classification : bool
        Log loss of logits (per target column, summed) if True, squared error
        of the standardised target otherwise.
    prior_rows : float, default=20.0
        Pseudo-rows of the half's overall rate (or of the naive model's
        prediction) in each code's (or combination's) estimate.

    Returns
    -------
    gain : ndarray of shape (n_pairs,)
        Loss of the naive model minus loss with the pair's residuals, on the
        held-out half, summed over both halves (in units of the loss summed
        over rows). Positive: the pair's combinations say something.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 4, size=(20000, 3))
    >>> logit = 2.0 * ((codes[:, 0] + codes[:, 1]) % 2) - 1.0  # fields 0 x 1
    >>> y = (rng.random(20000) < 1 / (1 + np.exp(-logit))).astype(float)
    >>> gain = pair_gains(codes, y, None, [4, 4, 4], [(0, 1), (0, 2), (1, 2)],
    ...                   first_half=rng.random(20000) < 0.5, classification=True)
    >>> bool(gain[0] > 1000), bool((gain[1:] < 10).all())
    (True, True)
    """
    gain = np.zeros(len(pairs))  # (C,)
    fields = sorted({f for pair in pairs for f in pair})
    for half in _halves(
        codes,
        target,
        weight,
        cardinalities,
        fields,
        first_half,
        classification,
        prior_rows,
    ):
        for k, (i, j) in enumerate(pairs):
            cell = half.c_fit[:, i] * cardinalities[j] + half.c_fit[:, j]  # (n_fit,)
            z = half.base + half.on_fit[i] + half.on_fit[j]  # (n_fit,) naive model
            delta = half.residual(z, cell, cardinalities[i] * cardinalities[j])
            cell_s = half.c_score[:, i] * cardinalities[j] + half.c_score[:, j]
            z_s = half.base + half.on_score[i] + half.on_score[j]  # (n_score,)
            gain[k] += _loss_drop(
                z_s, delta[cell_s], half.y_score, half.w_score, classification
            )
    return gain


def crossable_pair_gains(
    codes,
    target,
    weight,
    cardinalities: Sequence[int],
    max_cells: int,
    *,
    first_half,
    classification: bool,
) -> dict:
    """:func:`pair_gains` of every pair within ``max_cells`` code combinations.

    Parameters
    ----------
    codes, target, weight, cardinalities, first_half, classification
        As :func:`pair_gains` takes them.
    max_cells : int
        Largest number of code combinations a candidate pair may have.

    Returns
    -------
    gains : dict of (int, int) to float
        Each candidate's gain, in :class:`~sk_fibinet.nn.pairs.PairLinear`'s
        order.
    """
    cards = [int(c) for c in cardinalities]
    candidates = crossable_pairs(cards, max_cells)
    if not candidates:
        return {}
    gain = pair_gains(
        codes,
        target,
        weight,
        cards,
        candidates,
        first_half=first_half,
        classification=classification,
    )
    return {pair: float(g) for pair, g in zip(candidates, gain, strict=True)}


def select_pairs(
    codes,
    target,
    weight,
    cardinalities: Sequence[int],
    max_cells: int,
    *,
    first_half,
    classification: bool,
) -> list[tuple[int, int]]:
    """The pairs within ``max_cells`` code combinations that :func:`pair_gains`
    finds evidence for.

    Parameters
    ----------
    codes, target, weight, cardinalities, max_cells, first_half, classification
        As :func:`crossable_pair_gains` takes them.

    Returns
    -------
    pairs : list of (int, int)
        The pairs to cross, in :class:`~sk_fibinet.nn.pairs.PairLinear`'s order.
    """
    gains = crossable_pair_gains(
        codes,
        target,
        weight,
        cardinalities,
        max_cells,
        first_half=first_half,
        classification=classification,
    )
    return [pair for pair, gain in gains.items() if gain > 0]


class _Half:
    """One half's fit and score rows for one target column: the rows' codes,
    weights and targets, the naive model's overall rate, and every asked
    field's smoothed effect on each row (``on_fit[f]``, ``on_score[f]``)."""

    def __init__(
        self,
        c_fit,
        c_score,
        w_fit,
        w_score,
        y_fit,
        y_score,
        *,
        rate,
        classification,
        prior_rows,
    ):
        self.c_fit, self.c_score = c_fit, c_score  # (n_fit, F), (n_score, F)
        self.w_fit, self.w_score = w_fit, w_score  # (n_fit,), (n_score,)
        self.y_fit, self.y_score = y_fit, y_score  # (n_fit,), (n_score,)
        self.rate, self.base = rate, _link(rate, classification)
        self.classification, self.prior_rows = classification, prior_rows
        self.on_fit, self.on_score = {}, {}

    def residual(self, z, cell, n_cells, counts=None, sums=None) -> np.ndarray:
        """Per-combination shift ``(n_cells,)`` of the fit rows' logits (or
        predictions) ``z`` ``(n_fit,)`` towards their target, shrunk towards 0
        by ``prior_rows`` (``counts`` and ``sums``: the combinations' weights
        and weighted targets, when already counted)."""
        w, y, prior = self.w_fit, self.y_fit, self.prior_rows
        m = np.bincount(cell, w, minlength=n_cells) if counts is None else counts
        if not self.classification:
            r = np.bincount(cell, w * (y - z), minlength=n_cells)  # (cells,)
            return r / (m + prior)  # smoothed residual
        s = np.bincount(cell, w * y, minlength=n_cells) if sums is None else sums
        p = 1.0 / (1.0 + np.exp(-z))  # (n_fit,) naive rate
        sp = np.bincount(cell, w * p, minlength=n_cells)  # (cells,)
        naive = np.where(m > 0, sp / np.maximum(m, 1e-300), self.rate)  # (cells,)
        shrunk = (s + prior * naive) / (m + prior)  # (cells,)
        return _link(shrunk, True) - _link(naive, True)  # (cells,)


def _halves(
    codes,
    target,
    weight,
    cardinalities,
    fields,
    first_half,
    classification: bool,
    prior_rows: float,
    clip: float | None = None,
):
    """Yield a :class:`_Half` per half (fit on one, score on the other) and
    target column; a regression target is standardised (and clipped at
    ``clip`` standard deviations)."""
    codes = np.asarray(codes)
    y = np.asarray(target, dtype=np.float64)
    y = y.reshape(-1, 1) if y.ndim == 1 else y  # (n, k)
    n = len(y)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    if not classification:
        mean = np.average(y, axis=0, weights=w)  # (k,)
        std = np.sqrt(np.average((y - mean) ** 2, axis=0, weights=w))  # (k,)
        y = (y - mean) / np.where(std > 0, std, 1.0)  # (n, k)
        if clip is not None:
            y = np.clip(y, -clip, clip)  # (n, k)
    first = np.asarray(first_half, dtype=bool)  # (n,)
    for fit in (first, ~first):
        score = ~fit
        if not fit.any() or not score.any():
            continue
        c_fit, c_score = codes[fit], codes[score]  # (n_fit, F), (n_score, F)
        w_fit, w_score = w[fit], w[score]
        for t in range(y.shape[1]):
            y_fit = y[fit, t]  # (n_fit,)
            rate = np.average(y_fit, weights=w_fit) if w_fit.sum() > 0 else 0.0
            half = _Half(
                c_fit,
                c_score,
                w_fit,
                w_score,
                y_fit,
                y[score, t],
                rate=rate,
                classification=classification,
                prior_rows=prior_rows,
            )
            # each row's shift by its code of every field, on both halves
            for f in fields:
                c = c_fit[:, f]  # (n_fit,)
                s = np.bincount(c, w_fit * y_fit, minlength=cardinalities[f])
                m = np.bincount(c, w_fit, minlength=cardinalities[f])
                code_rate = (s + prior_rows * rate) / (m + prior_rows)  # (card,)
                effect = _link(code_rate, classification) - half.base  # (card,)
                half.on_fit[f], half.on_score[f] = effect[c], effect[c_score[:, f]]
            yield half


def _link(rate, classification: bool):
    if not classification:
        return rate
    p = np.clip(rate, 1e-6, 1.0 - 1e-6)
    return np.log(p / (1.0 - p))


def _row_drops(z, delta, y, w, classification: bool) -> np.ndarray:
    """Per row, ``(n,)``: the weighted loss of logits (or predictions) ``z``
    minus that of ``z + delta``."""
    if classification:  # log loss of logits: softplus(z) - y z
        return w * (np.logaddexp(0.0, z) - np.logaddexp(0.0, z + delta) + y * delta)
    r = y - z  # (n,) residuals; (r^2 - (r - delta)^2) = delta (2 r - delta)
    return w * delta * (2.0 * r - delta)


def _loss_drop(z, delta, y, w, classification: bool) -> float:
    """Summed loss of logits (or predictions) ``z`` minus that of ``z + delta``."""
    return float(np.sum(_row_drops(z, delta, y, w, classification)))
