"""Which columns and column pairs get target statistics, and the sketch it reads.

:func:`select_columns` writes the rule down: a categorical column is used when it
has more than ``min_distinct`` (50) distinct values and at least
``min_repeated_share`` (half) of the rows share their value with another row (an
out-of-fold statistic of a value seen once is the prior: a row-ID column adds
nothing). A pair of two such columns is used under the same two conditions and
when it refines both columns (at least ``min_refinement`` = 1.1 times the distinct
values of either: book x author, where the book fixes the author, repeats the
book's statistic); at most ``max_pairs`` (12) pairs are kept, those with the
highest repeated share. On Book-Crossing the user x book pair, where nearly every
value is unique and which cost 0.057 ROC AUC in issue 22, has a repeated share
near 0 and is refused. Pair counts are not known from the single-column counts;
:class:`PairSketch` estimates them in the same first pass with a bounded k-minimum
-values sketch per candidate pair (memory ``O(k)`` per pair, whatever the rows),
exact while a pair has at most ``k`` distinct values and independent of chunking.

``target_stats="auto"`` (the classifier's default) adds two conditions,
:data:`AUTO_RULE`: the training table has at least ``min_rows`` (50,000) rows,
and a column or pair has at most ``max_rows_per_value`` (50) training rows per
distinct value on average. Statistics of a few thousand rows are noise that the
network fits (the 8k-row Criteo and 10k-row Avazu samples lost 0.018-0.019 ROC
AUC with them, KDD 2012's 32k rows 0.005), and an ID with hundreds of rows is
learnt by its own embedding (MovieLens-1M, 109-194 rows per value, lost 0.002);
where each ID has a handful of rows (Book-Crossing, 6-8 rows per value) its rate
is what the statistic gives and the embedding cannot learn.
``target_stats="all"`` applies the rule without these two conditions. Under
``"auto"`` the training engine then drops the chosen statistics without
held-out evidence (:mod:`.target_evidence`), which needs the statistics
themselves and so cannot be part of this rule.
"""

from __future__ import annotations

from itertools import combinations
from numbers import Integral

import numpy as np
import pandas as pd

from .cross_fitting import _mix64
from .target_sums import _column

_MISSING_HASH = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash_values(series: pd.Series) -> np.ndarray:
    """64-bit hash of each value, by value (the same for str, object, category)."""
    h = pd.util.hash_pandas_object(series, index=False).to_numpy()  # (n,)
    return np.where(series.isna().to_numpy(), _MISSING_HASH, h)  # (n,)


class PairSketch:
    """Distinct values and repeated-row share of column pairs, in bounded memory.

    A k-minimum-values sketch per pair: the ``k`` smallest 64-bit hashes of the
    pair's values seen so far, with the exact row count of each (a hash among the
    ``k`` smallest at the end was among them since it first appeared, so its count
    is exact). Exact while a pair has at most ``k`` distinct values; above, the
    number of distinct values is estimated as ``(k - 1) / h_k`` (``h_k`` the k-th
    smallest hash in [0, 1), relative error about ``1 / sqrt(k)``) and the share of
    singleton values from the sampled ones. The result does not depend on how
    the rows are chunked.

    Parameters
    ----------
    pairs : list of (str, str)
        Candidate column pairs.
    k : int, default=4096
        Hashes kept per pair.
    """

    def __init__(self, pairs, *, k=4096):
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 2:
            raise ValueError(f"k must be an int >= 2, got {k!r}.")
        self.pairs = [tuple(p) for p in pairs]
        self.k = int(k)
        self.n_rows_ = 0
        self._hashes = {p: np.zeros(0, np.uint64) for p in self.pairs}
        self._counts = {p: np.zeros(0, np.int64) for p in self.pairs}

    def update(self, frame):
        """Add one chunk of rows.

        Parameters
        ----------
        frame : DataFrame of shape (n_samples, n_columns)
            Rows holding the pairs' columns.

        Returns
        -------
        None
        """
        members = dict.fromkeys(c for p in self.pairs for c in p)
        col_hash = {c: _hash_values(_column(frame, c)) for c in members}  # (n,) each
        self.n_rows_ += len(frame)
        for p in self.pairs:
            h = _mix64(col_hash[p[0]] ^ _mix64(col_hash[p[1]]))  # (n,)
            h = np.concatenate([self._hashes[p], h])  # (m,)
            c = np.concatenate([self._counts[p], np.ones(len(frame), np.int64)])
            uniq, inverse = np.unique(h, return_inverse=True)  # sorted
            counts = np.bincount(inverse, weights=c).astype(np.int64)
            self._hashes[p], self._counts[p] = uniq[: self.k], counts[: self.k]

    def summary(self) -> pd.DataFrame:
        """Per pair: rows, distinct values, repeated share, mean rows per value.

        Returns
        -------
        summary : DataFrame
            Indexed by pair; columns ``n_rows``, ``n_distinct`` (estimated above
            ``k``), ``repeated_share`` (share of rows whose pair value occurs in at
            least two rows) and ``rows_per_value``.
        """
        rows = []
        for p in self.pairs:
            h, c = self._hashes[p], self._counts[p]
            if len(h) < self.k:
                d = float(len(h))
                singles = float((c == 1).sum())
            else:
                h_k = (float(h[-1]) + 1.0) * 2.0**-64
                d = (self.k - 1) / h_k
                singles = d * float((c == 1).mean())
            n = self.n_rows_
            share = min(max(1.0 - singles / n, 0.0), 1.0) if n else 0.0
            rows.append((n, d, share, n / d if d else 0.0))
        return pd.DataFrame(
            rows,
            index=pd.MultiIndex.from_tuples(self.pairs) if self.pairs else None,
            columns=["n_rows", "n_distinct", "repeated_share", "rows_per_value"],
        )


