"""polars DataFrames read as pandas ones, polars imported only when given one."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
