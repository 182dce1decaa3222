"""
Which columns matter, which pairs interact, why this row
========================================================

Three questions a fitted :class:`sk_fibinet.FiBiNETClassifier` answers in the
names of the input columns:

* ``feature_importances_``: **which columns matter**, the rise of the
  validation loss when a column is replaced by its reference (the mean of its
  trained embeddings), measured at the end of ``fit``;
* ``interaction_strengths(X)``: **which pairs of columns interact**, how
  strongly every pair of fields feeds the DNN;
* ``explain(X)``: **why this row**, the contribution of every column to each
  row's logit, adding up to ``decision_function(X)``.

We fit the classifier on the Adult census data and look at all three, then
check on synthetic data whose label depends on the product of two columns
that the pair stands out, and that its two columns share the contribution.
The SENET gate's values (``senet_weights_``) come last, for what they are.
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
    plot_contributions,
    plot_field_importances,
    plot_interactions,
    plot_learning_curves,
    plot_waterfall,
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
# Which columns matter
# --------------------
# ``feature_importances_``: for every column, how much the (calibrated) log
# loss on the rows early stopping held out rises when the column's field is
# replaced by its reference, divided by the sum of the rises. Computed at the
# end of ``fit``, at a fraction of its cost.
importances = pd.Series(clf.feature_importances_, index=clf.feature_names_in_)
print(importances.sort_values(ascending=False).round(3).to_string())
ax = plot_field_importances(clf)
ax.set_title("Adult: field ablation importance (validation rows)")
save(ax.figure, "interpretability_field_importances.png")

# %%
# Which pairs interact
# --------------------
# For every pair of fields, ``interaction_strengths`` measures the size of the
# pair's contribution to the first DNN layer, averaged over the rows passed:
# the part of the network FiBiNET is built around. Measure it on held-out
# rows. The values are magnitudes: they say which pairs the network uses, not
# in which direction they move the prediction, and they compare pairs within
# one model.
strengths = clf.interaction_strengths(X_test)
print("strongest field pairs on the test rows:")
print(top_pairs(strengths).to_string(float_format="{:.3g}".format))
ax = plot_interactions(strengths)
ax.set_title("Adult: field-pair interaction strength (test rows)")
save(ax.figure, "interpretability_interactions_adult.png")

# %%
# Why this row
# ------------
# ``explain`` gives every row's contributions in logit units: Shapley values of
# the columns, where a column left out is set to its reference. They add up to
# the calibrated logit, ``decision_function``, from ``explain_base_value_``.
rows = X_test.sample(60 if SMOKE else 300, random_state=0)
contributions = clf.explain(rows)
total = contributions.sum(axis=1) + clf.explain_base_value_
gap = np.abs(total - clf.decision_function(rows)).max()
print(f"base value (logit): {clf.explain_base_value_:.3f}")
print(f"largest gap between the sum and decision_function: {gap:.1e}")

# %%
# The summary plot shows one dot per row and column, at its contribution,
# coloured by the column's value (numeric columns) or by how frequent the
# row's category is (categorical columns); columns are sorted by their mean
# absolute contribution.
ax = plot_contributions(
    contributions, rows, xlabel="contribution to the logit of '>50K'"
)
ax.set_title(f"Adult: contributions of {len(rows)} test rows")
save(ax.figure, "interpretability_contributions.png")

# %%
# One row as a waterfall: from the base value, each column moves the logit up
# (red) or down (blue) to the row's output. We take the row closest to the
# decision boundary (logit 0), where columns pull both ways.
i = int(np.argmin(np.abs(clf.decision_function(rows))))
ax = plot_waterfall(
    contributions.iloc[i],
    clf.explain_base_value_,
    values=rows.iloc[i],
    xlabel="logit of '>50K'",
)
save(ax.figure, "interpretability_waterfall.png")

# %%
# A check on synthetic data
# -------------------------
# Six numeric columns; the label depends only on the product of ``x1`` and
# ``x4`` (no column matters on its own). The pair ``(x1, x4)`` should stand
# out in the interaction strengths, the importances should find both columns
# and nothing else, and the contributions should split the product between
# them.
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
print("importances:", importances.round(3).to_dict())
# the product is an interaction: x1 and x4 share its contribution
syn_contributions = syn.explain(X_syn.iloc[:500])
print("mean |contribution|:", syn_contributions.abs().mean().round(3).to_dict())

ax = plot_interactions(syn_strengths)
ax.set_title("Synthetic data: label from x1 * x4")
save(ax.figure, "interpretability_interactions_synthetic.png")

# %%
# What the SENET weights are
# --------------------------
# The SENET layer multiplies every field's embedding by a weight per row
# (``field_weights(X)``; ``senet_weights_`` is their mean over the rows passed
# to ``fit``) before the second bilinear branch. These are the values of a
# gate, not an importance: the embeddings start near zero, so the gate's
# inputs and gradients are small and its weights stay small, and on synthetic
# data with 6 signal and 8 noise columns they put only 2-3 signal columns in
# their top 6 (chance: 2.6), where the ablation importances put all 6.
senet = pd.Series(clf.senet_weights_, index=clf.feature_names_in_)
print(senet.sort_values(ascending=False).map("{:.2e}".format).to_string())
