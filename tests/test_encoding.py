import numpy as np
import pandas as pd
import pytest

from sk_fibinet.preprocessing.categories import (
    MISSING_CODE,
    OTHER_CODE,
    resolve_categorical_mask,
)
from sk_fibinet.preprocessing.encoding import FieldEncoder


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "text": pd.Series(["a", "b", "a", None, "c", "a"], dtype="str"),
            "obj": pd.Series(["x", 1, "x", "y", np.nan, "y"], dtype=object),
            "cat": pd.Categorical(["u", "v", "u", "u", None, "v"]),
            "flag": [True, False, True, True, False, False],
            "num": [1.0, 2.5, np.nan, 4.0, 5.0, np.inf],
            "int": [1, 2, 3, 4, 5, 6],
        }
    )


def test_auto_detects_categorical_dtypes(frame):
    enc = FieldEncoder().fit(frame)
    assert enc.categorical_mask_.tolist() == [True, True, True, True, False, False]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, [False, False, False]),
        ([True, False, True], [True, False, True]),
        ([2], [False, False, True]),
        ([-1], [False, False, True]),
        (["b"], [False, True, False]),
        ([], [False, False, False]),
    ],
)
def test_categorical_features_forms(spec, expected):
    mask = resolve_categorical_mask(spec, ["a", "b", "c"], [np.float64] * 3, True)
    assert mask.tolist() == expected


@pytest.mark.parametrize(
    "spec, match",
    [
        ("from_dtype", "categorical_features must be"),
        ([True], "boolean mask must have 3"),
        ([5], "out of range"),
        (["zz"], "zz"),
    ],
)
def test_bad_categorical_features(spec, match):
    with pytest.raises(ValueError, match=match):
        resolve_categorical_mask(spec, ["a", "b", "c"], [np.float64] * 3, True)


def test_codes_stay_in_range_and_reserve_missing_and_other(frame):
    enc = FieldEncoder(min_frequency=2).fit(frame)
    codes = enc.transform(frame)
    assert codes.dtype == np.int64
    assert (codes >= 0).all() and (codes < np.array(enc.cardinalities_)).all()
    text = codes[:, 0]
    assert text[3] == MISSING_CODE  # None
    assert text[4] == OTHER_CODE  # "c" seen once < min_frequency
    assert text[0] == text[2] == text[5] >= 2  # "a" is known
    assert text[1] == OTHER_CODE  # "b" seen once
    assert codes[4, 2] == MISSING_CODE  # categorical NaN
    assert codes[2, 4] == MISSING_CODE  # numeric NaN
    assert codes[5, 4] == enc.cardinalities_[4] - 1  # +inf -> top bin


def test_unseen_categories_map_to_other_never_out_of_range(frame):
    enc = FieldEncoder().fit(frame)
    new = frame.copy()
    new["text"] = pd.Series(["zzz", "a", None, "q", "a", "b"], dtype="str")
    new["cat"] = pd.Categorical(["w", "u", "u", None, "w", "v"])
    codes = enc.transform(new)
    assert codes[0, 0] == OTHER_CODE and codes[3, 0] == OTHER_CODE
    assert codes[2, 0] == MISSING_CODE
    assert codes[0, 2] == OTHER_CODE and codes[3, 2] == MISSING_CODE
    assert (codes < np.array(enc.cardinalities_)).all()


def test_category_codes_do_not_shift_when_categories_change():
    train = pd.DataFrame({"c": pd.Categorical(["a", "b", "c"])})
    enc = FieldEncoder().fit(train)
    test = pd.DataFrame({"c": pd.Categorical(["c"], categories=["c"])})
    assert enc.transform(test)[0, 0] == enc.transform(train)[2, 0]


def test_numeric_bins_are_monotone_and_capped():
    x = np.random.default_rng(0).lognormal(size=(1000, 1))
    enc = FieldEncoder(n_bins=16).fit(x)
    codes = enc.transform(x)[:, 0]
    assert enc.cardinalities_[0] <= 16 + 1
    order = np.argsort(x[:, 0])
    assert (np.diff(codes[order]) >= 0).all()
    assert len(np.unique(codes)) > 10


def test_few_distinct_numeric_values_get_exact_bins():
    x = np.array([[0.0], [1.0], [1.0], [7.0]])
    codes = FieldEncoder().fit_transform(x)[:, 0]
    assert len(set(codes)) == 3 and codes[1] == codes[2]


def test_large_integer_ids_are_not_cast_to_float():
    ids = np.array([2**53 + 1, 2**53 + 2, 2**53 + 1, 2**40], dtype=np.int64)
    frame = pd.DataFrame({"id": pd.Series(ids).astype("category")})
    codes = FieldEncoder().fit_transform(frame)[:, 0]
    assert codes[0] == codes[2] != codes[1]
    assert len(set(codes)) == 3


def test_discrete_numeric_column_keeps_its_values_apart_beyond_n_bins():
    # 100 amounts seen 30 times each: one bin per amount although n_bins=32,
    # as HistGradientBoosting keeps up to 255 distinct values apart.
    x = np.repeat(np.arange(100.0) * 50, 30)[:, None]
    codes = FieldEncoder(n_bins=32).fit_transform(x)[:, 0]
    assert np.unique(codes).size == 100


def test_few_rows_per_distinct_value_still_get_quantile_bins():
    # 100 distinct values in 200 rows: too few rows per value to learn each one.
    x = np.repeat(np.arange(100.0), 2)[:, None]
    enc = FieldEncoder(n_bins=32).fit(x)
    assert enc.cardinalities_[0] <= 32 + 1
    # beyond 255 distinct values a column is binned however many rows it has
    x = np.repeat(np.arange(300.0), 40)[:, None]
    assert FieldEncoder(n_bins=32).fit(x).cardinalities_[0] <= 32 + 1


def test_a_spike_gets_its_own_bin_and_the_tail_shares_the_rest_equally():
    # 900 zeros and 1000 distinct positive values: the zeros make one bin, the
    # tail is cut into equally full bins with the remaining budget.
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(900), rng.lognormal(size=1000)])[:, None]
    enc = FieldEncoder(n_bins=16).fit(x)
    codes = enc.transform(x)[:, 0]
    assert enc.cardinalities_[0] <= 16 + 1
    zero_code = codes[0]
    assert (codes[:900] == zero_code).all() and (codes[900:] != zero_code).all()
    tail = np.unique(codes[900:], return_counts=True)[1]
    assert tail.size >= 12 and tail.min() >= 1000 / tail.size / 2
