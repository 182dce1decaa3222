import numpy as np
import pytest
from conftest import FAST, make_mixed

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sk_fibinet.plotting import (  # noqa: E402
    plot_contributions,
    plot_field_importances,
    plot_interactions,
    plot_learning_curves,
    plot_waterfall,
)


@pytest.fixture(scope="module")
def model_and_data():
    X, y = make_mixed(n=800)
    clf = FiBiNETClassifier(**FAST, early_stopping=True).fit(X, y)
    return clf, X


def _png_is_nonempty(ax, path):
    ax.figure.savefig(path, dpi=60)
    plt.close(ax.figure)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_plot_field_importances(model_and_data, tmp_path):
    clf, X = model_and_data
    ax = plot_field_importances(clf)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(labels) == sorted(X.columns)
    _png_is_nonempty(ax, tmp_path / "importance.png")


def test_plot_interactions(model_and_data, tmp_path):
    clf, X = model_and_data
    ax = plot_interactions(clf.interaction_strengths(X))
    assert len(ax.get_images()) == 1
    _png_is_nonempty(ax, tmp_path / "interactions.png")
    with pytest.raises(ValueError, match="square DataFrame"):
        plot_interactions(X)


def test_plot_learning_curves(model_and_data, tmp_path):
    clf, _ = model_and_data
    ax = plot_learning_curves(clf)
    labels = [line.get_label() for line in ax.get_lines()]
    assert "training loss" in labels and "validation loss" in labels
    assert len(ax.get_lines()[0].get_xdata()) == clf.n_iter_
    assert ax.get_ylabel() == "log loss (weighted)"
    _png_is_nonempty(ax, tmp_path / "curves.png")


@pytest.mark.parametrize(
    "loss, label",
    [("squared_error", "squared error"), ("poisson", "Poisson negative log")],
)
def test_learning_curves_of_a_regressor_name_its_loss(loss, label):
    X, y = make_mixed(n=400)
    reg = FiBiNETRegressor(**FAST, loss=loss, early_stopping=True).fit(X, y + 1.0)
    ax = plot_learning_curves(reg)
    assert ax.get_ylabel().startswith(label)
    plt.close(ax.figure)


def _kept_line(ax):
    (line,) = [x for x in ax.get_lines() if x.get_label() == "epoch kept"]
    return line.get_xdata()[0]


def test_learning_curves_mark_the_epoch_early_stopping_kept(model_and_data):
    clf, _ = model_and_data
    stopper = dict(clf.net_.callbacks_)["early_stopping"]
    ax = plot_learning_curves(clf)
    assert _kept_line(ax) == stopper.best_epoch_
    plt.close(ax.figure)


def test_kept_epoch_follows_tol_not_the_lowest_loss(model_and_data, tmp_path):
    # epoch 3 is the lowest, but by less than tol: early stopping keeps epoch 2
    from skorch.history import History

    from sk_fibinet import load_model, save_model

    clf, _ = model_and_data
    save_model(clf, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")  # no EarlyStopping callback left
    losses = [0.5, 0.4, 0.4 - clf.tol / 2, 0.41]
    loaded.net_.history = History(
        [
            {"epoch": i + 1, "train_loss": 0.6, "valid_loss": v}
            for i, v in enumerate(losses)
        ]
    )
    ax = plot_learning_curves(loaded)
    assert _kept_line(ax) == 2
    plt.close(ax.figure)


def test_plot_contributions(model_and_data, tmp_path):
    clf, X = model_and_data
    contributions = clf.explain(X.iloc[:200])
    ax = plot_contributions(contributions, X.iloc[:200], max_columns=4)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # at most 4 columns, the largest mean |contribution| on top (last tick)
    order = contributions.abs().mean().sort_values(ascending=False).index
    assert labels == list(order[:4])[::-1]
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots == 4 * 200
    _png_is_nonempty(ax, tmp_path / "contributions.png")
    ax = plot_contributions(contributions)  # no X: one colour
    _png_is_nonempty(ax, tmp_path / "contributions_plain.png")
    with pytest.raises(ValueError, match="rows and columns that were explained"):
        plot_contributions(contributions, X.iloc[:10])
    with pytest.raises(ValueError, match="DataFrame returned by explain"):
        plot_contributions(contributions.to_numpy())


def test_plot_waterfall(model_and_data, tmp_path):
    clf, X = model_and_data
    contributions = clf.explain(X.iloc[:3])
    row = contributions.iloc[1]
    ax = plot_waterfall(row, clf.explain_base_value_, values=X.iloc[1], max_columns=3)
    bars = ax.patches
    assert len(bars) == 4  # 3 columns and the other 2 summed
    # the last bar ends at the row's logit, the first starts at the base value
    assert np.isclose(bars[0].get_x(), clf.explain_base_value_)
    top = bars[-1].get_x() + bars[-1].get_width()
    assert np.isclose(top, clf.decision_function(X.iloc[1:2])[0], atol=1e-4)
    assert "2 other columns" in [t.get_text() for t in ax.get_yticklabels()]
    _png_is_nonempty(ax, tmp_path / "waterfall.png")
    with pytest.raises(ValueError, match="draws one row"):
        plot_waterfall(contributions, clf.explain_base_value_)
