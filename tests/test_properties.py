"""Property-based tests: random mixed-dtype frames through fit and predict.

The strategies build DataFrames with every kind of column the estimator accepts
(pandas ``str``, category, object mixing str and int, bool, int, float with NaN
and +-inf), missing values, 1 to 8 columns and 2 to 200 rows, binary or
multiclass labels, and a second frame to predict with unseen categories and
missing values. Every frame drawn is valid input, so ``fit`` and ``predict``
must never raise.
"""

import io
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from sk_fibinet import FiBiNETClassifier, load_model, save_model
from sk_fibinet.preprocessing.encoding import FieldEncoder

TINY = dict(
    embedding_dim=2,
    hidden_layer_sizes=(4,),
    max_epochs=1,
    batch_size=32,
    random_state=0,
)
PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KINDS = ("str", "category", "object", "bool", "int", "float")
NULLABLE_KINDS = ("string", "boolean", "Int64")  # pandas' pd.NA dtypes
MAX_ROWS = 200
MAX_COLUMNS = 8

_WORDS = ["a", "b", "c", "red", "green", "", "é", "two words"]
_UNSEEN_WORDS = ["unseen", "zzz", "A", " a"]
_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _elements(kind, *, unseen):
    """Strategy for one value of a column of ``kind`` (None means missing)."""
    words = _WORDS + (_UNSEEN_WORDS if unseen else [])
    if kind in ("str", "string"):
        return st.one_of(st.none(), st.sampled_from(words))
    if kind == "boolean":
        return st.one_of(st.none(), st.booleans())
    if kind == "Int64":
        return st.one_of(st.none(), st.integers(-5, 5))
    if kind == "category":
        return st.one_of(st.none(), st.sampled_from(words[:4] + (["new"] * unseen)))
    if kind == "object":
        ints = st.integers(-3, 3 + 10 * unseen)
        return st.one_of(st.none(), st.sampled_from(words), ints)
    if kind == "bool":
        return st.booleans()
    if kind == "int":
        return st.one_of(
            st.integers(-5, 5), st.integers(np.iinfo(np.int64).min, 2**63 - 1)
        )
    return _FLOATS


def _column(kind, values, *, predict):
    """A pandas column of ``kind`` from the drawn ``values``."""
    if kind in ("str", "string", "boolean", "Int64"):
        return pd.Series(values, dtype=kind)
    if kind == "category":
        return pd.Series(pd.Categorical(values))
    if kind == "object":
        return pd.Series(values, dtype=object)
    if kind == "bool":
        if predict:  # a missing value at predict time makes it object
            return pd.Series([None if i == 0 else v for i, v in enumerate(values)])
        return pd.Series(values, dtype=bool)
    if kind == "int":
        return pd.Series(values, dtype=np.int64)
    return pd.Series(values, dtype=np.float64)


@st.composite
def problems(draw, *, kinds=KINDS):
    """(X, y, X_new, params): a training frame, labels, a frame to predict."""
    n_rows = draw(st.integers(2, MAX_ROWS), label="n_rows")
    n_columns = draw(st.integers(1, MAX_COLUMNS), label="n_columns")
    column_kinds = draw(
        st.lists(st.sampled_from(kinds), min_size=n_columns, max_size=n_columns),
        label="kinds",
    )
    n_new = draw(st.integers(1, 20), label="n_new")
    train, new = {}, {}
    for j, kind in enumerate(column_kinds):
        name = f"{kind}_{j}"
        values = draw(
            st.lists(_elements(kind, unseen=False), min_size=n_rows, max_size=n_rows)
        )
        train[name] = _column(kind, values, predict=False)
        values = draw(
            st.lists(_elements(kind, unseen=True), min_size=n_new, max_size=n_new)
        )
        new[name] = _column(kind, values, predict=True)
    X = pd.DataFrame(train)
    X_new = pd.DataFrame(new)

    n_classes = draw(st.integers(2, 4), label="n_classes")
    label_type = draw(st.sampled_from(["int", "str"]), label="label_type")
    classes = list(range(n_classes)) if label_type == "int" else list("pqrs")
    classes = classes[:n_classes]
    y = draw(
        st.lists(st.sampled_from(classes), min_size=n_rows, max_size=n_rows),
        label="y",
    )
    if len(set(y)) < 2:  # at least two classes present
        y[0], y[-1] = classes[0], classes[1]
    y = np.asarray(y)

    params = dict(
        TINY,
        min_frequency=draw(st.sampled_from([1, 2, 5]), label="min_frequency"),
        n_bins=draw(st.sampled_from([2, 3, 64]), label="n_bins"),
        bilinear_type=draw(st.sampled_from(["all", "each", "interaction"])),
    )
    return X, y, X_new, params


