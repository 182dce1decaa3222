import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor


def _as_polars(X: pd.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "color": pl.Series(X["color"].tolist(), dtype=pl.String),
            "size": pl.Series(X["size"].astype(str).tolist()).cast(pl.Categorical),
            "flag": pl.Series(X["flag"].tolist(), dtype=pl.Boolean),
            "amount": X["amount"].to_numpy(),
            "noise": X["noise"].to_numpy(),
        }
    )


@pytest.mark.parametrize("Estimator", [FiBiNETClassifier, FiBiNETRegressor])
def test_polars_frame_is_read_like_the_pandas_one(Estimator):
    X, y = make_mixed(n=400)
    X_pl = _as_polars(X)
    y = y.astype(float) if Estimator is FiBiNETRegressor else y
    a = Estimator(**FAST).fit(X_pl, y)
    b = Estimator(**FAST).fit(X, y)
    assert_array_equal(a.encoder_.categorical_mask_, [True, True, True, False, False])
    assert_array_equal(a.feature_names_in_, X.columns)
    assert_array_equal(a.encoder_.cardinalities_, b.encoder_.cardinalities_)
    predict = "predict_proba" if Estimator is FiBiNETClassifier else "predict"
    assert_array_equal(getattr(a, predict)(X_pl), getattr(b, predict)(X))
    # a polars frame at predict time after a pandas fit
    assert_array_equal(getattr(b, predict)(X_pl), getattr(b, predict)(X))


def test_polars_nulls_and_enum_columns():
    X, y = make_mixed(n=400)
    X_pl = _as_polars(X).with_columns(
        pl.when(pl.arange(0, 400) % 7 == 0)
        .then(None)
        .otherwise(pl.col("amount"))
        .alias("amount"),
        pl.col("color").cast(pl.Enum(["red", "green", "blue", "grey"])),
    )
    clf = FiBiNETClassifier(**FAST).fit(X_pl, y)
    assert clf.encoder_.categorical_mask_[0]
    assert np.isfinite(clf.predict_proba(X_pl)).all()


def test_unsupported_polars_dtype_names_the_column():
    X, y = make_mixed(n=50)
    X_pl = _as_polars(X).with_columns(pl.lit([1, 2]).alias("pairs"))
    with pytest.raises(TypeError, match="'pairs'"):
        FiBiNETClassifier(**FAST).fit(X_pl, y)
