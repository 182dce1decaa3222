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

Where the parts live
--------------------
This module holds :class:`TargetStatistics`, the object that ties the parts
together: :mod:`.cross_fitting` assigns the folds and computes the statistics
from the sums (the formulas, and why these), :mod:`.target_sums` holds the value
codes and the sums accumulated chunk by chunk (missing values, pairs, costs),
:mod:`.target_state` the state ``save_model`` stores, and
:mod:`.target_selection` the rule that picks the columns and pairs.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd

from .cross_fitting import _check_positions, assign_folds, fold_priors, m_estimates
from .target_state import _StateMixin
from .target_sums import _Sums, _Vocabulary, source_codes


class TargetStatistics(_StateMixin):
    """Cross-fitted target statistics of categorical columns and column pairs.

    Accumulate the training rows chunk by chunk with :meth:`update`, then get the
    out-of-fold statistics of the training rows with :meth:`out_of_fold` and the
    full-data statistics of any other rows with :meth:`transform` (see
    :mod:`.cross_fitting` for the formulas and why).

    Parameters
    ----------
    columns : list of str
        Categorical columns to compute statistics of.
    pairs : list of (str, str)
        Column pairs to compute statistics of (their columns need not be in
        ``columns``).
    n_folds : int, default=10
        Number of cross-fitting folds. 10 rather than scikit-learn's 5: a
        training row's statistic then counts 90 % of the rows a prediction's
        does, not 80 %, and on the quality benchmark (3 seeds) Book-Crossing
        went 0.8628 -> 0.8706 ROC AUC and MIND 0.7251 -> 0.7259 (20 folds:
        0.8735, but MIND 0.7230).
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
        n_folds=10,
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
        return source_codes(
            frame, self._vocab, self._pair_vocab, self._sources, grow=grow
        )

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
        self._name_outputs()

    def _name_outputs(self):
        """``feature_names_`` and ``sources_`` of the current sources."""
        k = self._n_targets
        self.feature_names_, self.sources_ = [], {}
        for s in self._sources:
            name = "*".join(str(c) for c in s)
            for j in range(k):
                out = f"{name}:te" if k == 1 else f"{name}:te[{j}]"
                self.feature_names_.append(out)
                self.sources_[out] = s

    def keep(self, sources) -> None:
        """Keep only ``sources``; the other columns' and pairs' sums are dropped.

        Parameters
        ----------
        sources : list of tuple of str
            Sources to keep, as in ``sources_``: ``(column,)`` or a pair.

        Returns
        -------
        None

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> X = pd.DataFrame({"user": list("aabb"), "item": list("xyxy")})
        >>> ts = TargetStatistics(["user", "item"], [("user", "item")], n_folds=2)
        >>> ts.update(X, np.array([1.0, 0.0, 1.0, 0.0]), positions=np.arange(4))
        >>> ts.keep([("user", "item")])
        >>> ts.feature_names_, ts.columns
        (['user*item:te'], [])
        """
        wanted = {tuple(s) for s in sources}
        unknown = wanted - set(self._sources)
        if unknown:
            raise ValueError(
                f"keep: {sorted(unknown)} are not sources of these statistics."
            )
        if not wanted:
            raise ValueError("keep needs at least one source.")
        self._sources = [s for s in self._sources if s in wanted]
        self.columns = [s[0] for s in self._sources if len(s) == 1]
        self.pairs = [s for s in self._sources if len(s) == 2]
        members = dict.fromkeys(c for s in self._sources for c in s)
        self._vocab = {c: v for c, v in self._vocab.items() if c in members}
        self._pair_vocab = {p: self._pair_vocab[p] for p in self.pairs}
        if self._n_targets is not None:
            self._stats = {s: self._stats[s] for s in self._sources}
            self._name_outputs()

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
        pooled = fold is None or self.prior == "all"
        prior, var = fold_priors(
            self._fold_w, self._fold_s, self._fold_q, None if pooled else fold, n
        )  # (n, k) each
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
        st, m = self._stats[s], self.smooth
        return m_estimates(st.w, st.s, st.q, r, fold, prior, var, m)  # (n, k)

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
        prior, var = fold_priors(
            self._fold_w, self._fold_s, self._fold_q, None, 1
        )  # (1, k) each
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
