"""to_onnx: one ONNX graph from raw columns to predictions, equal to predict_proba."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_ids
from numpy.testing import assert_allclose, assert_array_equal

from sk_fibinet import (
    FiBiNETClassifier,
    FiBiNETRegressor,
    load_model,
    onnx_inputs,
    save_model,
    to_onnx,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# The graph is the float32 model: parity to 1e-5 is checked against float32
# predictions; test_bfloat16_model_exports_its_float32_evaluation covers a
# model that predicts in bfloat16 ("auto" on CPUs with native bfloat16).
SMALL = dict(
    precision="float32",
    embedding_dim=4,
    hidden_layer_sizes=(8,),
    batch_size=64,
    max_epochs=2,
    learning_rate=1e-2,
    random_state=0,
)


def make_frame(n=400, seed=0):
    """Every kind of column: text with None, str with NaN, category, bool, an
    integer category, int and float numbers with NaN; a rare category and a
    signal."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "grey"], size=n).astype(object)
    color[rng.random(n) < 0.05] = None
    color[0] = "violet"  # seen once: rare (min_frequency=2)
    city = pd.Series(
        rng.choice(["Lyon", "Köln", "東京", "Zürich"], size=n), dtype="str"
    )
    city[rng.random(n) < 0.05] = np.nan
    size = pd.Categorical(rng.choice(["S", "M", "L"], size=n))
    flag = rng.random(n) < 0.5
    children = rng.integers(0, 4, size=n)  # int, declared categorical
    age = rng.integers(18, 90, size=n)  # int, numeric
    amount = rng.normal(size=n)
    amount[rng.random(n) < 0.05] = np.nan
    logit = (
        1.2 * (color == "red")
        + 0.8 * flag
        + np.nan_to_num(amount)
        - 0.5 * (children == 2)
    )
    X = pd.DataFrame(
        {
            "color": color,
            "city": city,
            "size": size,
            "flag": flag,
            "children": children,
            "age": age,
            "amount": amount,
        }
    )
    return X, logit + rng.logistic(size=n) * 0.5


def held_out(X):
    """Rows of ``X`` plus unseen categories, NaN and None everywhere, values on
    the bin edges."""
    new = X.head(12).copy()
    new["color"] = ["purple", None, np.nan, "violet", "red", "None", *["blue"] * 6]
    new["city"] = pd.Series(
        ["Paris", None, "Lyon", "東京", *[np.nan] * 8], dtype="str", index=new.index
    )
    new["size"] = pd.Categorical(["XL", None, "S", "M", *["L"] * 8])
    new["children"] = [7, 0, 1, 2, 3, -1, *[0] * 6]
    new["amount"] = [np.nan, np.inf, -np.inf, 0.0, *[1e9] * 8]
    return pd.concat([X.tail(40), new], ignore_index=True)


CATEGORICAL = ["color", "city", "size", "flag", "children"]


def session(model):
    return ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def assert_classifier_matches(clf, X):
    label, proba = session(to_onnx(clf)).run(None, onnx_inputs(clf, X))
    assert proba.shape == (len(X), len(clf.classes_))
    assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-5)
    assert_array_equal(label, clf.predict(X))


def assert_regressor_matches(reg, X):
    (pred,) = session(to_onnx(reg)).run(None, onnx_inputs(reg, X))
    assert pred.shape == (len(X), 1)
    assert_allclose(pred[:, 0], reg.predict(X), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def frame():
    X, score = make_frame()
    return X, score


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
def test_binary_classifier_matches_predict_proba(frame, variant, bilinear_type):
    X, score = frame
    y = np.where(score > 0.5, "click", "no click")
    clf = FiBiNETClassifier(
        **SMALL,
        variant=variant,
        bilinear_type=bilinear_type,
        categorical_features=CATEGORICAL,
    ).fit(X, y)
    assert_classifier_matches(clf, held_out(X))


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
@pytest.mark.parametrize(
    "labels, kind",
    [(np.array(["a", "b", "c"], dtype=object), "O"), (np.array([3, 10, 20]), "i")]
    + [(None, "b")],
    ids=["str", "int", "bool"],
)
def test_multiclass_and_label_types_match_predict(frame, variant, labels, kind):
    X, score = frame
    if labels is None:  # bool labels: a binary problem
        y = score > 0.5
    else:
        y = labels[np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))]
    clf = FiBiNETClassifier(
        **SMALL, variant=variant, categorical_features=CATEGORICAL
    ).fit(X, y)
    clf.temperature_ = 1.7  # the graph divides by it as predict_proba does
    assert_classifier_matches(clf, held_out(X))
    label, _ = session(to_onnx(clf)).run(None, onnx_inputs(clf, X.head(5)))
    assert label.dtype.kind == kind


