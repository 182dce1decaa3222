"""Categorical columns: which are categorical, how often each category occurs.

``categorical_features`` resolved to a mask of the columns (the same forms as
scikit-learn's ``HistGradientBoosting``: "auto" from the pandas dtypes, a
boolean mask, indices, names), the category counts a vocabulary is learned
from, and the codes every field reserves: code ``0`` for missing values (None,
NaN, ``pd.NA``; NaN in a numeric field), code ``1`` for categories seen fewer
than ``min_frequency`` times in training or never seen, codes ``2..`` for the
known categories or the hash buckets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MISSING_CODE = 0
OTHER_CODE = 1  # rare in training, or unseen at transform time
N_RESERVED = 2


def _is_categorical_dtype(dtype) -> bool:
    """Whether ``categorical_features="auto"`` treats ``dtype`` as categorical."""
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return True
    return False


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
