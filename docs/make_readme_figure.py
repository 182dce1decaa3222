"""Regenerate ``docs/_static/adult_interpretability.png``, the README's figure.

FiBiNETClassifier with its defaults (``random_state=0``) on the Adult training
file; learning curves, field ablation importances and the interaction map::

    python docs/make_readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sk_fibinet import FiBiNETClassifier  # noqa: E402
from sk_fibinet.datasets import load_adult  # noqa: E402
from sk_fibinet.plotting import (  # noqa: E402
    plot_field_importances,
    plot_interactions,
    plot_learning_curves,
)

X, y = load_adult(subset="train", return_X_y=True)
clf = FiBiNETClassifier(random_state=0).fit(X, y)
fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), layout="constrained")
plot_learning_curves(clf, ax=axes[0])
plot_field_importances(clf, ax=axes[1])
plot_interactions(
    clf.interaction_strengths(X.sample(5_000, random_state=0)), ax=axes[2]
)
out = Path(__file__).resolve().parent / "_static" / "adult_interpretability.png"
fig.savefig(out, dpi=80)
print(f"wrote {out}")