def test_without_linear_part_and_with_crossed_pairs(frame):
    X, score = frame
    y = score > 0.5
    kw = dict(SMALL, categorical_features=CATEGORICAL)
    plain = FiBiNETClassifier(**kw, linear=False).fit(X, y)
    assert plain.net_.module_.linear is None and plain.net_.module_.cross is None
    assert_classifier_matches(plain, held_out(X))
    crossed = FiBiNETClassifier(**kw, max_cross_cells=64).fit(X, y)
    assert crossed.net_.module_.cross is not None  # some pairs are crossed
    assert crossed.net_.module_.cross.n_pairs >= 2
    assert_classifier_matches(crossed, held_out(X))


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_matches_predict_on_the_original_scale(frame, variant, loss):
    X, score = frame
    y = np.exp(score / 2) * 10 if loss == "poisson" else 50 + 20 * score
    reg = FiBiNETRegressor(
        **SMALL, variant=variant, loss=loss, categorical_features=CATEGORICAL
    ).fit(X, y)
    assert reg.target_scale_ != 1.0
    assert_regressor_matches(reg, held_out(X))


def codes_model(model):
    """The exported model with the encoder's ``(batch, F)`` codes as an output."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(
            "sk_fibinet/codes", onnx.TensorProto.INT64, ["batch", None]
        )
    )
    return model


def test_graph_hashes_and_bins_exactly_like_the_encoder():
    # MurmurHash3 in onnxruntime and in scikit-learn, on many strings (unicode,
    # emoji, digits, the texts onnxruntime gives None and NaN); numeric values
    # on and around every bin edge
    rng = np.random.default_rng(0)
    words = ["a", "click", "é", "日本語", "🙂x", "None", "nan", "0.5", "True", "5"]
    words += [
        "".join(chr(c) for c in rng.integers(32, 0x2FFF, size=rng.integers(1, 30)))
        for _ in range(3000)
    ]
    n = len(words)
    X = pd.DataFrame(
        {
            "word": pd.Series(words, dtype="str"),
            "number": rng.integers(0, 10**6, size=n),
            "value": rng.normal(size=n),
        }
    )
    y = rng.random(n) < 0.5
    clf = FiBiNETClassifier(
        **dict(SMALL, max_epochs=1),
        hash_buckets={"word": 2**16, "number": 1000},
        categorical_features=["word", "number"],
    ).fit(X, y)
    edges = clf.encoder_.bin_edges_[2]
    test = X.copy()
    k = min(len(edges), n)
    test.loc[: k - 1, "value"] = edges[:k]  # exactly on an edge: the lower bin
    test.loc[k : 2 * k - 1, "value"] = np.nextafter(edges[: min(k, n - k)], np.inf)
    test.loc[n - 3 :, "word"] = [None, np.nan, ""]
    sess = session(codes_model(to_onnx(clf)))
    _, _, codes = sess.run(None, onnx_inputs(clf, test))
    expected = clf.encoder_.transform(test)
    expected[n - 1, 0] = 0  # the empty string is missing in the graph
    assert_array_equal(codes, expected)
    assert (
        len(np.unique(codes[:, 0])) > 0.95 * n
    )  # few collisions: the buckets are used


def test_loaded_model_exports_like_the_fitted_one(frame, tmp_path):
    X, score = frame
    clf = FiBiNETClassifier(
        **SMALL,
        variant="fibinet++",
        hash_buckets={"city": 16},
        categorical_features=CATEGORICAL,
    ).fit(X, score > 0.5)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    path = tmp_path / "model.onnx"
    to_onnx(loaded, path)
    proba = ort.InferenceSession(str(path)).run(None, onnx_inputs(loaded, X))[1]
    assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_one_row_from_a_dict_as_a_service_sends_it(frame):
    X, score = frame
    clf = FiBiNETClassifier(**SMALL, categorical_features=CATEGORICAL)
    clf.fit(X, score > 0.5)
    row = {
        "color": "red",
        "city": "",  # missing
        "size": "M",
        "flag": "True",
        "children": "2",
        "age": 41.0,
        "amount": float("nan"),
    }
    feed = {
        name: np.array([[value]], dtype=object if isinstance(value, str) else None)
        for name, value in row.items()
    }
    _, proba = session(to_onnx(clf)).run(None, feed)
    frame_row = pd.DataFrame(
        {
            "color": ["red"],
            "city": pd.Series([None], dtype="str"),
            "size": pd.Categorical(["M"]),
            "flag": [True],
            "children": [2],
            "age": [41],
            "amount": [np.nan],
        }
    )
    assert_allclose(proba, clf.predict_proba(frame_row), rtol=1e-5, atol=1e-5)


def test_array_fitted_model_names_inputs_by_position():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    reg = FiBiNETRegressor(**SMALL).fit(X, X[:, 0] * 3 + 1)
    model = to_onnx(reg)
    assert [i.name for i in model.graph.input] == ["0", "1", "2"]
    assert_regressor_matches(reg, X)


def test_siphash_models_are_refused_with_a_hint_to_refit(frame):
    X, score = frame
    clf = FiBiNETClassifier(
        **SMALL, hash_buckets={"color": 8}, categorical_features=CATEGORICAL
    ).fit(X, score > 0.5)
    clf.encoder_.hash_function_ = "siphash"  # as a model from before MurmurHash3
    with pytest.raises(ValueError, match="'color' is hashed with 'siphash'.*Refit"):
        to_onnx(clf)


def test_empty_string_category_and_clashing_texts_are_refused():
    X = pd.DataFrame({"c": ["", "a", "b", "a"] * 50, "x": np.arange(200.0)})
    y = np.arange(200) % 2
    clf = FiBiNETClassifier(**SMALL, min_frequency=1).fit(X, y)
    with pytest.raises(ValueError, match="'c' has the empty string as a category"):
        to_onnx(clf)
    X["c"] = pd.Series([5, "5", "a", "b"] * 50, dtype=object)
    clf = FiBiNETClassifier(**SMALL, min_frequency=1).fit(X, y)
    with pytest.raises(ValueError, match="same text form"):
        to_onnx(clf)


def test_missing_onnx_names_the_extra(frame, monkeypatch):
    X, score = frame
    clf = FiBiNETClassifier(**SMALL).fit(X, score > 0.5)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "sk_fibinet\[onnx\]"'):
        to_onnx(clf)


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_onnx(FiBiNETClassifier())


def _pipeline_frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], size=n).astype(object),
            "amount": rng.normal(size=n),
            "count": rng.integers(0, 30, size=n).astype(np.float64),
        }
    )
    score = (X["color"] == "red") + X["amount"] + rng.logistic(size=n) * 0.3
    return X, score.to_numpy()


def _column_transformer():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("cat", OrdinalEncoder(), ["color"]),
            ("num", StandardScaler(), ["amount", "count"]),
        ]
    )


@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_skl2onnx_converts_a_pipeline_ending_in_the_estimator(task):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import Pipeline

    from sk_fibinet import register_skl2onnx

    X, score = _pipeline_frame()
    # the ColumnTransformer hands over numbers: column 0 holds ordinal codes
    # the estimator treats as categories, the others are binned
    if task == "classifier":
        est = FiBiNETClassifier(**SMALL, categorical_features=[0])
        y = np.where(score > 0.5, "yes", "no")
    else:
        est = FiBiNETRegressor(**SMALL, categorical_features=[0])
        y = 10 + 3 * score
    pipe = Pipeline([("ct", _column_transformer()), ("est", est)]).fit(X, y)
    register_skl2onnx()
    model = skl2onnx.to_onnx(
        pipe, X[:1], options={FiBiNETClassifier: {"zipmap": False}}
    )
    test = X.copy()
    test.loc[:4, "amount"] = [np.nan, 1e9, -1e9, 0.0, 2.0]
    feed = {
        "color": test[["color"]].to_numpy(),
        "amount": test[["amount"]].to_numpy(),
        "count": test[["count"]].to_numpy(),
    }
    out = session(model).run(None, feed)
    if task == "classifier":
        assert_array_equal(out[0], pipe.predict(test))
        assert_allclose(out[1], pipe.predict_proba(test), rtol=1e-5, atol=1e-5)
    else:
        assert_allclose(out[0][:, 0], pipe.predict(test), rtol=1e-5, atol=1e-5)


def test_skl2onnx_refuses_hashed_columns_and_bool_labels():
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import Pipeline

    from sk_fibinet import register_skl2onnx

    X, score = _pipeline_frame()
    est = FiBiNETClassifier(**SMALL, categorical_features=[0], hash_buckets=8)
    pipe = Pipeline([("ct", _column_transformer()), ("est", est)])
    pipe.fit(X, (score > 0.5).astype(int))
    register_skl2onnx()
    with pytest.raises(ValueError, match="'0' is hashed"):
        skl2onnx.to_onnx(pipe, X[:1])
    pipe.set_params(est__hash_buckets=None).fit(X, score > 0.5)
    with pytest.raises(ValueError, match="the estimator's are bool"):
        skl2onnx.to_onnx(pipe, X[:1])


def held_out_ids(X):
    """Later rows plus unseen, rare and missing users, unseen items, a missing
    item (the column turns float) and seen values in an unseen pair."""
    new = X.tail(40).copy()
    new["user"] = ["never", None, np.nan, "solo3", "u5", "u5", *new["user"].iloc[6:]]
    items = new["item"].to_numpy().astype(float)
    items[:6] = [999, -1, np.nan, 17, 0, items[5]]
    new["item"] = items
    return pd.concat([X.iloc[20:60], new], ignore_index=True)


def fit_ids(estimator, y, X, **params):
    model = estimator(
        **SMALL,
        target_stats="all",
        categorical_features=["user", "item"],
        **params,
    ).fit(X, y)
    assert {"user", "item", "user*item"} <= {
        name.split(":")[0] for name in model.target_stats_.feature_names_
    }
    return model


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_target_statistics_are_computed_in_the_graph(task):
    X, score = make_ids(n_solo=20)
    rows = held_out_ids(X)
    if task == "regression":
        model = fit_ids(FiBiNETRegressor, score, X)
        graph = to_onnx(model)
        assert_regressor_matches(model, rows)
    else:
        y = np.digitize(score, [0.0] if task == "binary" else [-0.7, 0.7])
        model = fit_ids(FiBiNETClassifier, y, X, variant="fibinet++")
        graph = to_onnx(model)
        assert_classifier_matches(model, rows)
    # the raw columns are the only inputs; statistics are computed, not sent
    assert [i.name for i in graph.graph.input] == ["user", "item", "x"]
    assert set(onnx_inputs(model, rows)) == {"user", "item", "x"}
    # the unseen user gets the prior (the table's last row), a missing one not
    stats = model.target_stats_.transform(rows).filter(regex=r"^user:")
    prior = model.target_stats_.lookup_tables()["tables"][("user",)][-1]
    assert_array_equal(stats.iloc[40], prior)
    assert not np.array_equal(stats.iloc[41], prior)


def test_loaded_model_with_target_statistics_exports(tmp_path):
    X, score = make_ids(n=1200, n_solo=20)
    clf = fit_ids(FiBiNETClassifier, (score > 0).astype(int), X, hash_buckets=32)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    rows = held_out_ids(X)
    proba = session(to_onnx(loaded)).run(None, onnx_inputs(loaded, rows))[1]
    assert_allclose(proba, clf.predict_proba(rows), rtol=1e-5, atol=1e-5)
    from sk_fibinet.io.onnx import _model

    with pytest.raises(ValueError, match="skl2onnx converter cannot export target"):
        _model(onnx, loaded, matrix=True)  # a matrix of numbers has no text


@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_large_batches_in_chunks_match_predict_proba(
    frame, bilinear_type, n_classes, monkeypatch
):
    # above ROWS_PER_CHUNK rows the graph takes its Loop branch: the batch cut
    # into equal chunks (padded, the padding dropped); below, the one-block net
    from sk_fibinet.io import onnx_network

    monkeypatch.setattr(onnx_network, "ROWS_PER_CHUNK", 16)
    X, score = frame
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    clf = FiBiNETClassifier(
        **SMALL, bilinear_type=bilinear_type, categorical_features=CATEGORICAL
    ).fit(X, y)
    model = to_onnx(clf)
    ifs = [n for n in model.graph.node if n.op_type == "If"]
    assert len(ifs) == 1
    run = session(model).run
    rows = held_out(X)  # 52 rows: 4 chunks of 13
    for n in (1, 15, 16, 17, 33, len(rows)):  # one piece; 2, 3 and 4 chunks
        part = rows.head(n)
        label, proba = run(None, onnx_inputs(clf, part))
        assert proba.shape == (n, n_classes)
        assert_allclose(proba, clf.predict_proba(part), rtol=1e-5, atol=1e-5)
        assert_array_equal(label, clf.predict(part))


def test_constants_both_branches_read_are_stored_once(frame):
    X, score = frame
    clf = FiBiNETClassifier(**SMALL, categorical_features=CATEGORICAL).fit(
        X, score > 0.5
    )
    model = to_onnx(clf)
    table = clf.net_.module_.embedding.vectors().detach().numpy()  # (R, d)
    arrays = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    same = [a for a in arrays if a.shape == table.shape and np.allclose(a, table)]
    assert len(same) == 1  # one table, read by the If's two branches
    sizes = {}  # the network's constants: none stored twice
    for t in model.graph.initializer:
        if "/net" not in t.name:
            continue
        a = onnx.numpy_helper.to_array(t)
        key = (a.dtype.str, a.shape, a.tobytes())
        sizes[key] = sizes.get(key, 0) + 1
    assert max(sizes.values()) == 1


def test_bfloat16_model_exports_its_float32_evaluation(frame):
    """A model whose first layer runs in bfloat16 exports the float32
    evaluation of the same weights (onnxruntime has no bfloat16 matmul on
    CPU): equal to 1e-5 to ``predict_proba`` with ``first_layer_dtype``
    switched to float32, and within bfloat16's rounding of its own."""
    X, score = frame
    clf = FiBiNETClassifier(
        **dict(SMALL, precision="bfloat16"), categorical_features=CATEGORICAL
    ).fit(X, score > 0.5)
    rows = held_out(X)
    proba = session(to_onnx(clf)).run(None, onnx_inputs(clf, rows))[1]
    low = clf.predict_proba(rows)
    assert clf.net_.module_.first_layer_dtype == torch.bfloat16
    assert not np.allclose(proba, low, rtol=0, atol=1e-7)
    assert_allclose(proba, low, atol=5e-3)
    clf.net_.module_.first_layer_dtype = None
    assert_allclose(proba, clf.predict_proba(rows), rtol=1e-5, atol=1e-5)


