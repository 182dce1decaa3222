import pytest
from conftest import FAST, make_mixed

from sk_fibinet import FiBiNETClassifier

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sk_fibinet.plotting import (  # noqa: E402
    plot_field_importances,
    plot_interactions,
    plot_learning_curves,
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
    _png_is_nonempty(ax, tmp_path / "curves.png")
