"""Turn a DataFrame or an array into one integer code per field.

Every input column becomes one embedding *field*:

* a categorical column gets a vocabulary learned in ``fit``; code ``0`` is
  reserved for missing values (None, NaN, ``pd.NA``), code ``1`` for values seen
  fewer than ``min_frequency`` times in training and for values never seen in
  training, codes ``2..`` for the known categories, most frequent first;
* a categorical column given ``hash_buckets`` (an open vocabulary, as in
  streaming) learns no vocabulary: every value maps by a stable hash to one of
  ``N`` buckets, codes ``2..N+1`` (code ``0`` is still missing, code ``1`` is
  unused), so values first met after ``fit`` get trained rows of their own,
  shared with the values that collide with them. The hash is MurmurHash3
  (32 bits, seed ``HASH_SEED``) of the value's UTF-8 text, which onnxruntime's
  ``com.microsoft.MurmurHash3`` operator computes bit for bit, so an exported
  graph hashes as ``transform`` does; encoders fitted before it (format 2 files)
  keep pandas' SipHash, recorded in ``hash_function_``;
* a numeric column with few distinct values (at most ``n_bins``, or at most
  ``MAX_EXACT_VALUES`` = 255 with at least ``MIN_ROWS_PER_VALUE`` = 20 rows per
  value on average: ages, counts, amounts from a short list) gets one bin per
  value, as ``HistGradientBoosting`` does; any other numeric column is cut into
  at most ``n_bins`` quantile bins (a value more frequent than a bin's share,
  such as a spike of zeros, gets a bin of its own and the other values share
  the remaining bins equally; a value equal to an edge goes to the lower bin);
  code ``0`` is reserved for NaN, ``±inf`` fall into the outermost bins.

So every field's codes lie in ``[0, cardinality)`` and no value, known or not,
can ever index outside its embedding rows.

Over 500 lines because the encoding rules (vocabularies, rare, missing and
unknown codes, numeric bins, stable hashing) must stay in one place: the
in-memory fit, partial_fit and the streamed first pass all learn through
``FieldEncoder`` and must agree code for code.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import murmurhash3_32
from sklearn.utils.validation import check_is_fitted

MISSING_CODE = 0
OTHER_CODE = 1  # rare in training, or unseen at transform time
N_RESERVED = 2
# A numeric column with at most this many distinct values, each seen in
# MIN_ROWS_PER_VALUE rows on average, keeps its values apart whatever n_bins:
# on Adult, age, capital_gain, capital_loss and hours_per_week (73-119 values)
# kept apart, not cut into 32 quantile bins, took the test log loss from
# 0.2869 to 0.2753 over 3 seeds (docs/encoding.rst).
MAX_EXACT_VALUES = 255
MIN_ROWS_PER_VALUE = 20
# Seed of the MurmurHash3 (x86, 32 bits, as scikit-learn's murmurhash3_32 and
# onnxruntime's com.microsoft.MurmurHash3 compute it) applied to the UTF-8 text
# of categories given hash_buckets. Saved models, every worker of a cluster and
# exported ONNX graphs rely on the same value landing in the same bucket: never
# change it (Python's own hash() is salted per process and could not be used).
HASH_SEED = 0x5F1B1E7
# Key of the SipHash-2-4 that pandas' hash_array applied before MurmurHash3:
# encoders fitted then (hash_function_ == "siphash") keep it.
HASH_KEY = "sk_fibinet/hash1"  # 16 bytes
#: Hash functions of ``FieldEncoder.hash_function_``: new fits use the first.
HASH_FUNCTIONS = ("murmurhash3", "siphash")


def _is_categorical_dtype(dtype) -> bool:
    """Whether ``categorical_features="auto"`` treats ``dtype`` as categorical."""
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return True
    return False


def is_polars_frame(X) -> bool:
    """Whether ``X`` is a polars DataFrame (without importing polars)."""
    return type(X).__module__.split(".")[0] == "polars" and hasattr(X, "schema")


def polars_to_pandas(X) -> pd.DataFrame:
    """A pandas DataFrame with the same columns, categorical ones as such.

    polars ``Categorical``, ``Enum`` and ``String`` columns become pandas
    ``category`` / ``str`` columns and ``Boolean`` columns ``boolean`` (all
    detected as categorical by ``"auto"``); numeric columns become float64 or
    int64 arrays, nulls as NaN. Needs no pyarrow.

    Parameters
    ----------
    X : polars.DataFrame

    Returns
    -------
    frame : DataFrame
    """
    import polars as pl

    columns = {}
    for name, series in zip(X.columns, X.get_columns(), strict=True):
        dtype = series.dtype
        if isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype in (
            pl.Categorical,
            pl.Enum,
        ):
            columns[name] = pd.Categorical(series.cast(pl.String).to_list())
        elif dtype == pl.String:
            columns[name] = pd.Series(series.to_list(), dtype="str")
        elif dtype == pl.Boolean:
            columns[name] = pd.Series(series.to_list(), dtype="boolean")
        elif dtype.is_numeric():
            if series.null_count():
                columns[name] = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
            else:
                columns[name] = series.to_numpy()
        else:
            raise TypeError(
                f"Column {name!r} has the polars dtype {dtype}, which sk_fibinet "
                "does not take; cast it to a numeric, String, Categorical or "
                "Boolean column."
            )
    return pd.DataFrame(columns)


def resolve_categorical_mask(categorical_features, columns, dtypes, is_frame):
    """Return a boolean mask of the categorical columns.

    Parameters
    ----------
    categorical_features : "auto", None, array-like of bool, int or str
        Same forms as ``HistGradientBoostingClassifier.categorical_features``.
    columns : list
        Column names (DataFrame) or positions (array).
    dtypes : list
        One dtype per column.
    is_frame : bool
        Whether the input was a DataFrame (column names can be used).

    Returns
    -------
    mask : ndarray of bool of shape (n_columns,)
    """
    n = len(columns)
    if categorical_features is None:
        return np.zeros(n, dtype=bool)
    if isinstance(categorical_features, str):
        if categorical_features != "auto":
            raise ValueError(
                "categorical_features must be 'auto', None, a boolean mask, "
                f"indices or column names, got {categorical_features!r}."
            )
        if not is_frame:
            # Plain arrays carry no per-column dtype: they are numeric, like
            # HistGradientBoosting's "from_dtype" on an ndarray.
            return np.zeros(n, dtype=bool)
        return np.array([_is_categorical_dtype(d) for d in dtypes], dtype=bool)

    values = np.asarray(categorical_features)
    if values.ndim != 1:
        raise ValueError(
            f"categorical_features must be 1-dimensional, got shape {values.shape}."
        )
    if values.size == 0:
        return np.zeros(n, dtype=bool)
    if values.dtype.kind == "b":
        if values.size != n:
            raise ValueError(
                f"categorical_features as a boolean mask must have {n} entries "
                f"(one per column), got {values.size}."
            )
        return values.astype(bool)
    mask = np.zeros(n, dtype=bool)
    if values.dtype.kind in "iu":
        bad = [int(i) for i in values if not -n <= i < n]
        if bad:
            raise ValueError(
                f"categorical_features has indices {bad} out of range for {n} columns."
            )
        mask[values] = True
        return mask
    if values.dtype.kind in "OUT":
        if not is_frame:
            raise ValueError(
                "categorical_features names columns, but X has no column names "
                "(pass a DataFrame, or give indices or a boolean mask)."
            )
        position = {str(c): i for i, c in enumerate(columns)}
        unknown = [str(v) for v in values if str(v) not in position]
        if unknown:
            raise ValueError(
                f"categorical_features names columns {unknown} that are not in X; "
                f"X has columns {[str(c) for c in columns]}."
            )
        mask[[position[str(v)] for v in values]] = True
        return mask
    raise ValueError(
        "categorical_features must be 'auto', None, a boolean mask, indices or "
        f"column names, got an array of dtype {values.dtype}."
    )


def _numeric_values(column, name) -> np.ndarray:
    """Return a numeric column as float64, or raise a ValueError naming it."""
    if isinstance(column, pd.Series):
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
        ):
            raise ValueError(
                f"Column {name!r} is treated as numeric but has dtype {dtype}: "
                "pass numbers (as in fit), or list the column in "
                "categorical_features."
            )
        column = (
            column.to_numpy(dtype=np.float64, na_value=np.nan)
            if (not pd.api.types.is_object_dtype(dtype))
            else column.to_numpy()
        )
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} is numeric but holds values that are not numbers "
            f"({exc}). Declare it in categorical_features or convert it."
        ) from exc


def _bin_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges for one numeric column (finite, sorted, unique)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.empty(0)
    distinct = np.unique(finite)
    exact = min(MAX_EXACT_VALUES, finite.size // MIN_ROWS_PER_VALUE)
    if distinct.size <= max(n_bins, exact):
        lo, hi = distinct[:-1], distinct[1:]
        mid = lo / 2 + hi / 2  # halves first: no overflow near the float max
        return np.where(mid < hi, mid, lo)  # adjacent floats: lo <= edge < hi
    # Equal-frequency bins, except that a value more frequent than a bin's
    # share (a spike: 82% of Bank's pdays are -1) gets a bin of its own and the
    # other values share the remaining bins equally (LightGBM's greedy binning
    # does the same), so the tail keeps n_bins' resolution with full bins.
    counts = np.unique(finite, return_counts=True)[1]
    spike = np.zeros(distinct.size, dtype=bool)
    while True:
        n_left = n_bins - 2 * int(spike.sum())  # a spike costs up to 2 bins
        rows_left = counts[~spike].sum()
        new = ~spike & (counts * max(n_left, 1) > rows_left)
        if not new.any() or n_left - 2 * int(new.sum()) < 1:
            break
        spike |= new
    n_left = n_bins - 2 * int(spike.sum())
    rest = finite[~np.isin(finite, distinct[spike])]
    edges = [distinct[spike]]  # value <= edge: each spike ends a bin...
    below = np.flatnonzero(spike[1:]) + 1  # ...that starts above its neighbour
    lo, hi = distinct[below - 1], distinct[below]
    mid = lo / 2 + hi / 2  # halves first: no overflow near the float max
    edges.append(np.where(mid < hi, mid, lo))
    if rest.size and n_left > 1:
        edges.append(np.quantile(rest, np.linspace(0, 1, n_left + 1)[1:-1]))
    edges = np.unique(np.concatenate(edges))
    return edges[edges < distinct[-1]]  # no empty bin above the largest value


def _as_indexable(col):
    """A categorical column in a form ``pd.Index`` can hash."""
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        return col.astype(object)
    if getattr(col, "dtype", None) == np.float16:  # pandas has no float16 index
        return col.astype(np.float64)
    return col


def category_counts(col) -> pd.Series:
    """How often each category of a column occurs, missing values left out.

    Parameters
    ----------
    col : Series or ndarray
        A categorical column.

    Returns
    -------
    counts : Series
        Counts indexed by category, most frequent first, ties in order of first
        appearance.
    """
    return pd.Series(_as_indexable(col), copy=False).value_counts(dropna=True)


def resolve_hash_buckets(hash_buckets, column_names, categorical_mask) -> list:
    """Number of hash buckets of every column, None where it keeps a vocabulary.

    Parameters
    ----------
    hash_buckets : int, dict or None
        An int for every categorical column, a dict from column name (or
        position, for arrays) to an int or None, or None for no hashing.
    column_names : list of str
        Column names (positions for arrays), as strings.
    categorical_mask : ndarray of bool
        Which columns are categorical.

    Returns
    -------
    buckets : list of int or None
        One entry per column.
    """
    n = len(column_names)
    if hash_buckets is None:
        return [None] * n
    if isinstance(hash_buckets, Integral) and not isinstance(hash_buckets, bool):
        if hash_buckets < 1:
            raise ValueError(f"hash_buckets must be >= 1, got {hash_buckets!r}.")
        return [int(hash_buckets) if m else None for m in categorical_mask]
    if not isinstance(hash_buckets, dict):
        raise TypeError(
            "hash_buckets must be None, an int or a dict from column name to int, "
            f"got {type(hash_buckets).__name__}."
        )
    position = {name: i for i, name in enumerate(column_names)}
    out = [None] * n
    for key, value in hash_buckets.items():
        i = position.get(str(key))
        if i is None:
            raise ValueError(
                f"hash_buckets names column {key!r}, which is not in X; X has "
                f"columns {list(column_names)}."
            )
        if not categorical_mask[i]:
            raise ValueError(
                f"hash_buckets names column {key!r}, which is numeric (it is cut "
                "into bins, not hashed); list it in categorical_features to hash "
                "its values."
            )
        if value is None:
            continue
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"hash_buckets[{key!r}] must be an int >= 1 or None, got {value!r}."
            )
        out[i] = int(value)
    return out


def _canonical_text(uniques) -> np.ndarray:
    """Distinct non-missing values as text: equal values of any dtype agree.

    ``5``, ``5.0``, ``np.int32(5)`` and ``"5"`` all become ``"5"``, so a column
    read as int in one chunk and as float (it had a NaN) or text in the next
    hashes the same; booleans become ``"True"`` / ``"False"``.
    """
    values = np.asarray(uniques)
    if values.dtype.kind == "b":
        return np.where(values, "True", "False").astype(object)
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        f = values.astype(np.float64)  # float32 0.1 reads as the float64 it is
        integral = np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63)
        out = f.astype(str).astype(object)
        out[integral] = f[integral].astype(np.int64).astype(str)
        return out
    if values.dtype.kind != "O":  # text, dates
        return values.astype(str).astype(object)
    out = np.empty(values.size, dtype=object)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, bool):
            out[i] = "True" if v else "False"
        elif isinstance(v, Integral):
            out[i] = str(int(v))
        elif isinstance(v, Real):
            f = float(v)
            integral = np.isfinite(f) and f.is_integer() and abs(f) < 2.0**63
            out[i] = str(int(f)) if integral else str(np.float64(f))
        else:
            out[i] = str(v)
    return out


def _murmurhash3(texts) -> np.ndarray:
    """``(n,)`` uint32 MurmurHash3 of each text's UTF-8 bytes, seed ``HASH_SEED``."""
    return np.fromiter(
        (murmurhash3_32(t, seed=HASH_SEED, positive=True) for t in texts),
        dtype=np.uint64,
        count=len(texts),
    )  # (n,)