def test_crossed_pairs_chosen_by_evidence_export(frame, monkeypatch):
    """cross_pairs="auto" crosses a subset of the pairs within max_cross_cells:
    the graph looks up exactly those."""
    import sk_fibinet.preprocessing.cross_evidence as cross_evidence

    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 100)
    X, _ = frame
    y = X["color"].eq("red").to_numpy() != X["flag"].to_numpy()  # a pair's XOR
    kw = dict(SMALL, categorical_features=CATEGORICAL, max_cross_cells=64)
    every = FiBiNETClassifier(**kw, cross_pairs="all").fit(X, y)
    chosen = FiBiNETClassifier(**kw).fit(X, y)
    assert 0 < chosen.net_.module_.cross.n_pairs < every.net_.module_.cross.n_pairs
    assert_classifier_matches(chosen, held_out(X))


def test_derived_fields_of_crossed_triples_export(monkeypatch):
    """cross_triples="auto" adds a derived field per crossed triple: the graph
    computes its code from the three columns' codes (unseen and missing values
    included)."""
    import sk_fibinet.preprocessing.cross_evidence as cross_evidence

    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(6000, 4))
    y = (codes[:, :3].sum(1) % 2).astype(bool) != (rng.random(6000) < 0.1)
    X = pd.DataFrame({c: codes[:, k].astype(str) for k, c in enumerate("abcd")})
    X["x"] = rng.normal(size=6000)
    clf = FiBiNETClassifier(**SMALL, cross_triples="auto").fit(X, y)
    assert clf.encoder_.crosses_ == [(0, 1, 2)]
    rows = X.head(12).copy()
    rows.loc[rows.index[:3], "a"] = ["9", None, np.nan]  # unseen and missing
    assert_classifier_matches(clf, rows)
    reg = FiBiNETRegressor(**SMALL, cross_triples="auto").fit(
        X, y.astype(float) + X["x"]
    )
    assert reg.encoder_.crosses_ == [(0, 1, 2)]
    assert_regressor_matches(reg, rows)


