import contextlib
import datetime
import io
import json
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, make_ids, make_mixed
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

from sk_fibinet import FiBiNETClassifier, load_model, save_model
from sk_fibinet.io.persistence import FORMAT_VERSION

SMALL = {**FAST, "max_epochs": 3}


def _binary_str_labels():
    X, y = make_mixed(n=200)
    return X, np.where(y == 1, "yes", "no")


def _multiclass_int_labels():
    X, y = make_mixed(n=200)
    return X, X["size"].cat.codes.to_numpy().astype(np.int64) * 10 + y


def _numpy_no_feature_names():
    X, y = make_mixed(n=200)
    return X[["amount", "noise"]].to_numpy(), y


CASES = {
    "binary-str-labels": _binary_str_labels,
    "multiclass-int-labels": _multiclass_int_labels,
    "numpy-no-feature-names": _numpy_no_feature_names,
}


@pytest.fixture(scope="module")
def fitted():
    X, y = _binary_str_labels()
    return FiBiNETClassifier(**SMALL).fit(X, y), X


def _walk(value, path="payload"):
    """Yield (path, type) of everything in a loaded payload that is not plain."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                yield f"{path} key {key!r}", type(key)
            yield from _walk(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif not (
        value is None
        or isinstance(value, (str, int, float, bool, torch.Tensor))
        and not isinstance(value, np.generic)
    ):
        yield path, type(value)


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_bit_identical(case, tmp_path):
    X, y = CASES[case]()
    clf = FiBiNETClassifier(**SMALL).fit(X, y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    loaded = load_model(path)

    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.predict(X).dtype == clf.predict(X).dtype
    if hasattr(clf, "feature_names_in_"):
        assert loaded.feature_names_in_.dtype == object
        assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    else:
        assert not hasattr(loaded, "feature_names_in_")
    assert loaded.n_features_in_ == clf.n_features_in_
    assert loaded.n_iter_ == clf.n_iter_
    assert len(loaded.net_.history) == len(clf.net_.history) == clf.n_iter_
    assert loaded.net_.history[:, "train_loss"] == clf.net_.history[:, "train_loss"]
    assert_array_equal(loaded.feature_importances_, clf.feature_importances_)
    assert loaded.get_params() == clf.get_params()
    assert loaded.device == "cpu"

    enc, enc0 = loaded.encoder_, clf.encoder_
    assert_array_equal(enc.categorical_mask_, enc0.categorical_mask_)
    assert enc.column_names_ == enc0.column_names_
    assert enc.cardinalities_ == enc0.cardinalities_
    for vocab, vocab0 in zip(enc.vocabularies_, enc0.vocabularies_, strict=True):
        if vocab0 is None:
            assert vocab is None
        else:
            pd.testing.assert_index_equal(vocab, vocab0, exact=True)
    for edges, edges0 in zip(enc.bin_edges_, enc0.bin_edges_, strict=True):
        if edges0 is None:
            assert edges is None
        else:
            assert edges.dtype == np.float64
            assert_array_equal(edges, edges0)
    assert_array_equal(loaded.field_weights(X), clf.field_weights(X))


def test_round_trip_with_early_stopping_and_int_hidden_layer_sizes(tmp_path):
    X, y = make_mixed(n=300)
    params = {**SMALL, "hidden_layer_sizes": 8, "bilinear_type": "each"}
    clf = FiBiNETClassifier(**params, early_stopping=True).fit(X, y)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.hidden_layer_sizes == 8
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert list(loaded.net_.history) == json.loads(json.dumps(list(clf.net_.history)))
    assert "valid_loss" in loaded.net_.history[-1]
    assert loaded.net_.history[:, "valid_auc"] == clf.net_.history[:, "valid_auc"]


def test_unseen_and_missing_values_after_loading(fitted, tmp_path):
    clf, X = fitted
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    new = X.head(4).copy()
    new["color"] = pd.Series(["purple", None, "red", "never-seen"], dtype="str")
    new["size"] = pd.Categorical(["XXL", None, "S", "M"])
    new["amount"] = [np.nan, np.inf, -np.inf, 0.0]
    assert_array_equal(loaded.predict_proba(new), clf.predict_proba(new))


def test_mixed_category_types_round_trip(tmp_path):
    X, y = make_mixed(n=200)
    X["mixed"] = pd.Series(["a", 1, "b", 2.5, None] * 40, dtype=object)
    X["int_cat"] = pd.Categorical(np.arange(200) % 3)
    X["code"] = np.arange(200) % 4
    cats = ["color", "size", "flag", "mixed", "int_cat", "code"]
    clf = FiBiNETClassifier(**SMALL, categorical_features=cats).fit(X, y == 1)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.classes_.dtype == bool
    for vocab, vocab0 in zip(
        loaded.encoder_.vocabularies_, clf.encoder_.vocabularies_, strict=True
    ):
        if vocab0 is not None:
            pd.testing.assert_index_equal(vocab, vocab0, exact=True)
            assert [type(v) for v in vocab] == [type(v) for v in vocab0]
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_file_object_round_trip(fitted):
    clf, X = fitted
    buffer = io.BytesIO()
    save_model(clf, buffer)
    buffer.seek(0)
    assert_array_equal(load_model(buffer).predict_proba(X), clf.predict_proba(X))


def test_file_holds_only_tensors_and_plain_values(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True, map_location="cpu")
    assert payload["format"] == "sk_fibinet.FiBiNETClassifier"
    assert payload["format_version"] == FORMAT_VERSION
    assert isinstance(payload["sk_fibinet_version"], str)
    assert list(_walk(payload)) == []
    history = json.loads(payload["history"])
    assert len(history) == clf.n_iter_ and "train_loss" in history[-1]
    assert set(payload["state_dict"]) == set(clf.net_.module_.state_dict())


def test_history_values_that_are_not_json_are_converted_or_dropped(tmp_path):
    X, y = make_mixed(n=100)
    clf = FiBiNETClassifier(**SMALL).fit(X, y)
    clf.net_.history.record("f32", np.float32(0.5))
    clf.net_.history.record("tensor", torch.tensor(0.25))
    clf.net_.history.record("odd", object())
    save_model(clf, tmp_path / "model.pt")
    last = load_model(tmp_path / "model.pt").net_.history[-1]
    assert last["f32"] == 0.5 and last["tensor"] == 0.25
    assert "odd" not in last
    assert last["train_loss"] == clf.net_.history[-1, "train_loss"]


def test_load_leaves_global_torch_rng_untouched(fitted, tmp_path):
    clf, _ = fitted
    save_model(clf, tmp_path / "model.pt")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    load_model(tmp_path / "model.pt")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("version", ["2.2.0", "2.5.1+cu121", "2.9.1+cpu"])
def test_load_refuses_a_torch_with_known_weights_only_escapes(
    fitted, tmp_path, monkeypatch, version
):
    clf, _ = fitted
    save_model(clf, tmp_path / "model.pt")
    monkeypatch.setattr(torch, "__version__", version)
    with pytest.raises(RuntimeError, match=r"CVE-2025-32434.*CVE-2026-24747"):
        load_model(tmp_path / "model.pt")


@pytest.mark.parametrize("version", ["2.10.0", "2.13.0+cpu", "3.0.0.dev20990101"])
def test_load_accepts_a_patched_torch(fitted, tmp_path, monkeypatch, version):
    clf, X = fitted
    save_model(clf, tmp_path / "model.pt")
    monkeypatch.setattr(torch, "__version__", version)
    assert_array_equal(
        load_model(tmp_path / "model.pt").predict_proba(X), clf.predict_proba(X)
    )


def test_random_state_instance_is_stored_as_none(tmp_path):
    X, y = make_mixed(n=100)
    params = {**SMALL, "random_state": np.random.RandomState(0)}
    clf = FiBiNETClassifier(**params).fit(X, y)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.random_state is None
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_pickle_file_is_refused(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(clf))
    with pytest.raises(ValueError, match="not a sk_fibinet model file") as info:
        load_model(path)
    assert "arbitrary code" in str(info.value)


def test_joblib_file_is_refused(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    with pytest.raises(ValueError, match="not a sk_fibinet model file"):
        load_model(path)


@pytest.mark.parametrize(
    "data", [b"", b"garbage", np.random.default_rng(0).bytes(4096)]
)
def test_garbage_is_refused(data, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="not a sk_fibinet model file"):
        load_model(path)


def test_other_torch_file_is_refused(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "weights.pt"
    torch.save(clf.net_.module_.state_dict(), path)
    with pytest.raises(ValueError, match="not a sk_fibinet model file"):
        load_model(path)


def test_tampered_format_version_is_refused(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(
        ValueError, match=f"format version {FORMAT_VERSION + 1}.*reads only format"
    ):
        load_model(path)
    payload["format_version"] = "1"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="invalid format version"):
        load_model(path)


def test_damaged_payload_is_a_value_error(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / "model.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True)
    del payload["encoder"]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_model(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing.pt")


def test_callbacks_must_be_none_to_save(tmp_path):
    from skorch.callbacks import PrintLog

    X, y = make_mixed(n=100)
    clf = FiBiNETClassifier(**SMALL, callbacks=[("log", PrintLog())]).fit(X, y)
    with pytest.raises(ValueError, match="callbacks.*set_params\\(callbacks=None\\)"):
        save_model(clf, tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
    clf.set_params(callbacks=None)
    save_model(clf, tmp_path / "model.pt")
    assert_array_equal(
        load_model(tmp_path / "model.pt").predict_proba(X), clf.predict_proba(X)
    )


def test_unfitted_model_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        save_model(FiBiNETClassifier(), tmp_path / "model.pt")
    with pytest.raises(TypeError, match="FiBiNETClassifier"):
        save_model(object(), tmp_path / "model.pt")


def test_unsupported_category_type_names_the_column(tmp_path):
    X, y = make_mixed(n=100)
    days = [datetime.date(2024, 1, 1 + i % 3) for i in range(100)]
    X["day"] = pd.Series(days, dtype=object)
    clf = FiBiNETClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="column 'day'.*date"):
        save_model(clf, tmp_path / "model.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_at_load_is_a_clear_error(fitted, tmp_path):
    clf, _ = fitted
    save_model(clf, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(tmp_path / "model.pt", device="cuda")


@contextlib.contextmanager
def _storages_tagged_as_cuda(tensors=None):
    """While active, ``torch.save`` records the storages of ``tensors`` (all
    storages if None) as on ``cuda:0``, as it does for tensors on a GPU (no GPU
    needed)."""
    pointers = None
    if tensors is not None:
        pointers = {t.untyped_storage().data_ptr() for t in tensors}

    def tag(storage):
        if pointers is None or storage.data_ptr() in pointers:
            return "cuda:0"
        return None

    entry = (0, tag, lambda obj, location: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("library", ["pickle", "joblib"])
def test_pickled_cuda_net_is_mapped_to_cpu_without_cuda(library, tmp_path):
    X, y = make_mixed(n=100)
    clf = FiBiNETClassifier(**SMALL).fit(X, y)
    expected = clf.predict_proba(X)
    clf.net_.device = "cuda"  # as if trained on a GPU
    path = tmp_path / "model.bin"
    net = clf.net_  # what a GPU fit leaves on the GPU: the module and optimizer
    on_gpu = [*net.module_.parameters(), *net.module_.buffers()]
    on_gpu += [
        v
        for s in net.optimizer_.state_dict()["sparse"]["state"].values()
        for v in s.values()
        if torch.is_tensor(v)
    ]
    with _storages_tagged_as_cuda(on_gpu):  # those tensors written as on cuda:0
        if library == "pickle":
            path.write_bytes(pickle.dumps(clf))
        else:
            joblib.dump(clf, path)
        buffer = io.BytesIO()
        torch.save(on_gpu[0], buffer)
    # the pickled tensors really are CUDA tensors: loaded as they are, they fail
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = (
            pickle.loads(path.read_bytes())
            if library == "pickle"
            else joblib.load(path)
        )
    assert any("no CUDA devices are available" in str(w.message) for w in caught)
    assert torch.device(restored.net_.device) == torch.device("cpu")
    assert next(restored.net_.module_.parameters()).device.type == "cpu"
    assert_array_equal(restored.predict_proba(X), expected)


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
def test_round_trip_of_both_variants(variant, tmp_path):
    rng = np.random.default_rng(0)
    n = 1200
    X = pd.DataFrame(
        {
            "user": pd.Series(rng.integers(0, 60, n).astype(str), dtype="str"),
            "item": pd.Series(rng.integers(0, 50, n).astype(str), dtype="str"),
            "amount": rng.normal(size=n),
        }
    )
    y = (X["user"].str.len() + rng.random(n) > 2.0).astype(int).to_numpy()
    clf = FiBiNETClassifier(**SMALL, variant=variant).fit(X, y)
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded.net_.module_) is type(clf.net_.module_)
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(loaded.interaction_strengths(X), clf.interaction_strengths(X))


def test_version_1_files_with_derived_buffers_still_load(tmp_path):
    # version 1 stored the derived index buffers (field offsets, coarse and
    # pair indices) in the state dict; version 2 rebuilds them
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**SMALL).fit(X, y)
    path = tmp_path / "model.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    module = clf.net_.module_
    derived = {
        name: buffer.detach().clone()
        for name, buffer in module.named_buffers()
        if name not in payload["state_dict"]
    }
    assert "embedding.offsets" in derived  # no longer written
    payload["state_dict"].update(derived)
    payload["format_version"] = 1
    torch.save(payload, path)
    assert_array_equal(load_model(path).predict_proba(X), clf.predict_proba(X))


def _with_stats(estimator, X, y):
    model = estimator(
        **{**SMALL, "max_epochs": 2},
        target_stats="all",
        categorical_features=["user", "item"],
    ).fit(X, y)
    assert model.target_stats_ is not None
    assert {"user", "item", "user*item"} <= {
        name.split(":")[0] for name in model.target_stats_.feature_names_
    }
    return model


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_round_trip_with_target_statistics_predicts_and_explains_identically(
    task, tmp_path
):
    from sk_fibinet import FiBiNETRegressor

    X, score = make_ids()
    if task == "regression":
        model = _with_stats(FiBiNETRegressor, X, score)
    else:
        bins = [0.0] if task == "binary" else [-0.7, 0.7]
        model = _with_stats(FiBiNETClassifier, X, np.digitize(score, bins))
    save_model(model, tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert list(_walk(payload)) == []  # tensors and plain values only
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.target_stats_.feature_names_ == model.target_stats_.feature_names_
    assert loaded.target_stats_.sources_ == model.target_stats_.sources_
    new = X.tail(30).copy()
    new["user"] = ["never-seen", None, np.nan, *new["user"].iloc[3:]]
    new["item"] = [999, -1, *new["item"].iloc[2:]]
    rows = pd.concat([X.head(50), new], ignore_index=True)
    pd.testing.assert_frame_equal(
        loaded.target_stats_.transform(rows), model.target_stats_.transform(rows)
    )
    predict = "predict" if task == "regression" else "predict_proba"
    assert_array_equal(getattr(loaded, predict)(rows), getattr(model, predict)(rows))
    which = {"class_of_interest": 2} if task == "multiclass" else {}
    phi = loaded.explain(rows, **which)
    assert list(phi.columns) == ["user", "item", "x"]
    assert_array_equal(phi.to_numpy(), model.explain(rows, **which).to_numpy())
    if task == "binary":  # the statistics' shares still add up to the logit
        assert_allclose(
            phi.to_numpy().sum(axis=1) + loaded.explain_base_value_,
            loaded.decision_function(rows),
            atol=1e-4,
        )


def test_partial_fit_after_loading_continues_the_target_statistics(tmp_path):
    X, score = make_ids(n=2000)
    y = (score > 0).astype(int)
    clf = FiBiNETClassifier(
        **SMALL, target_stats="all", categorical_features=["user", "item"]
    )
    clf.partial_fit(X[:1200], y[:1200], classes=[0, 1])
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.target_stats_.rows_seen_ == clf.target_stats_.rows_seen_ == 1200
    # the optimizer's moments are not stored: the reference for the net is the
    # same file with the unsaved model's own statistics put in
    reference = load_model(tmp_path / "model.pt")
    reference.target_stats_ = pickle.loads(pickle.dumps(clf.target_stats_))
    for model in (clf, loaded, reference):
        model.partial_fit(X[1200:], y[1200:])
    assert loaded.target_stats_.rows_seen_ == clf.target_stats_.rows_seen_ == 2000
    assert loaded.target_stats_.n_rows_ == clf.target_stats_.n_rows_
    pd.testing.assert_frame_equal(
        loaded.target_stats_.transform(X), clf.target_stats_.transform(X)
    )
    assert_array_equal(loaded.predict_proba(X), reference.predict_proba(X))


def test_damaged_target_statistics_are_a_clear_error(tmp_path):
    X, score = make_ids(n=1200)
    clf = _with_stats(FiBiNETClassifier, X, (score > 0).astype(int))
    path = tmp_path / "model.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    w, s, q = payload["target_stats"]["sums"][0]
    payload["target_stats"]["sums"][0] = [w[:-1], s, q]  # one value's row lost
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged target statistics.*sums of"):
        load_model(path)
