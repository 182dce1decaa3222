import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

from sk_fibinet import FiBiNETClassifier, load_model, save_model
from sk_fibinet.preprocessing.categories import MISSING_CODE, N_RESERVED, OTHER_CODE


def test_fit_predict_learns_signal(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    assert clf.n_features_in_ == 5
    assert_array_equal(clf.feature_names_in_, X.columns)
    assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.85
    assert clf.score(X, y) > 0.75
    assert 1 <= clf.n_iter_ <= FAST["max_epochs"]


def test_string_labels_are_returned(mixed):
    X, y = mixed
    labels = np.where(y == 1, "yes", "no")
    clf = FiBiNETClassifier(**FAST).fit(X, labels)
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.predict(X).dtype == labels.dtype
    bools = FiBiNETClassifier(**FAST).fit(X, y == 1).predict(X)
    assert bools.dtype == bool


def test_multiclass_softmax(mixed):
    X, _ = mixed
    y = np.array(["a", "b", "c"])[X["size"].cat.codes.to_numpy()]
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.95  # the class is a column


def test_unseen_and_missing_categories_at_predict(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    new = X.head(4).copy()
    new["color"] = pd.Series(["purple", None, "red", "never-seen"], dtype="str")
    new["size"] = pd.Categorical(["XXL", None, "S", "M"])
    new["amount"] = [np.nan, 1.0, np.nan, 0.0]
    codes = clf.encoder_.transform(new)  # (4, 5): the codes predict reads
    color, size, amount = (
        list(X.columns).index(c) for c in ["color", "size", "amount"]
    )
    known = clf.encoder_.transform(X)  # (n, 5)
    red = known[(X["color"] == "red").to_numpy(), color][0]
    small, medium = (known[(X["size"] == s).to_numpy(), size][0] for s in "SM")
    assert_array_equal(codes[:, color], [OTHER_CODE, MISSING_CODE, red, OTHER_CODE])
    assert_array_equal(codes[:, size], [OTHER_CODE, MISSING_CODE, small, medium])
    assert codes[0, amount] == codes[2, amount] == MISSING_CODE
    assert (codes[[1, 3], amount] >= N_RESERVED - 1).all()  # bins start at 1
    assert red >= N_RESERVED and small >= N_RESERVED and medium >= N_RESERVED
    proba = clf.predict_proba(new)
    assert np.isfinite(proba).all()
    # two different unseen values share the OTHER row: the same prediction
    same = new.iloc[[0, 0]].copy()
    same["color"] = pd.Series(["purple", "never-seen"], dtype="str", index=same.index)
    p = clf.predict_proba(same)
    assert_array_equal(p[0], p[1])


def test_columns_matched_by_name(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    shuffled = X[["noise", "amount", "flag", "size", "color"]]
    assert_array_equal(clf.predict_proba(shuffled), clf.predict_proba(X))
    with pytest.raises(ValueError, match="missing columns \\['noise'\\]"):
        clf.predict(X.drop(columns="noise"))
    with pytest.raises(ValueError, match="unexpected columns \\['extra'\\]"):
        clf.predict(X.assign(extra=1.0))


def test_same_seed_same_probabilities_and_global_rng_untouched(mixed):
    X, y = mixed
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = FiBiNETClassifier(**FAST).fit(X, y).predict_proba(X)
    after = torch.rand(3)
    assert torch.equal(before, after)
    b = FiBiNETClassifier(**FAST).fit(X, y).predict_proba(X)
    assert_array_equal(a, b)
    c = FiBiNETClassifier(**{**FAST, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


def test_sample_weight_really_weights_the_loss(mixed):
    X, y = mixed
    w = np.where(y == 1, 20.0, 1.0)
    plain = FiBiNETClassifier(**FAST).fit(X, y).predict_proba(X)[:, 1].mean()
    heavy = FiBiNETClassifier(**FAST).fit(X, y, sample_weight=w).predict_proba(X)[:, 1]
    assert heavy.mean() > plain + 0.1
    # scaling all weights does not change the fit
    a = FiBiNETClassifier(**FAST).fit(X, y, sample_weight=np.full(len(y), 3.0))
    b = FiBiNETClassifier(**FAST).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-5)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 20.0}])
def test_class_weight_shifts_probabilities(mixed, class_weight):
    X, y = mixed
    keep = (y == 0) | (np.arange(len(y)) % 5 == 0)  # make positives rare
    X, y = X[keep], y[keep]
    plain = FiBiNETClassifier(**FAST).fit(X, y).predict_proba(X)[:, 1].mean()
    clf = FiBiNETClassifier(**FAST, class_weight=class_weight).fit(X, y)
    assert clf.predict_proba(X)[:, 1].mean() > plain + 0.05


class _RecordBatches(Callback):
    """Keep the training batches' codes, one list per epoch."""

    def on_epoch_begin(self, net, **kwargs):
        self.epochs_ = getattr(self, "epochs_", []) + [[]]

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            self.epochs_[-1].append(batch[0].clone())


def test_every_epoch_draws_a_new_batch_order_reproducibly(mixed):
    X, y = mixed
    params = {**FAST, "max_epochs": 3, "early_stopping": False}
    rec = _RecordBatches()
    a = FiBiNETClassifier(**params, callbacks=[rec]).fit(X, y)
    orders = [torch.cat(batches) for batches in rec.epochs_]  # (n, F) per epoch
    assert len(orders) == 3
    for first, second in zip(orders[:-1], orders[1:], strict=True):
        assert first.shape == second.shape
        assert not torch.equal(first, second)  # a new permutation each epoch
        assert not torch.equal(first[:64], second[:64])  # a new first batch too
        # the same rows in another order
        assert torch.equal(
            torch.sort(first.sum(1) * 1000 + first[:, 0]).values,
            torch.sort(second.sum(1) * 1000 + second[:, 0]).values,
        )
    b = FiBiNETClassifier(**params, callbacks=[_RecordBatches()]).fit(X, y)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_early_stopping_restores_best_epoch():
    X, y = make_mixed(n=1500)
    clf = FiBiNETClassifier(
        **{**FAST, "max_epochs": 60, "learning_rate": 3e-2},
        dropout=0.0,
        early_stopping=True,
        n_iter_no_change=2,
    ).fit(X, y)
    history = clf.net_.history
    losses = history[:, "valid_loss_calibrated"]
    assert clf.n_iter_ == len(history) < 60
    best = int(np.argmin(losses))
    assert best == len(losses) - 1 - 2  # stopped after the patience ran out
    assert "valid_auc" in history[-1]
    # The restored weights are the best epoch's: the temperature fitted after
    # training on the validation logits equals the one recorded at that epoch
    # (the last epoch's weights give another one).
    np.testing.assert_allclose(
        clf.temperature_, history[best, "valid_temperature"], rtol=1e-6
    )
    assert not np.isclose(clf.temperature_, history[-1, "valid_temperature"])


def test_early_stopping_watches_the_calibrated_loss():
    X, y = make_mixed(n=1500)
    params = {**FAST, "max_epochs": 30, "learning_rate": 3e-2, "dropout": 0.0}
    clf = FiBiNETClassifier(**params, early_stopping=True).fit(X, y)
    history = clf.net_.history
    raw = np.asarray(history[:, "valid_loss"])
    calibrated = np.asarray(history[:, "valid_loss_calibrated"])
    # the calibrated loss is never above the raw one (T = 1 is a candidate)
    assert (calibrated <= raw + 1e-6).all()
    plain = FiBiNETClassifier(**params, early_stopping=True, calibration=None)
    plain.fit(X, y)
    assert "valid_loss_calibrated" not in plain.net_.history[-1]
    assert plain.n_iter_ == int(np.argmin(plain.net_.history[:, "valid_loss"])) + 2


def test_early_stopping_auto_depends_on_size(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    assert "valid_loss" not in clf.net_.history[-1]


def test_verbose(mixed, capsys):
    X, y = mixed
    FiBiNETClassifier(**FAST, verbose=0, early_stopping=True).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    FiBiNETClassifier(**{**FAST, "max_epochs": 2}, verbose=1, early_stopping=True).fit(
        X, y
    )
    out = capsys.readouterr().out
    assert "train_loss" in out and "valid_auc" in out and out.count("\n") >= 4
    FiBiNETClassifier(**{**FAST, "max_epochs": 2}, verbose=2).fit(X, y)
    captured = capsys.readouterr()
    assert "train_loss" in captured.out
    assert "it/s" in captured.err or "s/it" in captured.err  # the progress bar


def test_verbose_prints_the_epoch_early_stopping_stops_after(mixed, capsys):
    X, y = mixed
    # a large learning rate overfits at once, so early stopping fires
    clf = FiBiNETClassifier(
        **{**FAST, "max_epochs": 30, "learning_rate": 0.1},
        n_iter_no_change=1,
        early_stopping=True,
        verbose=1,
    ).fit(X, y)
    out = capsys.readouterr().out
    assert clf.n_iter_ < 30 and "Stopping since" in out
    rows = [line.split()[0] for line in out.splitlines() if line[:7].strip().isdigit()]
    assert rows == [str(epoch) for epoch in range(1, clf.n_iter_ + 1)]


def test_html_repr_for_notebooks():
    # a non-default value: scikit-learn < 1.7 shows only the changed parameters
    html = FiBiNETClassifier(embedding_dim=5)._repr_html_()
    assert "FiBiNETClassifier" in html and "embedding_dim" in html


def test_clone_pickle_joblib_round_trips(mixed, tmp_path):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    expected = clf.predict_proba(X)
    assert clone(clf).get_params() == clf.get_params()
    assert not hasattr(clone(clf), "net_")
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "model.joblib")
    assert_array_equal(
        joblib.load(tmp_path / "model.joblib").predict_proba(X), expected
    )
    buffer = io.BytesIO()
    pickle.dump(clf, buffer)
    buffer.seek(0)
    assert_array_equal(pickle.load(buffer).predict(X), clf.predict(X))


def test_pipeline_with_column_transformer_pandas_output(mixed):
    X, y = mixed
    pre = ColumnTransformer(
        [("scale", StandardScaler(), ["amount", "noise"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = Pipeline([("pre", pre), ("clf", FiBiNETClassifier(**FAST))]).fit(X, y)
    encoder = pipe[-1].encoder_
    assert encoder.categorical_mask_.sum() == 3  # dtypes survived the transformer
    assert roc_auc_score(y, pipe.predict_proba(X)[:, 1]) > 0.85


def test_grid_search_in_parallel_scores_as_in_series(mixed):
    X, y = mixed

    def search(n_jobs):
        return GridSearchCV(
            FiBiNETClassifier(**{**FAST, "max_epochs": 3}),
            {"bilinear_type": ["all", "interaction"]},
            cv=2,
            scoring="roc_auc",
            n_jobs=n_jobs,
        ).fit(X, y)

    parallel, serial = search(2), search(1)
    assert len(parallel.cv_results_["params"]) == 2
    assert parallel.best_score_ > 0.7
    # fixed random_state: worker processes train the same models
    for key in ["split0_test_score", "split1_test_score"]:
        assert_array_equal(parallel.cv_results_[key], serial.cv_results_[key])
    assert parallel.best_params_ == serial.best_params_
    assert_array_equal(
        parallel.best_estimator_.predict_proba(X),
        serial.best_estimator_.predict_proba(X),
    )


def test_cross_val_score_roc_auc(mixed):
    X, y = mixed
    scores = cross_val_score(FiBiNETClassifier(**FAST), X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and scores.min() > 0.75


def test_calibrated_classifier(mixed):
    X, y = mixed
    cal = CalibratedClassifierCV(FiBiNETClassifier(**FAST), cv=2).fit(X, y)
    proba = cal.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.8


def test_numpy_input_is_numeric_and_categorical_by_index():
    X, y = make_mixed()
    arr = X[["amount", "noise"]].to_numpy()
    clf = FiBiNETClassifier(**FAST).fit(arr, y)
    assert not hasattr(clf, "feature_names_in_")
    assert not clf.encoder_.categorical_mask_.any()
    obj = X[["color", "amount"]].to_numpy(dtype=object)
    clf = FiBiNETClassifier(**FAST, categorical_features=[0]).fit(obj, y)
    assert clf.encoder_.categorical_mask_.tolist() == [True, False]
    assert np.isfinite(clf.predict_proba(obj)).all()


def test_categorical_features_by_name_on_numbers(mixed):
    X, y = mixed
    X = X.assign(code=np.arange(len(X)) % 7)
    clf = FiBiNETClassifier(**FAST, categorical_features=["color", "size", "code"])
    clf.fit(X, y)
    assert clf.encoder_.categorical_mask_.tolist() == [
        True,
        True,
        False,
        False,
        False,
        True,
    ]


def test_single_class_is_a_clear_error(mixed):
    X, _ = mixed
    with pytest.raises(ValueError, match="at least 2 classes"):
        FiBiNETClassifier(**FAST).fit(X, np.zeros(len(X)))


def test_bad_device_is_a_clear_error(mixed):
    X, y = mixed
    with pytest.raises(ValueError, match="device"):
        FiBiNETClassifier(**FAST, device="tpu").fit(X, y)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            FiBiNETClassifier(**FAST, device="cuda").fit(X, y)


def test_mps_is_refused_because_it_has_no_sparse_gradients(mixed, monkeypatch):
    X, y = mixed
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(ValueError, match=r"device='mps'.*sparse gradients"):
        FiBiNETClassifier(**FAST, device="mps").fit(X, y)


def test_fit_and_load_leave_the_global_rng_alone(mixed, monkeypatch, tmp_path):
    # a fit and load_model draw from their own generators only: no reseeding,
    # no forking, and torch's global generator state is unchanged
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    save_model(clf, tmp_path / "model.pt")
    forked, seeded = [], []
    real_fork_rng = torch.random.fork_rng

    def recording_fork_rng(devices=None, **kwargs):
        forked.append(devices)
        return real_fork_rng(devices=[], **kwargs)

    monkeypatch.setattr(torch.random, "fork_rng", recording_fork_rng)
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seeded.append(seed))
    state = torch.get_rng_state()
    FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    load_model(tmp_path / "model.pt")
    assert forked == [] and seeded == []
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_predicts_like_the_model_moved_to_cpu(mixed, tmp_path):
    X, y = make_mixed(n=2_000)
    clf = FiBiNETClassifier(**FAST, device="cuda").fit(X, y)
    assert "valid_auc" in clf.net_.history[-1]
    save_model(clf, tmp_path / "model.pt")
    on_cpu = load_model(tmp_path / "model.pt", device="cpu")
    assert_allclose(on_cpu.predict_proba(X), clf.predict_proba(X), atol=1e-5)


def test_codes_unseen_in_training_get_the_fields_mean_embedding(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)  # no missing values, nothing rare
    module = clf.net_.module_
    field = list(X.columns).index("color")
    start = int(module.embedding.offsets[field])
    table = module.embedding.embedding.weight.detach()
    codes = clf.encoder_.transform(X)[:, field]
    counts = np.bincount(codes, minlength=clf.encoder_.cardinalities_[field])
    assert counts[0] == counts[1] == 0  # missing and "other" never seen
    rows = table[start : start + len(counts)].double().numpy()
    expected = (rows * counts[:, None]).sum(0) / counts.sum()
    np.testing.assert_allclose(rows[0], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rows[1], expected, rtol=1e-5, atol=1e-7)


def test_pickle_with_early_stopping_on(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST, early_stopping=True).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_temperature_scaling_fits_on_validation_and_keeps_ranking():
    X, y = make_mixed(n=1500)
    params = {**FAST, "max_epochs": 15, "early_stopping": True}
    cal = FiBiNETClassifier(**params).fit(X, y)
    raw = FiBiNETClassifier(**params, calibration=None).fit(X, y)
    assert raw.temperature_ == 1.0
    assert cal.temperature_ > 0 and cal.temperature_ != 1.0
    p_cal, p_raw = cal.predict_proba(X)[:, 1], raw.predict_proba(X)[:, 1]
    # same network, one monotone map: identical ranking, different values
    assert_array_equal(
        np.argsort(p_cal, kind="stable"), np.argsort(p_raw, kind="stable")
    )
    assert not np.allclose(p_cal, p_raw)
    no_valid = FiBiNETClassifier(**FAST, early_stopping=False).fit(X, y)
    assert no_valid.temperature_ == 1.0


def test_interaction_strengths_find_the_product_pair():
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(5)})
    y = (X["x1"] * X["x3"] + 0.3 * rng.normal(size=n) > 0).astype(int)
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 12}).fit(X, y)
    strengths = clf.interaction_strengths(X)
    assert strengths.shape == (5, 5)
    np.testing.assert_allclose(strengths.to_numpy(), strengths.to_numpy().T)
    assert (np.diag(strengths.to_numpy()) == 0).all()
    upper = strengths.where(np.triu(np.ones((5, 5), dtype=bool), k=1)).stack()
    assert upper.idxmax() == ("x1", "x3")


def test_field_weights_frame_and_importances(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST).fit(X, y)
    weights = clf.field_weights(X.iloc[10:20])
    assert list(weights.columns) == list(X.columns)
    assert weights.index.equals(X.index[10:20])
    assert (weights.to_numpy() >= 0).all()
    assert clf.feature_importances_.shape == (X.shape[1],)
    assert (clf.feature_importances_ >= 0).all()
    np.testing.assert_allclose(clf.feature_importances_.sum(), 1.0)
    mean = clf.field_weights(X).to_numpy().mean(axis=0)  # all rows passed to fit
    assert_allclose(clf.senet_weights_, mean, rtol=1e-6)


def test_linear_part_learns_at_ten_times_the_learning_rate(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    module = clf.net_.module_
    lrs = {}
    for group in clf.net_.optimizer_.param_groups:
        for p in group["params"]:
            lrs[p.data_ptr()] = group["lr"]
    assert lrs[module.linear.weight.data_ptr()] == 10 * FAST["learning_rate"]
    assert lrs[module.dnn[0].weight.data_ptr()] == FAST["learning_rate"]
    assert lrs[module.embedding.embedding.weight.data_ptr()] == FAST["learning_rate"]
    assert lrs[module.cross.table.weight.data_ptr()] == FAST["learning_rate"]
    # The inner optimizers, which do the updates, hold the same rates: the
    # linear table in lazy Adam at 10x, the DNN in AdamW at 1x.
    outer = clf.net_.optimizer_
    inner = {}
    for name, opt in (("sparse", outer._sparse), ("dense", outer._dense)):
        for group in opt.param_groups:
            for p in group["params"]:
                inner[p.data_ptr()] = (name, group["lr"])
    lr = FAST["learning_rate"]
    assert inner[module.linear.weight.data_ptr()] == ("sparse", 10 * lr)
    assert inner[module.embedding.embedding.weight.data_ptr()] == ("sparse", lr)
    assert inner[module.cross.table.weight.data_ptr()] == ("sparse", lr)
    assert inner[module.dnn[0].weight.data_ptr()] == ("dense", lr)


def test_embedding_l2_scales_by_the_training_count_of_each_code(mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    codes = torch.from_numpy(clf.encoder_.transform(X))  # no early stopping: all rows
    offsets = torch.tensor([0, *np.cumsum(clf.encoder_.cardinalities_)[:-1]])
    counts = torch.bincount(
        (codes + offsets).flatten(), minlength=sum(clf.encoder_.cardinalities_)
    )
    groups = {id(p): g for g in clf.net_.optimizer_.param_groups for p in g["params"]}
    module = clf.net_.module_
    for table in (module.embedding.embedding.weight, module.linear.weight):
        group = groups[id(table)]
        assert group["row_l2"] == 0.03  # the default
        assert_allclose(group["row_scale"], 1 / counts.clamp(min=1).float())
    assert "row_l2" not in groups[id(module.cross.table.weight)]
    off = FiBiNETClassifier(**{**FAST, "max_epochs": 1}, embedding_l2=0.0).fit(X, y)
    off_groups = off.net_.optimizer_.param_groups
    assert not any(g.get("row_l2") for g in off_groups)
    assert not np.allclose(off.predict_proba(X), clf.predict_proba(X))


def test_only_pairs_with_enough_rows_per_combination_are_crossed(mixed):
    X, y = mixed  # 600 rows, no early stopping: crosses of at most 600 / 4 cells
    clf = FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y)
    cross = clf.net_.module_.cross
    cards = np.array(clf.encoder_.cardinalities_)
    cells = cards[cross.left.numpy()] * cards[cross.right.numpy()]
    assert clf.net_.module__max_cross_cells == 150
    assert cross.n_pairs > 0 and (cells <= 150).all()
    small = [(i, j) for i in range(len(cards)) for j in range(i + 1, len(cards))]
    assert cross.n_pairs == sum(cards[i] * cards[j] <= 150 for i, j in small)
    off = FiBiNETClassifier(**{**FAST, "max_epochs": 1, "max_cross_cells": 0})
    assert off.fit(X, y).net_.module_.cross is None


def test_crosses_learn_a_table_of_rates_over_two_small_fields():
    # y depends on (month, day) only through a full-rank table of rates, the
    # case where one weight per combination beats low-rank pair products.
    rng = np.random.default_rng(0)
    n = 8000
    table = rng.normal(scale=2.0, size=(12, 31))
    month, day = rng.integers(0, 12, n), rng.integers(0, 31, n)
    noise = rng.integers(0, 5, n)
    p = 1 / (1 + np.exp(-table[month, day]))
    y = (rng.random(n) < p).astype(int)
    X = pd.DataFrame(
        {"month": month.astype(str), "day": day, "noise": noise.astype(str)}
    )
    X_tr, X_te, y_tr, y_te = X[:6000], X[6000:], y[:6000], y[6000:]
    auc = {}
    for cells in (0, 2000):
        clf = FiBiNETClassifier(**{**FAST, "max_cross_cells": cells})
        proba = clf.fit(X_tr, y_tr).predict_proba(X_te)[:, 1]
        auc[cells] = roc_auc_score(y_te, proba)
    assert auc[2000] > auc[0] + 0.02, auc


@pytest.mark.parametrize("variant", ["fibinet", "fibinet++"])
def test_variants_fit_predict_inspect(variant, mixed):
    X, y = mixed
    clf = FiBiNETClassifier(**FAST, variant=variant).fit(X, y)
    proba = clf.predict_proba(X)
    assert roc_auc_score(y, proba[:, 1]) > 0.85
    strengths = clf.interaction_strengths(X)
    assert strengths.shape == (5, 5) and (strengths.to_numpy() >= 0).all()
    assert clf.field_weights(X).shape == (len(X), 5)
    module = type(clf.net_.module_).__name__
    assert module == {"fibinet": "FiBiNET", "fibinet++": "FiBiNetPP"}[variant]


def test_grid_search_over_variants(mixed):
    X, y = mixed
    search = GridSearchCV(
        FiBiNETClassifier(**{**FAST, "max_epochs": 2}),
        {"variant": ["fibinet", "fibinet++"]},
        cv=2,
        scoring="roc_auc",
    ).fit(X, y)
    assert search.best_params_["variant"] in ("fibinet", "fibinet++")


def test_fit_and_predict_leave_the_process_allocator_alone(mixed, monkeypatch):
    # glibc tuning changes the whole process: opt-in only (sk_fibinet.tune_malloc)
    import ctypes

    import sk_fibinet.training.malloc as malloc

    def refuse(*args, **kwargs):
        raise AssertionError("the estimator loaded libc to tune malloc")

    monkeypatch.setattr(ctypes, "CDLL", refuse)
    monkeypatch.setattr(malloc, "_state", {})
    X, y = mixed
    FiBiNETClassifier(**{**FAST, "max_epochs": 1}).fit(X, y).predict_proba(X)
    assert malloc._state == {}