def test_skl2onnx_converts_an_estimator_with_derived_fields(monkeypatch):
    """The converter's graph reads a matrix of numbers; the derived field's
    codes come from the columns' codes as in the graph of raw columns."""
    skl2onnx = pytest.importorskip("skl2onnx")
    import sk_fibinet.preprocessing.cross_evidence as cross_evidence
    from sk_fibinet import register_skl2onnx

    monkeypatch.setattr(cross_evidence, "MIN_ROWS", 1000)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 4, size=(6000, 4)).astype(np.float64)  # (n, 4) ordinal codes
    y = (X[:, :3].sum(1) % 2 == 1) != (rng.random(6000) < 0.1)
    clf = FiBiNETClassifier(
        **SMALL, categorical_features=[0, 1, 2, 3], cross_triples="auto"
    ).fit(X, y.astype(int))
    assert clf.encoder_.crosses_ == [(0, 1, 2)]
    register_skl2onnx()
    model = skl2onnx.to_onnx(clf, X[:1], options={FiBiNETClassifier: {"zipmap": False}})
    rows = X[:50].copy()
    rows[:3, 0] = [9.0, np.nan, 7.0]  # unseen and missing codes
    label, proba = session(model).run(None, {"X": rows})
    assert_allclose(proba, clf.predict_proba(rows), rtol=1e-5, atol=1e-5)
    assert_array_equal(label, clf.predict(rows))
