"""
Looking inside the model: field weights and interaction strengths
=================================================================

FiBiNET looks at fields explicitly in two places. The SENET layer gives every
field a weight per row, and the bilinear layers produce one vector per pair of
fields. :class:`sk_fibinet.FiBiNETClassifier` exposes both under the names of
the input columns:

* ``feature_importances_`` and ``field_weights(X)``: the SENET excitation
  weights, averaged over the training rows or per row;
* ``interaction_strengths(X)``: how strongly every pair of fields feeds the
  DNN, averaged over the rows of ``X``.

We fit the classifier on the Adult census data and plot both, then check on
synthetic data whose label depends on the product of two columns that the
interaction strengths find that pair.
"""

# %%
# Settings
# --------
# ``SK_FIBINET_EXAMPLES_SMOKE=1`` shrinks everything for a quick test run.
# Figures are saved as PNG files into ``$SK_FIBINET_EXAMPLES_OUT`` (default:
# the current directory). sphinx-gallery runs the examples without
# ``__file__`` and captures the figures itself, so nothing is saved there
# unless the variable is set.
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.datasets import load_adult
from sk_fibinet.plotting import (
    plot_field_importances,
    plot_interactions,
    plot_learning_curves,
)

SMOKE = os.environ.get("SK_FIBINET_EXAMPLES_SMOKE") == "1"
IN_GALLERY = "__file__" not in globals()
OUT = os.environ.get("SK_FIBINET_EXAMPLES_OUT", None if IN_GALLERY else ".")


def save(fig, name):
    """Write ``fig`` to ``OUT/name`` (the figure stays open for sphinx-gallery)."""
    if OUT is not None:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=100)


def top_pairs(strengths, n=5):
    """The ``n`` strongest field pairs of an ``interaction_strengths`` table."""
    upper = np.triu(np.ones(strengths.shape, dtype=bool), k=1)
    pairs = strengths.where(upper).stack().sort_values(ascending=False).head(n)
    pairs.index = [f"({a}, {b})" for a, b in pairs.index]
    return pairs


pd.set_option("display.width", 120)

# %%
# Fit on Adult
# ------------
# Default parameters, as in the quickstart (smaller in smoke mode).
X_train, y_train = load_adult(subset="train", return_X_y=True)
X_test, y_test = load_adult(subset="test", return_X_y=True)
if SMOKE:
    X_train, y_train = X_train.iloc[:3_000], y_train.iloc[:3_000]
    X_test, y_test = X_test.iloc[:1_000], y_test.iloc[:1_000]
    params = dict(embedding_dim=4, hidden_layer_sizes=(32,), max_epochs=2)
else:
    params = {}
clf = FiBiNETClassifier(random_state=0, **params).fit(X_train, y_train)
proba = clf.predict_proba(X_test)[:, list(clf.classes_).index(">50K")]
print(f"epochs run: {clf.n_iter_}")
print(f"test ROC AUC: {roc_auc_score(y_test == '>50K', proba):.4f}")

# %%
# The learning curves show how training went: the loss per epoch on the
# training rows and on the rows early stopping held out; the dotted line is the
# epoch whose weights it kept.
ax = plot_learning_curves(clf)
save(ax.figure, "interpretability_learning_curves.png")

# %%
# SENET field weights
# -------------------
# ``feature_importances_`` is the SENET weight of each field averaged over the
# training rows, normalized to sum to 1.
print(
    pd.Series(clf.feature_importances_, index=clf.feature_names_in_)
    .sort_values(ascending=False)
    .round(4)
    .to_string()
)
ax = plot_field_importances(clf)
ax.set_title("Adult: SENET field importance (training rows)")
save(ax.figure, "interpretability_field_importances.png")

# %%
# ``field_weights`` gives the same weights row by row: the factor by which the
# SENET layer scales each field's embedding for that row.
weights = clf.field_weights(X_test)
head = weights.head(4).T.rename(columns=lambda i: f"row {i}")
print(head.to_string(float_format=lambda v: f"{v:.2e}"))

# %%
# Read these weights as a description of **what the gate does**, not of how
# much a column matters for the prediction. The SENET layer squeezes each
# embedding to its mean; the embeddings start near zero, so the gate's inputs
# and gradients are small and its weights stay small (on Adult about 1e-4 at
# initialisation and 1e-3 after training). With the default
# ``senet_activation="relu"`` a weight can also be exactly 0, and a field whose
# weight is 0 for every row gets no gradient through the gate at all. Columns
# that clearly matter on Adult, such as ``age``, ``capital_gain`` or
# ``capital_loss``, can end up at the bottom of the ranking for that reason.
# The weights also ignore the plain-embedding branch and the linear part. For
# "which columns matter", use
# :func:`sklearn.inspection.permutation_importance` on held-out data.
summary = pd.DataFrame(
    {"mean weight": weights.mean(), "share of rows at 0": (weights == 0).mean()}
).sort_values("mean weight", ascending=False)
print(
    summary.to_string(
        formatters={
            "mean weight": "{:.2e}".format,
            "share of rows at 0": "{:.0%}".format,
        }
    )
)

# %%
# Interaction strengths
# ---------------------
# For every pair of fields, ``interaction_strengths`` measures the size of the
# pair's contribution to the first DNN layer, averaged over the rows passed.
# This is the part of the network FiBiNET is built around, and a more
# informative view than the SENET weights. Measure it on held-out rows. The
# values are magnitudes: they say which pairs the network uses, not in which
# direction they move the prediction, and they compare pairs within one model.
strengths = clf.interaction_strengths(X_test)
print("strongest field pairs on the test rows:")
print(top_pairs(strengths).to_string(float_format="{:.3g}".format))
ax = plot_interactions(strengths)
ax.set_title("Adult: field-pair interaction strength (test rows)")
save(ax.figure, "interpretability_interactions_adult.png")

# %%
# A check on synthetic data
# -------------------------
# Six numeric columns; the label depends only on the product of ``x1`` and
# ``x4`` (no column matters on its own). The pair ``(x1, x4)`` should stand
# out in the interaction strengths, while the SENET importances need not
# single out either column.
rng = np.random.default_rng(0)
n = 2_000 if SMOKE else 10_000
X_syn = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
logit = 3.0 * X_syn["x1"] * X_syn["x4"]
y_syn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

syn = FiBiNETClassifier(
    n_bins=16,
    embedding_dim=4 if SMOKE else 8,
    hidden_layer_sizes=(32,) if SMOKE else (64,),
    learning_rate=3e-3,
    max_epochs=3 if SMOKE else 20,
    random_state=0,
).fit(X_syn, y_syn)

syn_strengths = syn.interaction_strengths(X_syn)
ranking = top_pairs(syn_strengths, n=3)
print("strongest field pairs:")
print(ranking.to_string(float_format="{:.3g}".format))
print(f"strongest pair: {ranking.index[0]}")
importances = pd.Series(syn.feature_importances_, index=X_syn.columns)
print("SENET importances:", importances.round(3).to_dict())

ax = plot_interactions(syn_strengths)
ax.set_title("Synthetic data: label from x1 * x4")
save(ax.figure, "interpretability_interactions_synthetic.png")
