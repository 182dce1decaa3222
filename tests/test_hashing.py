"""hash_buckets: open vocabularies mapped by a stable hash, in fit and on disk."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.utils import murmurhash3_32

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, load_model, save_model
from sk_fibinet.preprocessing.categories import MISSING_CODE, N_RESERVED, OTHER_CODE
from sk_fibinet.preprocessing.encoding import FieldEncoder
from sk_fibinet.preprocessing.hashing import HASH_SEED, hash_codes


def test_buckets_are_pinned_across_processes_and_releases():
    # Saved models, the workers of a cluster and exported ONNX graphs all rely
    # on a value landing in the same bucket (Python's hash() is salted per
    # process): these codes must never change.
    values = pd.Series(["click", "banner_1", "42", "True", "0.5", "café"], dtype="str")
    assert_array_equal(
        hash_codes(values, 2**20) - N_RESERVED,
        [642442, 688047, 433459, 243773, 199046, 146254],
    )
    # MurmurHash3 of the UTF-8 text, as scikit-learn computes it
    assert hash_codes(values[:1], 97)[0] - N_RESERVED == (
        murmurhash3_32("click", seed=HASH_SEED, positive=True) % 97
    )
    # the SipHash of encoders fitted before MurmurHash3 stays as it was
    assert_array_equal(
        hash_codes(values, 2**20, "siphash") - N_RESERVED,
        [165283, 358673, 503825, 857866, 724238, 115054],
    )


def test_new_fits_hash_with_murmurhash3_and_old_encoders_keep_siphash():
    X, _ = make_mixed(n=200)
    enc = FieldEncoder(hash_buckets={"color": 1000}).fit(X)
    assert enc.hash_function_ == "murmurhash3"
    new = enc.transform(X)[:, 0]
    assert_array_equal(new, hash_codes(X["color"], 1000))
    # an encoder pickled before hash_function_ existed hashed with SipHash
    del enc.hash_function_
    old = pickle.loads(pickle.dumps(enc)).transform(X)[:, 0]
    assert_array_equal(old, hash_codes(X["color"], 1000, "siphash"))
    assert (old != new).any()
    with pytest.raises(ValueError, match="hash_function must be one of"):
        hash_codes(X["color"], 10, "md5")


def test_files_of_format_2_load_with_siphash_and_predict_as_before(tmp_path):
    # a model saved by the release before MurmurHash3: its hashed columns were
    # trained on SipHash buckets and must keep reading them
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**FAST, hash_buckets={"color": 16}).fit(X, y)
    clf.encoder_.hash_function_ = "siphash"  # as the old release fitted it
    before = clf.predict_proba(X)
    path = tmp_path / "old.pt"
    save_model(clf, path)
    payload = torch.load(path, weights_only=True)
    assert payload["encoder"]["hash_function"] == "siphash"
    del payload["encoder"]["hash_function"]  # format 2 did not store it
    payload["format_version"] = 2
    torch.save(payload, path)
    loaded = load_model(path)
    assert loaded.encoder_.hash_function_ == "siphash"
    assert_array_equal(loaded.predict_proba(X), before)
    # and a new file says murmurhash3
    fresh = FiBiNETClassifier(**FAST, hash_buckets={"color": 16}).fit(X, y)
    save_model(fresh, path)
    assert load_model(path).encoder_.hash_function_ == "murmurhash3"


def test_equal_values_of_any_dtype_share_a_bucket_and_missing_is_missing():
    five = [
        pd.Series([5, 6]),
        pd.Series([5.0, np.nan]),
        pd.Series(["5", None], dtype="str"),
        pd.Series(["5", None], dtype="string"),
        pd.Series([np.int32(5), "x"], dtype=object),
        pd.Series([5, 7]).astype("category"),
        pd.Series([5, None], dtype="Int64"),
        np.array([5.0, 2.5], dtype=np.float32),
    ]
    firsts = {int(hash_codes(col, 1000)[0]) for col in five}
    assert len(firsts) == 1
    true = [pd.Series([True, False]), pd.Series([True, None], dtype="boolean")]
    true.append(pd.Series(["True"], dtype="str"))
    assert len({int(hash_codes(col, 1000)[0]) for col in true}) == 1
    codes = hash_codes(pd.Series(["a", None, np.nan, "b"], dtype=object), 1000)
    assert codes[1] == codes[2] == MISSING_CODE
    assert (codes[[0, 3]] >= N_RESERVED).all() and codes[0] != codes[3]


def test_a_categorical_column_hashes_like_its_values():
    values = ["x", "y", None, "z", "x"]
    as_category = pd.Series(pd.Categorical(values, categories=["z", "y", "x", "w"]))
    assert_array_equal(
        hash_codes(as_category, 97), hash_codes(pd.Series(values, dtype="str"), 97)
    )


def test_encoder_hashes_the_columns_it_is_given_and_keeps_the_others_exact():
    X, _ = make_mixed(n=200)
    enc = FieldEncoder(hash_buckets={"color": 16}).fit(X)
    assert enc.hash_buckets_ == [16, None, None, None, None]
    assert enc.cardinalities_[0] == N_RESERVED + 16
    assert len(enc.vocabularies_[0]) == 0 and len(enc.vocabularies_[1]) == 3
    new = X.head(3).copy()
    new["color"] = pd.Series(["never-seen", None, "red"], dtype="str")
    new["size"] = pd.Categorical(["XXL", "S", "M"])
    codes = enc.transform(new)
    assert codes[0, 0] >= N_RESERVED and codes[1, 0] == MISSING_CODE
    assert codes[2, 0] == enc.transform(X[X["color"] == "red"].head(1))[0, 0]
    assert codes[0, 1] == OTHER_CODE  # exact vocabulary: unseen is "other"
    assert (codes < np.array(enc.cardinalities_)).all()

    every = FieldEncoder(hash_buckets=8).fit(X)
    assert every.hash_buckets_ == [8, 8, 8, None, None]  # text, category, bool


@pytest.mark.parametrize(
    "hash_buckets, error, match",
    [
        ({"amount": 8}, ValueError, "'amount', which is numeric"),
        ({"colour": 8}, ValueError, "'colour', which is not in X"),
        ({"color": 0}, ValueError, r"hash_buckets\['color'\] must be an int >= 1"),
        ({"color": 2.5}, ValueError, r"hash_buckets\['color'\] must be an int >= 1"),
        ("color", TypeError, "hash_buckets must be None, an int or a dict"),
    ],
)
def test_bad_hash_buckets_are_clear_errors(hash_buckets, error, match):
    X, _ = make_mixed(n=50)
    with pytest.raises(error, match=match):
        FieldEncoder(hash_buckets=hash_buckets).fit(X)


def test_estimator_validates_hash_buckets():
    X, y = make_mixed(n=50)
    with pytest.raises(ValueError, match="hash_buckets"):
        FiBiNETClassifier(**FAST, hash_buckets=0).fit(X, y)
    with pytest.raises(ValueError, match="'noise', which is numeric"):
        FiBiNETClassifier(**FAST, hash_buckets={"noise": 4}).fit(X, y)


def test_fit_with_hash_buckets_learns_and_new_values_read_their_bucket():
    X, y = make_mixed(n=600)
    clf = FiBiNETClassifier(**FAST, hash_buckets=64).fit(X, y)
    X_test, y_test = make_mixed(n=400, seed=1)
    assert roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1]) > 0.85
    assert clf.encoder_.cardinalities_[:3] == [N_RESERVED + 64] * 3
    new = X_test.head(2).copy()
    new["color"] = pd.Series(["magenta", "teal"], dtype="str", index=new.index)
    color = list(X.columns).index("color")
    codes = clf.encoder_.transform(new)[:, color]  # (2,)
    assert_array_equal(codes, hash_codes(pd.Series(["magenta", "teal"]), 64))
    assert (codes >= N_RESERVED).all()  # a bucket of its own, not OTHER_CODE
    assert np.isfinite(clf.predict_proba(new)).all()
    # a new value that hashes into the bucket of "red" reads red's row
    candidates = pd.Series([f"new-{i}" for i in range(2_000)], dtype="str")
    red_bucket = hash_codes(pd.Series(["red"]), 64)[0]
    twin = candidates[hash_codes(candidates, 64) == red_bucket].iloc[0]
    pair = X_test.iloc[[0, 0]].copy()
    pair["color"] = pd.Series(["red", twin], dtype="str", index=pair.index)
    proba = clf.predict_proba(pair)
    assert_array_equal(proba[0], proba[1])
    pair["color"] = pd.Series(["red", "green"], dtype="str", index=pair.index)
    assert not np.array_equal(*clf.predict_proba(pair))  # the colour matters


def test_params_clone_pickle_and_grid_search():
    X, y = make_mixed(n=300)
    clf = FiBiNETClassifier(**FAST, hash_buckets={"color": 32})
    assert clf.get_params()["hash_buckets"] == {"color": 32}
    assert clone(clf).set_params(hash_buckets=8).hash_buckets == 8
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    search = GridSearchCV(
        FiBiNETClassifier(**{**FAST, "max_epochs": 2}),
        {"hash_buckets": [None, 16]},
        cv=2,
        scoring="roc_auc",
    ).fit(X, y)
    assert search.best_params_["hash_buckets"] in (None, 16)
    assert len(search.cv_results_["mean_test_score"]) == 2


@pytest.mark.parametrize("hash_buckets", [16, {"color": 16, "size": None}])
def test_save_and_load_keep_the_buckets(hash_buckets, tmp_path):
    X, y = make_mixed(n=300)
    reg = FiBiNETRegressor(**FAST, hash_buckets=hash_buckets).fit(X, X["amount"])
    save_model(reg, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.hash_buckets == hash_buckets
    assert loaded.encoder_.hash_buckets_ == reg.encoder_.hash_buckets_
    new = X.head(5).copy()
    new["color"] = pd.Series(["a", "b", "c", "d", None], dtype="str")
    assert_array_equal(loaded.predict(new), reg.predict(new))


def test_files_written_before_hashing_still_load(tmp_path):
    X, y = make_mixed(n=200)
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    save_model(clf, tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["params"]["hash_buckets"]  # as written by the release before
    del payload["encoder"]["params"]["hash_buckets"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.hash_buckets is None
    assert loaded.encoder_.hash_buckets_ == [None] * X.shape[1]
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
