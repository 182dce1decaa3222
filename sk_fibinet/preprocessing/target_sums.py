"""What target statistics accumulate: value codes and per (value, fold) sums.

Every source (a column or a pair of columns) keeps a vocabulary of the values
seen so far and, per (value, fold), the weighted row count ``W``, the weighted
target sums ``S`` and, for ``smooth="auto"``, the weighted sums of squares ``Q``
(:mod:`.cross_fitting` turns them into statistics). Both grow chunk by chunk.

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

import numpy as np
import pandas as pd


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


def source_codes(frame, vocabularies, pair_vocabularies, sources, *, grow: bool):
    """Global code (-1 unseen) of every row, per source: ``{source: (n,)}``.

    Parameters
    ----------
    frame : DataFrame of shape (n_samples, n_columns)
        Rows holding the source columns.
    vocabularies : dict of str to _Vocabulary
        The vocabulary of every column a source uses.
    pair_vocabularies : dict of (str, str) to _Vocabulary
        The vocabulary of the packed keys of every pair.
    sources : list of tuple of str
        The sources: 1-tuples (columns) and pairs.
    grow : bool
        Whether values not in a vocabulary are added to it (training rows) or
        left unseen.

    Returns
    -------
    codes : dict of tuple of str to (ndarray, ndarray)
        Per source, ``(local, rows)`` of shapes ``(n_samples,)`` and
        ``(n_local,)``: ``rows[local]`` is each row's global code, -1 unseen.
    """
    codes = {}
    for c, vocab in vocabularies.items():
        local, rows = vocab.encode(_column(frame, c), grow=grow)
        codes[(c,)] = (local, rows)
    out = {}
    for s in sources:
        if len(s) == 1:
            out[s] = codes[s]
            continue
        a = codes[(s[0],)][1][codes[(s[0],)][0]]  # (n,)
        b = codes[(s[1],)][1][codes[(s[1],)][0]]  # (n,)
        unseen = (a < 0) | (b < 0)  # (n,)
        key = (a.astype(np.int64) << 32) | b.astype(np.int64)  # (n,)
        local, rows = pair_vocabularies[s].encode(key, grow=grow)
        local = np.where(unseen, 0, local)  # (n,)
        if not grow:
            rows[0] = -1  # local 0: an unseen column value (keys never miss)
        out[s] = (local, rows)
    return out


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