#: The two conditions ``target_stats="auto"`` adds to ``"all"``: keyword
#: arguments of :func:`select_columns`.
AUTO_RULE = {"min_rows": 50_000, "max_rows_per_value": 50.0}


def selection_rule(target_stats) -> dict:
    """The keyword arguments of :func:`select_columns` for a ``target_stats``.

    Parameters
    ----------
    target_stats : {"auto", "all"}
        The estimator's parameter.

    Returns
    -------
    kwargs : dict
        :data:`AUTO_RULE` for ``"auto"``, empty for ``"all"``.

    Examples
    --------
    >>> selection_rule("auto")["min_rows"]
    50000
    >>> selection_rule("all")
    {}
    """
    if target_stats == "auto":
        return dict(AUTO_RULE)
    if target_stats == "all":
        return {}
    raise ValueError(
        f"target_stats must be 'auto', 'all' or None, got {target_stats!r}."
    )


def candidate_pairs(columns) -> list:
    """All pairs of the given columns, in column order (what select_columns judges).

    Parameters
    ----------
    columns : list of str
        High-cardinality columns.

    Returns
    -------
    pairs : list of (str, str)
    """
    return list(combinations(list(columns), 2))


def select_columns(
    category_counts,
    n_rows,
    pair_summary=None,
    *,
    min_distinct=50,
    min_repeated_share=0.5,
    min_refinement=1.1,
    max_pairs=12,
    min_rows=0,
    max_rows_per_value=None,
):
    """The columns and pairs to compute target statistics of (the written rule).

    A column is chosen when it has more than ``min_distinct`` distinct values and
    at least ``min_repeated_share`` of the rows share their value with another
    row. A pair of chosen columns is chosen when it passes the same two tests and
    has at least ``min_refinement`` times the distinct values of each of its
    columns; the ``max_pairs`` pairs with the highest repeated share are kept.

    Parameters
    ----------
    category_counts : dict of str to Series
        Per categorical column, the row count of each value (``value_counts``).
    n_rows : int
        Number of training rows the counts come from.
    pair_summary : DataFrame, default=None
        :meth:`PairSketch.summary` of (at least) the candidate pairs; None
        chooses no pairs.
    min_distinct : int, default=50
    min_repeated_share : float, default=0.5
    min_refinement : float, default=1.1
    max_pairs : int, default=12
    min_rows : int, default=0
        No column or pair is chosen from fewer training rows.
    max_rows_per_value : float, default=None
        A column or pair with more training rows per distinct value than this
        is not chosen; None sets no bound.

    Returns
    -------
    columns : list of str
    pairs : list of (str, str)
    """
    if n_rows <= 0:
        raise ValueError(f"n_rows must be > 0, got {n_rows!r}.")
    if n_rows < min_rows:
        return [], []
    thin = np.inf if max_rows_per_value is None else float(max_rows_per_value)
    distinct = {}
    columns = []
    for name, counts in category_counts.items():
        counts = np.asarray(counts, dtype=np.float64)
        counts = counts[counts > 0]
        distinct[name] = len(counts)
        share = counts[counts >= 2].sum() / n_rows
        if (
            len(counts) > min_distinct
            and share >= min_repeated_share
            and n_rows / len(counts) <= thin
        ):
            columns.append(name)
    if pair_summary is None or len(columns) < 2:
        return columns, []
    scored = []
    for order, pair in enumerate(candidate_pairs(columns)):
        if pair in pair_summary.index:
            row = pair_summary.loc[pair]
        elif pair[::-1] in pair_summary.index:
            row = pair_summary.loc[pair[::-1]]
        else:
            continue
        d, share = float(row["n_distinct"]), float(row["repeated_share"])
        if (
            d > min_distinct
            and share >= min_repeated_share
            and d >= min_refinement * max(distinct[pair[0]], distinct[pair[1]])
            and n_rows / d <= thin
        ):
            scored.append((-share, order, pair))
    return columns, [p for _, _, p in sorted(scored)[:max_pairs]]