def hash_codes(col, n_buckets: int, hash_function: str = "murmurhash3") -> np.ndarray:
    """Codes of one categorical column by stable hashing into ``n_buckets``.

    Parameters
    ----------
    col : Series or ndarray of shape (n_samples,)
    n_buckets : int
    hash_function : {"murmurhash3", "siphash"}, default="murmurhash3"
        ``"murmurhash3"``: MurmurHash3 (32 bits, seed ``HASH_SEED``, unsigned)
        of the value's UTF-8 text, modulo ``n_buckets``. ``"siphash"``: pandas'
        SipHash-2-4 with key ``HASH_KEY``, as encoders fitted before
        MurmurHash3 hashed.

    Returns
    -------
    codes : ndarray of int64 of shape (n_samples,)
        ``MISSING_CODE`` for missing values, otherwise in
        ``[N_RESERVED, N_RESERVED + n_buckets)``.
    """
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        # hash the categories, not every row
        index, uniques = col.cat.codes.to_numpy(), col.cat.categories.to_numpy()
    else:
        index, uniques = pd.factorize(_as_indexable(col), use_na_sentinel=True)
    texts = _canonical_text(uniques)  # (n_uniques,) object
    if hash_function == "murmurhash3":
        hashes = _murmurhash3(texts)  # (n_uniques,) uint64
    elif hash_function == "siphash":
        hashes = pd.util.hash_array(
            texts, hash_key=HASH_KEY, categorize=False
        )  # (n_uniques,) uint64
    else:
        raise ValueError(
            f"hash_function must be one of {HASH_FUNCTIONS}, got {hash_function!r}."
        )
    buckets = (hashes % np.uint64(n_buckets)).astype(np.int64) + N_RESERVED
    index = np.asarray(index, dtype=np.int64)
    found = index >= 0
    out = np.full(index.shape, MISSING_CODE, dtype=np.int64)
    out[found] = buckets[index[found]]
    return out


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
        (``data/streaming.py``) passes category counts summed over chunks and the
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
        return [0 if e is None else e.size + 1 for e in self.bin_edges_]

    def transform(self, X):
        """Encode ``X`` into field codes.

        Parameters
        ----------
        X : DataFrame or ndarray of shape (n_samples, n_features)
            Columns in the order seen in ``fit``.

        Returns
        -------
        codes : ndarray of int64 of shape (n_samples, n_features)
            Codes of field ``j`` lie in ``[0, cardinalities_[j])``.
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
        return codes

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
