"""
Regression: hours worked per week on Adult
==========================================

:class:`sk_fibinet.FiBiNETRegressor` is the same network as the classifier
with one output and a regression loss. Here it predicts the hours a person
works per week from the other Adult columns (age, occupation, education,
relationship, ...), a target where a handful of categorical columns and their
pairs carry most of the signal.

We compare the default squared-error model, the Poisson loss (the target is a
positive count) and :class:`~sklearn.ensemble.HistGradientBoostingRegressor`
with its native categorical support, all on the official Adult test file, and
look at the learning curves and at which column pairs the network found.
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
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, r2_score

from sk_fibinet import FiBiNETRegressor
from sk_fibinet.datasets import load_adult
from sk_fibinet.plotting import plot_interactions, plot_learning_curves

SMOKE = os.environ.get("SK_FIBINET_EXAMPLES_SMOKE") == "1"
IN_GALLERY = "__file__" not in globals()
OUT = os.environ.get("SK_FIBINET_EXAMPLES_OUT", None if IN_GALLERY else ".")
SMOKE_PARAMS = {"max_epochs": 2} if SMOKE else {}


def save(fig, name):
    """Write ``fig`` to ``OUT/name`` (the figure stays open for sphinx-gallery)."""
    if OUT is not None:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=100)


# %%
# The data
# --------
# The target is the ``hours_per_week`` column; the income label is not used.
X_train = load_adult(subset="train", return_X_y=True)[0]
X_test = load_adult(subset="test", return_X_y=True)[0]
if SMOKE:
    X_train, X_test = X_train.iloc[:2000], X_test.iloc[:1000]
y_train = X_train.pop("hours_per_week").to_numpy(dtype=float)
y_test = X_test.pop("hours_per_week").to_numpy(dtype=float)
print(f"train {X_train.shape}, test {X_test.shape}, mean hours {y_train.mean():.1f}")

# %%
# Three models
# ------------
# The network standardises the target itself and restores the scale in
# ``predict``; nothing needs to be scaled by hand. The Poisson loss models the
# log of the mean and always predicts a positive number.
models = {
    "FiBiNET (squared error)": FiBiNETRegressor(random_state=0, **SMOKE_PARAMS),
    "FiBiNET (Poisson)": FiBiNETRegressor(
        loss="poisson", random_state=0, **SMOKE_PARAMS
    ),
    "HistGradientBoosting": HistGradientBoostingRegressor(
        categorical_features="from_dtype", random_state=0
    ),
}
predictions = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    predictions[name] = model.predict(X_test)
    r2 = r2_score(y_test, predictions[name])
    mae = mean_absolute_error(y_test, predictions[name])
    print(f"{name:24s}  R^2 {r2:.4f}  MAE {mae:5.2f} h  fit {seconds:5.1f} s")

# %%
# Predictions against the truth
# -----------------------------
# Mean prediction per true value (grouped by whole hours, groups of at least
# 20 test rows): a perfect model lies on the diagonal. All three pull the
# extremes towards the mean, as any model of a noisy target does.
fig, ax = plt.subplots(figsize=(6, 5))
for name, pred in predictions.items():
    hours = np.unique(y_test)
    means = [pred[y_test == h].mean() for h in hours]
    counts = np.array([(y_test == h).sum() for h in hours])
    keep = counts >= (5 if SMOKE else 20)
    ax.plot(hours[keep], np.asarray(means)[keep], "o-", ms=3, label=name)
ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
ax.set(
    xlabel="true hours per week",
    ylabel="mean predicted hours",
    title="Adult test rows",
)
ax.legend()
fig.tight_layout()
save(fig, "regression_predicted_vs_true.png")

# %%
# Learning curves and interacting pairs
# -------------------------------------
# Early stopping watches the validation loss (mean squared error of the
# standardised target) and keeps the best epoch's weights. The interaction
# strengths say which pairs of columns feed the network most.
reg = models["FiBiNET (squared error)"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
plot_learning_curves(reg, ax=axes[0])
plot_interactions(reg.interaction_strengths(X_test), ax=axes[1])
fig.tight_layout()
save(fig, "regression_learning_curves_interactions.png")
