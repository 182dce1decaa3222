"""Cross-fitted target statistics of ID columns and ID pairs (issue 22).

What CatBoost learns and an embedding table struggles to: the rate of the target
for each value of a high-cardinality ID column, and for each value of a chosen
pair of such columns, given to the network as a numeric field. This module only
computes the statistics; the training engine decides when to call it.

Why it is written by hand and not with :class:`~sklearn.preprocessing.TargetEncoder`
-------------------------------------------------------------------------------
``TargetEncoder`` has no ``sample_weight`` and needs all rows at once, but the
estimator trains in memory, streamed from Parquet chunk by chunk, and through
``partial_fit``, and the streamed and in-memory fits must give the same statistics
for the same rows. So the statistics are built from sufficient statistics summed
chunk by chunk, per (category value, fold): the weighted row count ``W`` and the
weighted target sums ``S`` (one per target column) and, for ``smooth="auto"``, the
weighted sums of squares ``Q``. Memory grows with the number of distinct values
(times ``n_folds``), not with the number of rows. Without weights the arithmetic
is exactly ``TargetEncoder``'s (``tests/test_target_stats.py`` compares both for
binary, multiclass and continuous targets, with the same folds); that test is
what makes the hand-written cross fitting acceptable.

Folds
-----
A row's fold is ``floor(u * n_folds)`` with ``u`` a SplitMix64 hash of the row's
position in the training data (the same kind of hash as ``_uniform_hash`` in
``data/streaming.py``, which holds out validation rows), so it does not depend on
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
rows (:meth:`TargetStatistics.transform`).

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

Missing and unseen values
-------------------------
A missing value (``None``, ``NaN``, ``pd.NA``) is a category of its own, as in
``TargetEncoder`` and in the field encoder (missingness often carries signal). A
value never seen in the training rows, missing included, gets the prior; so does
a value seen only in a row's own fold.

Pairs
-----
A pair's value is the pair of its two columns' value codes (code 0 is missing,
then 1, 2, ... in order of first appearance), packed into one int64: no string
concatenation, so ``("a_b", "c")`` and ``("a", "b_c")`` are different values.

Which columns and pairs
-----------------------
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

Costs
-----
``update`` is vectorised per chunk (one ``pd.factorize`` and ``np.bincount`` per
column); appending new values to a column's vocabulary rebuilds its hash index,
``O(distinct values)`` per chunk that brings new values. Sums are exact, hence
identical however the rows are chunked, for 0/1 and one-hot targets with integer
weights; with continuous targets or fractional weights chunked and one-shot sums
agree up to float rounding (about 1e-15 relative).
"""

from __future__ import annotations

from itertools import combinations
from numbers import Integral, Real

import numpy as np
import pandas as pd

_GOLDEN = 0x9E3779B97F4A7C15
# Salt mixed into the seed so that the folds are independent of the validation
# split the streaming code draws with ``_uniform_hash(positions, seed)``.
_FOLD_SALT = 0x5EED_F01D_7A59_57A7
_MISSING_HASH = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))  # (n,)