def _check_proba(clf, X, proba):
    assert proba.shape == (len(X), len(clf.classes_))
    assert proba.dtype == np.float64
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12, atol=1e-12)


@PROPERTY_SETTINGS
@given(problems(kinds=KINDS + NULLABLE_KINDS))
def test_fit_predict_on_random_mixed_frames(problem):
    X, y, X_new, params = problem
    clf = FiBiNETClassifier(**params).fit(X, y)

    assert_array_equal(clf.classes_, np.unique(y))
    assert clf.n_features_in_ == X.shape[1]
    assert_array_equal(clf.feature_names_in_, X.columns)
    assert np.isfinite(clf.feature_importances_).all()
    for frame in (X, X_new):
        proba = clf.predict_proba(frame)
        _check_proba(clf, frame, proba)
        pred = clf.predict(frame)
        assert pred.shape == (len(frame),)
        assert pred.dtype == clf.classes_.dtype
        assert np.isin(pred, clf.classes_).all()
        assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    # columns are matched by name, whatever their order
    reordered = X_new[X_new.columns[::-1]]
    assert_array_equal(clf.predict_proba(reordered), clf.predict_proba(X_new))
    # the safe file format round-trips every frame the strategies build
    buffer = io.BytesIO()
    save_model(clf, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    assert_array_equal(loaded.predict_proba(X_new), clf.predict_proba(X_new))
    assert loaded.classes_.dtype == clf.classes_.dtype


@PROPERTY_SETTINGS
@given(problems(kinds=("int", "float")))
def test_numeric_arrays_without_feature_names(problem):
    X, y, X_new, params = problem
    clf = FiBiNETClassifier(**params).fit(X.to_numpy(dtype=np.float64), y)
    assert not hasattr(clf, "feature_names_in_")
    assert not clf.encoder_.categorical_mask_.any()
    new = X_new.to_numpy(dtype=np.float64)
    _check_proba(clf, new, clf.predict_proba(new))
    assert np.isin(clf.predict(new), clf.classes_).all()


@PROPERTY_SETTINGS
@given(
    values=st.lists(
        st.one_of(
            st.integers(-800, 800).map(lambda i: i / 8),  # exact midpoints
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ),
        min_size=1,
        max_size=200,
    ),
    n_bins=st.integers(2, 16),
)
def test_numeric_codes_are_ordered_and_keep_few_values_apart(values, n_bins):
    x = np.asarray(values, dtype=np.float64)
    encoder = FieldEncoder(n_bins=n_bins).fit(x[:, None])
    codes = encoder.transform(x[:, None])[:, 0]
    cardinality = encoder.cardinalities_[0]
    assert ((codes >= 0) & (codes < cardinality)).all()
    assert_array_equal(codes == 0, np.isnan(x))  # code 0 is NaN, and only NaN
    known = ~np.isnan(x)
    order = np.argsort(x[known], kind="stable")
    assert (np.diff(codes[known][order]) >= 0).all()  # monotone in the value
    assert (codes[x == -np.inf] == 1).all()
    assert (codes[x == np.inf] == cardinality - 1).all()
    finite = x[np.isfinite(x)]
    distinct = np.unique(finite)
    if 0 < distinct.size <= n_bins:  # exact values: one bin each
        finite_codes = codes[np.isfinite(x)]
        assert np.unique(finite_codes).size == distinct.size


# ------------------------------------------------ bugs the properties turned up
# These fail today; they pass once the encoder is fixed (then drop the marker).


def test_bin_midpoints_do_not_overflow():
    x = np.array([[1e308], [1.7e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        codes = FieldEncoder().fit(x).transform(x)[:, 0]
    assert codes[0] != codes[1]


def test_adjacent_floats_keep_their_own_bins():
    x = np.array([[np.nextafter(1.0, 0.0)], [1.0]])
    codes = FieldEncoder().fit(x).transform(x)[:, 0]
    assert codes[0] != codes[1]


def test_float16_column_declared_categorical():
    X = pd.DataFrame({"a": np.array([1, 2, 3, 1], dtype=np.float16)})
    clf = FiBiNETClassifier(**TINY, categorical_features=["a"])
    clf.fit(X, [0, 1, 0, 1])
    assert np.isfinite(clf.predict_proba(X)).all()
