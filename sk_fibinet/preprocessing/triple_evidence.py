"""Held-out evidence for a crossed triple: which ``cross_triples="auto"`` adds.

A crossed pair (:mod:`.cross_evidence`) gives every code combination of two
fields a weight; some tables hold their signal in combinations of three small
fields (flight delays by day of month, weekday and airport: the day's weather
at one airport; Bank marketing's calls by day and month, with or without a
loan). Such a triple becomes a *derived field*: a categorical field whose code
is the combination of its three fields' codes (at most
:data:`MAX_TRIPLE_CELLS` of them), embedded and crossed by the network like
any other field (``FieldEncoder.add_crosses``).

:func:`triple_gains` asks each candidate for evidence the way
:func:`~.cross_evidence.pair_gains` asks a pair, with a stronger naive model:
on one half of the training rows it learns the smoothed rates of the triple's
three fields and, on top, smoothed residuals of its three pairs, fitted
jointly (:data:`BACKFIT_ROUNDS` rounds of backfitting); then a smoothed
residual of every combination of the three codes; on the other half it scores
how much those residuals lower the naive model's loss, and the other way round.
The pairs' residuals must be fitted jointly: fitted each on its own, they
double-count what two pairs share, and the test then chose triples of fields
the pairs already describe (Adult's marital status x relationship x sex, which
cost 0.0021 log loss over 3 seeds; with backfitting Adult chooses none).

Which triples are asked: those within :data:`MAX_TRIPLE_CELLS` combinations
and :data:`ROWS_PER_CELL` training rows per combination on average; of them,
the :data:`MAX_CANDIDATES` whose three pairs have the largest summed (positive)
pair evidence, so the cost stays about a second on wide tables (Census-Income
has 4,040 such triples; asking them all took 59 s). At most
:data:`MAX_TRIPLES` are kept, best first, of those whose gain exceeds
:data:`MIN_Z` standard errors (from the spread of the per-row loss drops): a
positive gain alone kept triples whose gains were noise (Bank marketing's
``contact x month x poutcome``, gain 5.4 at 0.9 standard errors), and Bank's
ROC AUC fell from 0.7993 to 0.7972 over 3 seeds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .cross_evidence import PRIOR_ROWS, _halves, _row_drops, pair_gains

#: Largest number of code combinations of a crossed triple (its derived
#: field's codes).
MAX_TRIPLE_CELLS = 2000
#: Training rows per code combination a candidate triple needs on average.
ROWS_PER_CELL = 16
#: Candidate triples asked for evidence, ranked by their pairs' evidence.
MAX_CANDIDATES = 64
#: Derived fields added at most.
MAX_TRIPLES = 2
#: Rounds of backfitting the three pairs' residuals of the naive model.
BACKFIT_ROUNDS = 3
#: Standard errors a triple's held-out gain must exceed to be kept.
MIN_Z = 2.0
#: A regression target is standardised and clipped at this many standard
#: deviations for the test: on the flights table (arrival delays, a long right
#: tail) the squared errors of a few late flights buried ``day x origin x dow``
#: (0.0 to 0.8 standard errors over 3 seeds; clipped at 3, 2.2 to 2.7), the
#: triple that lifts R^2 from 0.2231 to 0.24.
CLIP_STD = 3.0


def candidate_triples(cardinalities: Sequence[int], n_rows: int) -> list[tuple]:
    """Triples of fields ``(i, j, k)``, ``i < j < k``, small enough to cross.

    Parameters
    ----------
    cardinalities : sequence of int
        Codes of each field.
    n_rows : int
        Training rows.

    Returns
    -------
    triples : list of (int, int, int)
        Those with at most :data:`MAX_TRIPLE_CELLS` code combinations and
        :data:`ROWS_PER_CELL` rows per combination on average.

    Examples
    --------
    >>> candidate_triples([4, 5, 6, 100], n_rows=10_000)
    [(0, 1, 2)]
    """
    cards = [int(c) for c in cardinalities]
    limit = min(MAX_TRIPLE_CELLS, n_rows / ROWS_PER_CELL)
    return [
        t
        for t in itertools.combinations(range(len(cards)), 3)
        if cards[t[0]] * cards[t[1]] * cards[t[2]] <= limit
    ]


def triple_gains(
    codes,
    target,
    weight,
    cardinalities: Sequence[int],
    triples: Sequence[tuple[int, int, int]],
    *,
    first_half,
    classification: bool,
    prior_rows: float = PRIOR_ROWS,
    rounds: int = BACKFIT_ROUNDS,
    return_std: bool = False,
):
    """Held-out loss each crossed triple removes from a naive model of its
    fields and pairs.

    Parameters
    ----------
    codes, target, weight, cardinalities
        As :func:`~.cross_evidence.pair_gains` takes them.
    triples : sequence of (int, int, int)
        The candidate triples.
    first_half
        As :func:`~.cross_evidence.pair_gains` takes it.
    classification : bool
        As :func:`~.cross_evidence.pair_gains` takes it; a regression target
        is also clipped at :data:`CLIP_STD` after standardising.
    prior_rows : float, default=20.0
        Pseudo-rows of the naive model's prediction in every estimate.
    rounds : int, default=3
        Rounds of backfitting the pairs' residuals.
    return_std : bool, default=False
        Also return each gain's standard error.

    Returns
    -------
    gain : ndarray of shape (n_triples,)
        Loss of the naive model minus loss with the triple's residuals on the
        held-out half, summed over both halves. Positive: the combinations of
        the three codes say something their fields and pairs do not.
    std : ndarray of shape (n_triples,)
        With ``return_std``: the standard error of each gain, from the spread
        of its per-row loss drops (``sqrt(n var)`` per half and target column,
        added in quadrature).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 3, size=(30000, 4))
    >>> logit = 2.0 * ((codes[:, 0] + codes[:, 1] + codes[:, 2]) % 2) - 1.0
    >>> y = (rng.random(30000) < 1 / (1 + np.exp(-logit))).astype(float)
    >>> gain = triple_gains(codes, y, None, [3, 3, 3, 3], [(0, 1, 2), (1, 2, 3)],
    ...                     first_half=rng.random(30000) < 0.5, classification=True)
    >>> bool(gain[0] > 1000), bool(gain[1] < 10)
    (True, True)
    """
    cards = [int(c) for c in cardinalities]
    gain = np.zeros(len(triples))  # (T,)
    variance = np.zeros(len(triples))  # (T,)
    fields = sorted({f for t in triples for f in t})
    for half in _halves(
        codes,
        target,
        weight,
        cards,
        fields,
        first_half,
        classification,
        prior_rows,
        clip=CLIP_STD,
    ):
        c_fit, c_score = half.c_fit, half.c_score
        for q, (i, j, k) in enumerate(triples):
            z_fit = half.base + half.on_fit[i] + half.on_fit[j] + half.on_fit[k]
            z_score = half.base + half.on_score[i] + half.on_score[j] + half.on_score[k]
            pairs = ((i, j), (i, k), (j, k))
            cells = [_cells(c_fit, p, cards) for p in pairs]  # 3 x (n_fit,)
            sizes = [cards[a] * cards[b] for a, b in pairs]
            tables = _backfit(half, z_fit, cells, sizes, rounds)
            for p, cell, table in zip(pairs, cells, tables, strict=True):
                z_fit = z_fit + table[cell]  # (n_fit,)
                z_score = z_score + table[_cells(c_score, p, cards)]  # (n_score,)
            n_cells = cards[i] * cards[j] * cards[k]
            delta = half.residual(z_fit, _cells(c_fit, (i, j, k), cards), n_cells)
            cell_s = _cells(c_score, (i, j, k), cards)  # (n_score,)
            drops = _row_drops(
                z_score, delta[cell_s], half.y_score, half.w_score, classification
            )  # (n_score,)
            gain[q] += drops.sum()
            variance[q] += len(drops) * drops.var()
    return (gain, np.sqrt(variance)) if return_std else gain


def select_triples(
    codes,
    target,
    weight,
    cardinalities: Sequence[int],
    *,
    first_half,
    classification: bool,
    pair_gain: dict | None = None,
) -> list[tuple[int, int, int]]:
    """The triples ``cross_triples="auto"`` adds as derived fields.

    Parameters
    ----------
    codes, target, weight, cardinalities, first_half, classification
        As :func:`triple_gains` takes them.
    pair_gain : dict, optional
        Evidence of pairs already measured on these rows
        (:func:`~.cross_evidence.pair_gains`), by pair; the candidates' other
        pairs are measured here.

    Returns
    -------
    triples : list of (int, int, int)
        At most :data:`MAX_TRIPLES` triples whose gain exceeds :data:`MIN_Z`
        standard errors, best first.
    """
    cards = [int(c) for c in cardinalities]
    candidates = candidate_triples(cards, len(codes))
    if not candidates:
        return []
    if len(candidates) > MAX_CANDIDATES:
        pair_gain = dict(pair_gain or {})
        missing = sorted(
            {p for t in candidates for p in itertools.combinations(t, 2)}
            - set(pair_gain)
        )
        if missing:
            measured = pair_gains(
                codes,
                target,
                weight,
                cards,
                missing,
                first_half=first_half,
                classification=classification,
            )
            pair_gain.update(zip(missing, measured, strict=True))
        strength = [
            sum(max(pair_gain[p], 0.0) for p in itertools.combinations(t, 2))
            for t in candidates
        ]
        order = np.argsort(-np.asarray(strength), kind="stable")[:MAX_CANDIDATES]
        candidates = [candidates[o] for o in sorted(order)]
    gain, std = triple_gains(
        codes,
        target,
        weight,
        cards,
        candidates,
        first_half=first_half,
        classification=classification,
        return_std=True,
    )
    passed = gain > MIN_Z * std  # (T,)
    order = [o for o in np.argsort(-gain, kind="stable") if passed[o]]
    return [tuple(int(f) for f in candidates[o]) for o in order[:MAX_TRIPLES]]


def _cells(codes, fields, cards) -> np.ndarray:
    """Combination index of ``fields``' codes, ``(n,)``, last field fastest."""
    cell = codes[:, fields[0]].astype(np.int64)  # (n,)
    for f in fields[1:]:
        cell = cell * cards[f] + codes[:, f]  # (n,)
    return cell


def _backfit(half, z, cells, n_cells, rounds) -> list:
    """Residual tables of several combinations fitted jointly over the fit
    rows' ``z`` ``(n_fit,)``, one after the other for ``rounds`` rounds."""
    w, y = half.w_fit, half.y_fit
    counts = [
        np.bincount(c, w, minlength=k) for c, k in zip(cells, n_cells, strict=True)
    ]
    sums = [
        np.bincount(c, w * y, minlength=k) for c, k in zip(cells, n_cells, strict=True)
    ]
    tables = [np.zeros(k) for k in n_cells]
    shifts = [np.zeros(len(z)) for _ in cells]  # per combination, (n_fit,)
    total = z.copy()  # (n_fit,) z plus every shift
    for _ in range(rounds):
        for q, cell in enumerate(cells):
            others = total - shifts[q]  # (n_fit,)
            tables[q] = half.residual(others, cell, n_cells[q], counts[q], sums[q])
            shifts[q] = tables[q][cell]  # (n_fit,)
            total = others + shifts[q]
    return tables