def _uniform_hash(positions: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per row position.

    The same function as ``_streaming._uniform_hash`` (SplitMix64 of the position
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


def _column(frame, name) -> pd.Series:
    if name not in frame.columns:
        raise KeyError(f"Column {name!r} (a target-statistics source) is not in X.")
    return frame[name]


class _Vocabulary:
    """Codes of observed values: 0 is missing, then 1, 2, ... by first appearance."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.index = pd.Index([], dtype=self.dtype)

    def __len__(self) -> int:
        return len(self.index) + 1

    def encode(self, values, *, grow: bool):
        """Codes of ``values``: local codes (0 = missing) and their global codes.

        Returns ``(local, rows)``: ``rows[local]`` is each value's global code,
        -1 for a value not in the vocabulary (only when ``grow`` is false).
        """
        local, uniques = pd.factorize(values)  # (n,), (n_unique,)
        uniques = np.asarray(uniques, dtype=self.dtype)  # (n_unique,)
        uniques = pd.Index(uniques, dtype=self.dtype)
        found = self.index.get_indexer(uniques)  # (n_unique,)
        if grow:
            new = found < 0  # (n_unique,)
            if new.any():
                found[new] = len(self.index) + np.arange(int(new.sum()))
                self.index = self.index.append(uniques[new])
        rows = np.empty(len(uniques) + 1, dtype=np.int64)  # (n_unique + 1,)
        rows[0] = 0
        rows[1:] = np.where(found >= 0, found + 1, -1)
        return local + 1, rows  # (n,), (n_unique + 1,)


class TargetStatistics:
    """Cross-fitted target statistics of categorical columns and column pairs.

    Accumulate the training rows chunk by chunk with :meth:`update`, then get the
    out-of-fold statistics of the training rows with :meth:`out_of_fold` and the
    full-data statistics of any other rows with :meth:`transform` (see the module
    docstring for the formulas and why).

    Parameters
    ----------
    columns : list of str
        Categorical columns to compute statistics of.
    pairs : list of (str, str)
        Column pairs to compute statistics of (their columns need not be in
        ``columns``).
    n_folds : int, default=5
        Number of cross-fitting folds.
    smooth : "auto" or float >= 0, default="auto"
        Weight ``m`` of the prior in the m-estimate; ``"auto"`` is
        ``TargetEncoder``'s empirical-Bayes choice per value.
    prior : {"out_of_fold", "all"}, default="out_of_fold"
        Prior (and, for ``smooth="auto"``, target variance) of the out-of-fold
        values: from the rows outside the row's fold, as ``TargetEncoder``, or
        from all training rows (one prior for every fold; the row's own label
        then enters its prior with weight ``1 / n_rows``).
    seed : int, default=0
        Seed of the fold assignment.

    Attributes
    ----------
    feature_names_ : list of str
        Output column names: ``"user:te"`` per column, ``"user:te[j]"`` per target
        column ``j`` when the target has several columns, ``"user*book:te"`` for
        a pair. Set by the first :meth:`update`.
    sources_ : dict of str to tuple of str
        The source column(s) of each output column (two for a pair).
    n_rows_ : float
        Weighted number of rows accumulated.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"user": list("aabbbc"), "item": list("xyxyxy")})
    >>> ts = TargetStatistics(["user"], [("user", "item")], n_folds=2, smooth=1.0)
    >>> y = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    >>> ts.update(X, y, positions=np.arange(6))
    >>> ts.feature_names_
    ['user:te', 'user*item:te']
    >>> ts.transform(pd.DataFrame({"user": ["a", "z"], "item": ["x", "x"]})).round(3)
       user:te  user*item:te
    0    0.833          0.75
    1    0.500          0.50
    """

    def __init__(
        self,
        columns,
        pairs=(),
        *,
        n_folds=5,
        smooth="auto",
        prior="out_of_fold",
        seed=0,
    ):
        self.columns = [c for c in columns]
        self.pairs = [tuple(p) for p in pairs]
        for pair in self.pairs:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(
                    f"pairs must hold two different columns, got {pair!r}."
                )
        if not self.columns and not self.pairs:
            raise ValueError("TargetStatistics needs at least one column or pair.")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns has duplicates: {self.columns!r}.")
        if (
            not isinstance(n_folds, Integral)
            or isinstance(n_folds, bool)
            or n_folds < 2
        ):
            raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}.")
        if not (
            smooth == "auto"
            if isinstance(smooth, str)
            else isinstance(smooth, Real)
            and not isinstance(smooth, bool)
            and smooth >= 0
        ):
            raise ValueError(f"smooth must be 'auto' or a float >= 0, got {smooth!r}.")
        if prior not in ("out_of_fold", "all"):
            raise ValueError(f"prior must be 'out_of_fold' or 'all', got {prior!r}.")
        self.prior = prior
        if not isinstance(seed, Integral) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}.")
        self.n_folds = int(n_folds)
        self.smooth = smooth if isinstance(smooth, str) else float(smooth)
        self.seed = int(seed)
        self._sources = [(c,) for c in self.columns] + self.pairs
        members = dict.fromkeys(c for s in self._sources for c in s)
        self._vocab = {c: _Vocabulary(object) for c in members}
        self._pair_vocab = {p: _Vocabulary(np.int64) for p in self.pairs}
        self._n_targets = None

    # -- accumulation -------------------------------------------------------

    def _source_codes(self, frame, *, grow: bool):
        """Global code (-1 unseen) of every row, per source: ``{source: (n,)}``."""
        codes = {}
        for c, vocab in self._vocab.items():
            local, rows = vocab.encode(_column(frame, c), grow=grow)
            codes[(c,)] = (local, rows)
        out = {}
        for s in self._sources:
            if len(s) == 1:
                out[s] = codes[s]
                continue
            a = codes[(s[0],)][1][codes[(s[0],)][0]]  # (n,)
            b = codes[(s[1],)][1][codes[(s[1],)][0]]  # (n,)
            unseen = (a < 0) | (b < 0)  # (n,)
            key = (a.astype(np.int64) << 32) | b.astype(np.int64)  # (n,)
            local, rows = self._pair_vocab[s].encode(key, grow=grow)
            local = np.where(unseen, 0, local)  # (n,)
            if not grow:
                rows[0] = -1  # local 0: an unseen column value (keys never miss)
            out[s] = (local, rows)
        return out

    def update(self, frame, target, weight=None, positions=None):
        """Add one chunk of training rows.

        Parameters
        ----------
        frame : DataFrame of shape (n_samples, n_columns)
            Rows holding the source columns.
        target : array-like of shape (n_samples,) or (n_samples, n_targets)
            Float targets: the 0/1 label (binary), the one-hot classes
            (multiclass) or the scaled target (regression).
        weight : array-like of shape (n_samples,), default=None
            Sample weights (>= 0); None means 1.
        positions : array-like of int of shape (n_samples,)
            Positions of the rows in the whole training data; they fix the folds.

        Returns
        -------
        None
        """
        n = len(frame)
        y = np.asarray(target, dtype=np.float64)
        y = y.reshape(-1, 1) if y.ndim == 1 else y  # (n, k)
        if y.ndim != 2 or y.shape[0] != n:
            raise ValueError(f"target must have {n} rows, got shape {y.shape}.")
        if self._n_targets is None:
            self._n_targets = y.shape[1]
            self._start()
        elif y.shape[1] != self._n_targets:
            raise ValueError(
                f"target has {y.shape[1]} columns, earlier chunks had "
                f"{self._n_targets}."
            )
        w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
        if w.shape != (n,) or (n and (not np.all(np.isfinite(w)) or w.min() < 0)):
            raise ValueError(f"weight must be {n} finite values >= 0.")
        if positions is None:
            raise ValueError("positions (row positions in the training data) needed.")
        positions = _check_positions(positions)
        if positions.shape != (n,):
            raise ValueError(f"positions must have {n} values, got {positions.shape}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("target must be finite.")
        fold = assign_folds(positions, self.n_folds, self.seed)  # (n,)
        F = self.n_folds
        wy = w[:, None] * y  # (n, k)
        self._fold_w += np.bincount(fold, weights=w, minlength=F)  # (F,)
        for j in range(self._n_targets):
            self._fold_s[:, j] += np.bincount(fold, weights=wy[:, j], minlength=F)
            self._fold_q[:, j] += np.bincount(
                fold, weights=wy[:, j] * y[:, j], minlength=F
            )
        for s, (local, rows) in self._source_codes(frame, grow=True).items():
            st = self._stats[s]
            st.reserve(
                len(self._pair_vocab[s]) if len(s) == 2 else len(self._vocab[s[0]])
            )
            n_local = len(rows)
            cell = local * F + fold  # (n,)
            size = n_local * F
            st.w[rows] += np.bincount(cell, weights=w, minlength=size).reshape(-1, F)
            for j in range(self._n_targets):
                st.s[rows, :, j] += np.bincount(
                    cell, weights=wy[:, j], minlength=size
                ).reshape(-1, F)
                if st.q is not None:
                    st.q[rows, :, j] += np.bincount(
                        cell, weights=wy[:, j] * y[:, j], minlength=size
                    ).reshape(-1, F)

    def _start(self):
        k, F = self._n_targets, self.n_folds
        self._fold_w = np.zeros(F)  # (F,)
        self._fold_s = np.zeros((F, k))  # (F, k)
        self._fold_q = np.zeros((F, k))  # (F, k)
        auto = self.smooth == "auto"
        self._stats = {s: _Sums(F, k, auto) for s in self._sources}
        self.feature_names_, self.sources_ = [], {}
        for s in self._sources:
            name = "*".join(str(c) for c in s)
            for j in range(k):
                out = f"{name}:te" if k == 1 else f"{name}:te[{j}]"
                self.feature_names_.append(out)
                self.sources_[out] = s

    @property
    def n_rows_(self) -> float:
        self._check_fitted()
        return float(self._fold_w.sum())

    def digest_arrays(self) -> list:
        """Everything accumulated, as Series and arrays, for a fingerprint.

        A streamed fit resumed from a checkpoint hashes them to check that its
        rows gave the same statistics (``_stream_checkpoint.StatisticsDigest``).

        Returns
        -------
        arrays : list of Series and ndarray
            The vocabularies (values in code order) and the per-fold sums.
        """
        self._check_fitted()
        out = [self._fold_w, self._fold_s, self._fold_q]
        for vocab in [*self._vocab.values(), *self._pair_vocab.values()]:
            out.append(pd.Series(np.asarray(vocab.index), dtype=vocab.dtype))
        for s in self._sources:
            st = self._stats[s]
            out += [st.w, st.s] + ([] if st.q is None else [st.q])
        return out

    def _check_fitted(self):
        if self._n_targets is None:
            raise ValueError("TargetStatistics has no rows yet: call update first.")

    # -- statistics ---------------------------------------------------------

    def _encode(self, frame, fold):
        """Statistics of every row; ``fold`` None for the full-data values."""
        self._check_fitted()
        n, k = len(frame), self._n_targets
        if fold is None or self.prior == "all":
            n_w = np.full(n, self._fold_w.sum())  # (n,)
            t_s = np.broadcast_to(self._fold_s.sum(0), (n, k))  # (n, k)
            t_q = np.broadcast_to(self._fold_q.sum(0), (n, k))  # (n, k)
        else:
            n_w = self._fold_w.sum() - self._fold_w[fold]  # (n,)
            t_s = self._fold_s.sum(0) - self._fold_s[fold]  # (n, k)
            t_q = self._fold_q.sum(0) - self._fold_q[fold]  # (n, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            prior = t_s / n_w[:, None]  # (n, k)
            var = t_q / n_w[:, None] - prior**2  # (n, k)
        prior = np.where(np.isfinite(prior), prior, 0.0)  # (n, k)
        out = np.empty((n, len(self.feature_names_)))  # (n, n_out)
        col = 0
        for s, (local, rows) in self._source_codes(frame, grow=False).items():
            r = rows[local]  # (n,)
            out[:, col : col + k] = self._values(s, r, fold, prior, var)  # (n, k)
            col += k
        return pd.DataFrame(out, columns=self.feature_names_, index=frame.index)

    def _values(self, s, r, fold, prior, var) -> np.ndarray:
        """Statistics ``(n, k)`` of source ``s`` for value codes ``r`` ``(n,)``
        (-1: unseen, the prior), out of ``fold`` ``(n,)`` or (None) full-data."""
        st = self._stats[s]
        seen = r >= 0  # (n,)
        r = np.where(seen, r, 0)  # (n,)
        w = st.w[r].sum(1)  # (n,)
        sm = st.s[r].sum(1)  # (n, k)
        if fold is not None:
            w = w - st.w[r, fold]  # (n,)
            sm = sm - st.s[r, fold]  # (n, k)
        w = np.where(seen, w, 0.0)  # (n,)
        sm = np.where(seen[:, None], sm, 0.0)  # (n, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            if st.q is None:
                m = self.smooth
                value = (sm + m * prior) / (w[:, None] + m)  # (n, k)
            else:
                q = st.q[r].sum(1)  # (n, k)
                if fold is not None:
                    q = q - st.q[r, fold]  # (n, k)
                mean = sm / w[:, None]  # (n, k)
                s2 = np.maximum(q / w[:, None] - mean**2, 0.0)  # (n, k)
                lam = var * w[:, None] / (var * w[:, None] + s2)  # (n, k)
                value = lam * mean + (1.0 - lam) * prior  # (n, k)
        return np.where(np.isfinite(value), value, prior)  # (n, k)

    def lookup_tables(self) -> dict:
        """The full-data statistics as lookup tables, for a graph to gather from.

        What :meth:`transform` computes, evaluated once per vocabulary row, so
        that a row's statistic is a table look-up of its value's code (how
        ``to_onnx`` puts the statistics in its graph).

        Returns
        -------
        tables : dict
            ``"vocabularies"``: per source column, the Index of its values in
            code order (code ``i + 1`` is ``index[i]``, code 0 is missing);
            ``"pair_keys"``: per pair, its packed keys ``(a << 32) | b`` of the
            two columns' codes, in code order (code ``i + 1`` is ``keys[i]``);
            ``"tables"``: per source (a 1-tuple or a pair), an array of shape
            ``(n_codes + 1, k)``: row ``r`` the statistics of code ``r``, the
            last row those of an unseen value (the prior).
        """
        self._check_fitted()
        k = self._n_targets
        n_w = np.full(1, self._fold_w.sum())  # (1,)
        t_s = self._fold_s.sum(0)[None]  # (1, k)
        t_q = self._fold_q.sum(0)[None]  # (1, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            prior = t_s / n_w[:, None]  # (1, k)
            var = t_q / n_w[:, None] - prior**2  # (1, k)
        prior = np.where(np.isfinite(prior), prior, 0.0)  # (1, k)
        tables = {}
        for s in self._sources:
            n_codes = len(self._pair_vocab[s] if len(s) == 2 else self._vocab[s[0]])
            r = np.append(np.arange(n_codes), -1)  # (n_codes + 1,)
            n = len(r)
            tables[s] = self._values(
                s,
                r,
                None,
                np.broadcast_to(prior, (n, k)),
                np.broadcast_to(var, (n, k)),
            )  # (n_codes + 1, k)
        return {
            "vocabularies": {c: v.index for c, v in self._vocab.items()},
            "pair_keys": {
                p: np.asarray(v.index, dtype=np.int64)
                for p, v in self._pair_vocab.items()
            },
            "tables": tables,
        }

    def out_of_fold(self, frame, positions):
        """Out-of-fold statistics of training rows (those given to ``update``).

        Parameters
        ----------
        frame : DataFrame of shape (n_samples, n_columns)
            Training rows.
        positions : array-like of int of shape (n_samples,)
            Their positions in the training data, as given to ``update``.

        Returns
        -------
        stats : DataFrame of shape (n_samples, len(feature_names_))
            Each row's statistics from the training rows outside its fold.
        """
        positions = _check_positions(positions)
        if positions.shape != (len(frame),):
            raise ValueError(
                f"positions must have {len(frame)} values, got {positions.shape}."
            )
        return self._encode(frame, assign_folds(positions, self.n_folds, self.seed))

    def transform(self, frame):
        """Full-data statistics, for validation and prediction rows.

        Parameters
        ----------
        frame : DataFrame of shape (n_samples, n_columns)
            Any rows.

        Returns
        -------
        stats : DataFrame of shape (n_samples, len(feature_names_))
            Statistics from all accumulated training rows; the prior for
            unseen values.
        """
        return self._encode(frame, None)

    # -- state (save_model / load_model, to_onnx) -------------------------

    def to_state(self) -> dict:
        """Everything the statistics hold, as numpy arrays and plain values.

        What :meth:`transform` needs (the vocabularies, the per-value and
        per-fold sums, the fold totals) and what a later :meth:`update` needs to
        keep growing them; :meth:`from_state` rebuilds an equal object.
        ``save_model`` stores it without pickle.

        Returns
        -------
        state : dict
            ``columns``, ``pairs``, ``n_folds``, ``smooth``, ``prior``, ``seed``,
            ``n_targets`` (None before the first update), ``vocabularies``
            (``(column, Index)`` pairs in code order: code ``i + 1`` is
            ``index[i]``, code 0 missing), ``pair_keys`` (per pair, the packed
            int64 keys in code order), ``fold_w`` ``(F,)``, ``fold_s`` and
            ``fold_q`` ``(F, k)``, ``sums`` (per source ``(w, s, q)`` of shapes
            ``(V, F)``, ``(V, F, k)`` and ``(V, F, k)`` or None),
            ``feature_names``, ``sources`` and ``rows_seen`` (None if unset).
        """
        state = {
            "columns": list(self.columns),
            "pairs": [tuple(p) for p in self.pairs],
            "n_folds": self.n_folds,
            "smooth": self.smooth,
            "prior": self.prior,
            "seed": self.seed,
            "n_targets": self._n_targets,
            "vocabularies": [(c, v.index) for c, v in self._vocab.items()],
            "pair_keys": [
                np.asarray(self._pair_vocab[p].index, dtype=np.int64)
                for p in self.pairs
            ],
            "rows_seen": getattr(self, "rows_seen_", None),
        }
        if self._n_targets is None:
            return state
        sums = []
        for s in self._sources:
            n_codes = len(self._pair_vocab[s] if len(s) == 2 else self._vocab[s[0]])
            st = self._stats[s]
            sums.append(
                tuple(
                    None if a is None else a[:n_codes].copy()
                    for a in (st.w, st.s, st.q)
                )
            )
        state.update(
            fold_w=self._fold_w.copy(),
            fold_s=self._fold_s.copy(),
            fold_q=self._fold_q.copy(),
            sums=sums,
            feature_names=list(self.feature_names_),
            sources=dict(self.sources_),
        )
        return state

    @classmethod
    def from_state(cls, state: dict) -> TargetStatistics:
        """The statistics :meth:`to_state` described, checked for consistency.

        Parameters
        ----------
        state : dict
            A :meth:`to_state` dict (its arrays may come from an untrusted file:
            every shape is checked).

        Returns
        -------
        statistics : TargetStatistics

        Raises
        ------
        ValueError
            If the arrays do not fit the vocabularies, folds and targets.
        """
        ts = cls(
            state["columns"],
            state["pairs"],
            n_folds=state["n_folds"],
            smooth=state["smooth"],
            prior=state["prior"],
            seed=state["seed"],
        )
        vocabularies = dict(state["vocabularies"])
        if set(vocabularies) != set(ts._vocab):
            raise ValueError(
                f"target statistics hold vocabularies of {sorted(vocabularies)}, "
                f"their sources need {sorted(ts._vocab)}."
            )
        for c, index in vocabularies.items():
            if not isinstance(index, pd.Index) or not index.is_unique:
                raise ValueError(f"vocabulary of {c!r} must be a unique Index.")
            ts._vocab[c].index = pd.Index(index, dtype=ts._vocab[c].dtype)
        if len(state["pair_keys"]) != len(ts.pairs):
            raise ValueError("target statistics need one key array per pair.")
        for p, keys in zip(ts.pairs, state["pair_keys"], strict=True):
            keys = pd.Index(np.asarray(keys, dtype=np.int64))
            if keys.ndim != 1 or not keys.is_unique:
                raise ValueError(f"keys of pair {p!r} must be unique int64 values.")
            ts._pair_vocab[p].index = keys
        if state["rows_seen"] is not None:
            ts.rows_seen_ = int(state["rows_seen"])
        if state["n_targets"] is None:
            return ts
        k = int(state["n_targets"])
        if k < 1:
            raise ValueError(f"n_targets must be >= 1, got {k}.")
        ts._n_targets = k
        ts._start()
        F = ts.n_folds

        def array(value, shape, what):
            value = np.array(value, dtype=np.float64)  # a writable copy
            if value.shape != shape:
                raise ValueError(f"{what} must have shape {shape}, got {value.shape}.")
            return value

        ts._fold_w = array(state["fold_w"], (F,), "fold_w")
        ts._fold_s = array(state["fold_s"], (F, k), "fold_s")
        ts._fold_q = array(state["fold_q"], (F, k), "fold_q")
        if len(state["sums"]) != len(ts._sources):
            raise ValueError("target statistics need sums for every source.")
        for s, (w, sm, q) in zip(ts._sources, state["sums"], strict=True):
            n_codes = len(ts._pair_vocab[s] if len(s) == 2 else ts._vocab[s[0]])
            st = ts._stats[s]
            st.w = array(w, (n_codes, F), f"sums of {s!r}")
            st.s = array(sm, (n_codes, F, k), f"sums of {s!r}")
            if (q is None) != (st.q is None):
                raise ValueError(
                    f"sums of squares of {s!r} must be stored exactly when "
                    "smooth='auto'."
                )
            if q is not None:
                st.q = array(q, (n_codes, F, k), f"squares of {s!r}")
        if (
            list(state["feature_names"]) != ts.feature_names_
            or {name: tuple(s) for name, s in state["sources"].items()} != ts.sources_
        ):
            raise ValueError(
                "target statistics' feature names or sources do not fit their "
                "columns and pairs."
            )
        return ts


class _Sums:
    """Per (value, fold) sums of one source, grown as its vocabulary grows."""

    def __init__(self, n_folds, n_targets, with_squares):
        self.w = np.zeros((0, n_folds))  # (V, F)
        self.s = np.zeros((0, n_folds, n_targets))  # (V, F, k)
        self.q = np.zeros((0, n_folds, n_targets)) if with_squares else None

    def reserve(self, n_values):
        have = self.w.shape[0]
        if n_values <= have:
            return
        size = max(n_values, 2 * have, 16)
        grow = size - have
        self.w = np.concatenate([self.w, np.zeros((grow, *self.w.shape[1:]))])
        self.s = np.concatenate([self.s, np.zeros((grow, *self.s.shape[1:]))])
        if self.q is not None:
            self.q = np.concatenate([self.q, np.zeros((grow, *self.q.shape[1:]))])


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

    Returns
    -------
    columns : list of str
    pairs : list of (str, str)
    """
    if n_rows <= 0:
        raise ValueError(f"n_rows must be > 0, got {n_rows!r}.")
    distinct = {}
    columns = []
    for name, counts in category_counts.items():
        counts = np.asarray(counts, dtype=np.float64)
        counts = counts[counts > 0]
        distinct[name] = len(counts)
        share = counts[counts >= 2].sum() / n_rows
        if len(counts) > min_distinct and share >= min_repeated_share:
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
        ):
            scored.append((-share, order, pair))
    return columns, [p for _, _, p in sorted(scored)[:max_pairs]]
