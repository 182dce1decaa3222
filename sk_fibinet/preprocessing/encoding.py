"""Turn a DataFrame or an array into one integer code per field.

Every input column becomes one embedding *field*:

* a categorical column gets a vocabulary learned in ``fit``; code ``0`` is
  reserved for missing values (None, NaN, ``pd.NA``), code ``1`` for values seen
  fewer than ``min_frequency`` times in training and for values never seen in
  training, codes ``2..`` for the known categories, most frequent first
  (:mod:`.categories`);
* a categorical column given ``hash_buckets`` (an open vocabulary, as in
  streaming) learns no vocabulary: every value maps by a stable hash to one of
  ``N`` buckets, codes ``2..N+1`` (:mod:`.hashing`);
* a numeric column gets one bin per value when it has few distinct values and
  at most ``n_bins`` quantile bins otherwise; code ``0`` is reserved for NaN
  (:mod:`.binning`).

So every field's codes lie in ``[0, cardinality)`` and no value, known or not,
can ever index outside its embedding rows.

After ``fit``, :meth:`FieldEncoder.add_crosses` may add *derived* fields, one
per crossed triple of fields (``cross_triples="auto"``, chosen by
:mod:`.triple_evidence`): a derived field's code is the combination of its three
fields' codes, ``(c_i card_j + c_j) card_k + c_k``, so it needs no vocabulary
and every combination (missing and "other" codes included) has its own code.
They come after the columns' fields.

The rules live in those modules; :class:`FieldEncoder` is the one place that
composes them: the in-memory fit, partial_fit and the streamed first pass all
learn through it and must agree code for code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .binning import _bin_edges, _numeric_values
from .categories import (
    MISSING_CODE,
    N_RESERVED,
    OTHER_CODE,
    _as_indexable,
    category_counts,
    resolve_categorical_mask,
)
from .hashing import HASH_FUNCTIONS, hash_codes, resolve_hash_buckets


class FieldEncoder(TransformerMixin, BaseEstimator):
    """Encode every column of a DataFrame or array into integer field codes.

    Parameters
    ----------
    categorical_features : "auto", None, array-like of bool, int or str, default="auto"
        Which columns are categorical. ``"auto"`` takes category, string, object
        and bool columns of a DataFrame; arrays are then all numeric.
    min_frequency : int, default=1
        Categories seen fewer times in ``fit`` share the "other" code with
        unseen categories.
    n_bins : int, default=64
        Maximum number of quantile bins per numeric column (missing values get
        one more); a column with at most ``MAX_EXACT_VALUES`` distinct values,
        seen ``MIN_ROWS_PER_VALUE`` times each on average, gets one bin per
        value instead.
    hash_buckets : int, dict or None, default=None
        Categorical columns that map their values by a stable hash to this many
        buckets instead of learning a vocabulary: an int for every categorical
        column, or a dict from column name (position, for arrays) to an int or
        None. ``min_frequency`` does not apply to them.

    Attributes
    ----------
    categorical_mask_ : ndarray of bool of shape (n_features,)
        Which columns are encoded as categorical.
    column_names_ : list of str
        Column names (positions for arrays), as strings.
    cardinalities_ : list of int
        Number of codes of each field (reserved codes included).
    vocabularies_ : list of pandas.Index or None
        Known categories of each categorical column (empty for hashed ones),
        ``None`` for numeric ones.
    hash_buckets_ : list of int or None
        Number of hash buckets of each hashed column, ``None`` for the others.
    hash_function_ : {"murmurhash3", "siphash"}
        The hash of the hashed columns: ``"murmurhash3"`` for every new fit,
        ``"siphash"`` for encoders fitted before (read from older files), which
        keep hashing as they did.
    bin_edges_ : list of ndarray or None
        Inner bin edges of each numeric column, ``None`` for categorical ones.
    crosses_ : list of (int, int, int)
        The columns' fields of each derived field (:meth:`add_crosses`); their
        cardinalities follow the columns' in ``cardinalities_``.
    """

    def __init__(
        self,
        *,
        categorical_features="auto",
        min_frequency=1,
        n_bins=64,
        hash_buckets=None,
    ):
        self.categorical_features = categorical_features
        self.min_frequency = min_frequency
        self.n_bins = n_bins
        self.hash_buckets = hash_buckets

    @staticmethod
    def _columns(X):
        """Return (names, list of columns, dtypes, is_frame)."""
        if isinstance(X, pd.DataFrame):
            names = list(X.columns)
            cols = [X.iloc[:, j] for j in range(X.shape[1])]
            return names, cols, [c.dtype for c in cols], True
        names = list(range(X.shape[1]))
        cols = [X[:, j] for j in range(X.shape[1])]
        return names, cols, [X.dtype] * X.shape[1], False

    def fit(self, X, y=None):
        """Learn vocabularies and bin edges.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : FieldEncoder
        """
        names, cols, dtypes, is_frame = self._columns(X)
        mask = resolve_categorical_mask(
            self.categorical_features, names, dtypes, is_frame
        )
        hashed = resolve_hash_buckets(self.hash_buckets, [str(n) for n in names], mask)
        stats = (  # one column at a time: no second copy of the numeric columns
            None  # hashed: nothing to count
            if buckets is not None
            else category_counts(col)
            if is_cat
            else _numeric_values(col, str(name))
            for name, col, is_cat, buckets in zip(
                names, cols, mask, hashed, strict=True
            )
        )
        return self._fit_stats(names, mask, stats)

    def _fit_stats(self, names, categorical_mask, stats):
        """Learn vocabularies and bin edges from per-column statistics.

        ``fit`` passes the statistics of a whole frame; a streamed fit
        (``data/stream_passes.py``) passes category counts summed over chunks and the
        numeric values of a bounded sample of rows.

        Parameters
        ----------
        names : list
            Column names, in order.
        categorical_mask : ndarray of bool of shape (n_features,)
            Which columns are categorical.
        stats : iterable
            One entry per column: for a categorical column a Series of counts
            indexed by category (from :func:`category_counts`, or several of
            them summed, first appearances first), for a numeric column its
            float64 values.

        Returns
        -------
        self : FieldEncoder
        """
        self.categorical_mask_ = np.asarray(categorical_mask, dtype=bool)
        self.column_names_ = [str(n) for n in names]
        self.hash_buckets_ = resolve_hash_buckets(
            self.hash_buckets, self.column_names_, self.categorical_mask_
        )
        self.hash_function_ = HASH_FUNCTIONS[0]
        self.crosses_ = []
        self.vocabularies_, self.bin_edges_, self.cardinalities_ = [], [], []
        for stat, is_cat, buckets in zip(
            stats, self.categorical_mask_, self.hash_buckets_, strict=True
        ):
            if buckets is not None:  # hashed: no vocabulary, the stats unused
                self.vocabularies_.append(pd.Index([], dtype=object))
                self.bin_edges_.append(None)
                self.cardinalities_.append(N_RESERVED + buckets)
            elif is_cat:
                # most frequent first, ties in order of first appearance (as
                # value_counts orders them: a no-op on its result)
                counts = stat.sort_values(ascending=False, kind="stable")
                kept = counts.index[counts.to_numpy() >= self.min_frequency]
                vocab = pd.Index(kept)
                self.vocabularies_.append(vocab)
                self.bin_edges_.append(None)
                self.cardinalities_.append(N_RESERVED + len(vocab))
            else:
                edges = _bin_edges(stat, self.n_bins)
                self.vocabularies_.append(None)
                self.bin_edges_.append(edges)
                self.cardinalities_.append(1 + edges.size + 1)
        return self

    def numeric_bins(self) -> list[int]:
        """Ordered bins per field: 0 for categorical, ``B`` for a numeric field.

        A numeric field's codes ``1..B`` are its bins from low to high (code 0
        is missing).

        Returns
        -------
        bins : list of int
            One entry per field, in field order.
        """
        bins = [0 if e is None else e.size + 1 for e in self.bin_edges_]
        return bins + [0] * len(self._crosses())

    def _crosses(self) -> list:
        return getattr(self, "crosses_", None) or []  # none before they existed

    def add_crosses(self, crosses) -> None:
        """Add one derived field per crossed triple of the columns' fields.

        Parameters
        ----------
        crosses : sequence of (int, int, int)
            Fields (column positions) of each triple, each within the columns'
            fields; the derived field gets ``card_i card_j card_k`` codes.
        """
        check_is_fitted(self)
        if self._crosses():
            raise RuntimeError("This encoder already has derived fields.")
        n_columns = len(self.column_names_)
        crosses = [tuple(int(f) for f in fields) for fields in crosses]
        for fields in crosses:
            if len(fields) != 3 or not all(0 <= f < n_columns for f in fields):
                raise ValueError(
                    f"A crossed triple names three of the {n_columns} columns' "
                    f"fields; got {fields}."
                )
        self.crosses_ = crosses
        for i, j, k in crosses:
            cards = self.cardinalities_
            self.cardinalities_.append(int(cards[i]) * int(cards[j]) * int(cards[k]))

    def field_names(self) -> list[str]:
        """Names of every field: the columns', then ``"a*b*c"`` per derived one.

        Returns
        -------
        names : list of str
        """
        names = list(self.column_names_)
        return names + ["*".join(names[f] for f in t) for t in self._crosses()]

    def cross_codes(self, codes) -> np.ndarray:
        """The columns' codes with the derived fields' codes appended.

        Parameters
        ----------
        codes : ndarray of int64 of shape (n_samples, n_columns)
            Codes of the columns' fields.

        Returns
        -------
        codes : ndarray of int64 of shape (n_samples, n_fields)
        """
        codes = np.asarray(codes, dtype=np.int64)
        crosses = self._crosses()
        if not crosses:
            return codes
        cards = self.cardinalities_
        derived = np.empty((codes.shape[0], len(crosses)), dtype=np.int64)  # (n, T)
        for t, (i, j, k) in enumerate(crosses):
            cell = codes[:, i] * cards[j] + codes[:, j]  # (n,)
            derived[:, t] = cell * cards[k] + codes[:, k]  # (n,)
        return np.concatenate([codes, derived], axis=1)  # (n, F)

    def transform(self, X):
        """Encode ``X`` into field codes.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_samples, n_features)
            Columns in the order seen in ``fit``.

        Returns
        -------
        codes : ndarray of int64 of shape (n_samples, n_fields)
            Codes of field ``j`` lie in ``[0, cardinalities_[j])``; the
            derived fields (:meth:`add_crosses`) follow the columns'.
        """
        check_is_fitted(self)
        _, cols, _, _ = self._columns(X)
        codes = np.empty((X.shape[0], len(cols)), dtype=np.int64)
        # encoders fitted before hashing existed have no hash_buckets_
        hashed = getattr(self, "hash_buckets_", None) or [None] * len(cols)
        # encoders pickled before MurmurHash3 have no hash_function_
        hash_function = getattr(self, "hash_function_", "siphash")
        for j, col in enumerate(cols):
            name = self.column_names_[j]
            vocab = self.vocabularies_[j]
            if hashed[j] is not None:
                codes[:, j] = hash_codes(col, hashed[j], hash_function)
            elif vocab is not None:
                codes[:, j] = self._encode_categorical(col, vocab, name)
            else:
                values = _numeric_values(col, name)
                # value <= edge goes to the lower bin, as in HistGradientBoosting
                out = np.searchsorted(self.bin_edges_[j], values, side="left") + 1
                out[np.isnan(values)] = MISSING_CODE
                codes[:, j] = out
        return self.cross_codes(codes)  # (n, F)

    @staticmethod
    def _encode_categorical(col, vocab, name) -> np.ndarray:
        col = _as_indexable(col)
        if (
            isinstance(col, pd.Series)
            and len(vocab)
            and vocab.inferred_type == "string"
            and pd.api.types.is_numeric_dtype(col.dtype)
            and not pd.api.types.is_bool_dtype(col.dtype)
        ):
            raise ValueError(
                f"Column {name!r} held text categories in fit but has numeric dtype "
                f"{col.dtype} here; pass the same kind of values as in fit."
            )
        values = pd.Index(col, copy=False) if not isinstance(col, pd.Index) else col
        found = vocab.get_indexer(values)  # -1 where unknown or missing
        out = np.where(found >= 0, found + N_RESERVED, OTHER_CODE)
        out[np.asarray(pd.isna(values), dtype=bool)] = MISSING_CODE
        return out
