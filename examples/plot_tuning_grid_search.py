"""
Tuning with a Pipeline and GridSearchCV
=======================================

:class:`sk_fibinet.FiBiNETClassifier` is an ordinary scikit-learn estimator:
its settings are constructor parameters, so it goes into a
:class:`~sklearn.pipeline.Pipeline` and its parameters are searched with
:class:`~sklearn.model_selection.GridSearchCV`, folds running in parallel
worker processes (``n_jobs=2``).

On the Adult census data we search the embedding width and the type of the
bilinear interaction layer (one shared matrix, one per field, or one per field
pair) by 3-fold cross-validated ROC AUC, then evaluate the best setting on the
official test file.
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
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.datasets import load_adult

SMOKE = os.environ.get("SK_FIBINET_EXAMPLES_SMOKE") == "1"
IN_GALLERY = "__file__" not in globals()
OUT = os.environ.get("SK_FIBINET_EXAMPLES_OUT", None if IN_GALLERY else ".")


def save(fig, name):
    """Write ``fig`` to ``OUT/name`` (the figure stays open for sphinx-gallery)."""
    if OUT is not None:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=100)


# %%
# The data
# --------
# The official train file is used for the search, the test file only once, at
# the end. The target is a Series of strings; we use a 0/1 target (1 for
# ``">50K"``) so that ``scoring="roc_auc"`` knows which class is positive.
X_train, y_train = load_adult(subset="train", return_X_y=True)
X_test, y_test = load_adult(subset="test", return_X_y=True)
y_train = (y_train == ">50K").astype(int)
y_test = (y_test == ">50K").astype(int)
if SMOKE:
    X_train, y_train = X_train.iloc[:2_000], y_train.iloc[:2_000]
    X_test, y_test = X_test.iloc[:2_000], y_test.iloc[:2_000]
print(f"train {X_train.shape}, test {X_test.shape}")

# %%
# The pipeline
# ------------
# ``fnlwgt`` is a survey sampling weight, not a property of the person, so a
# :class:`~sklearn.compose.ColumnTransformer` drops it. With pandas output the
# remaining columns keep their dtypes and names, and the classifier detects
# the categorical columns itself. Fixed settings keep each fit short: a one
# layer DNN, large batches, a larger learning rate and early stopping with a
# patience of 2 epochs.
pipe = Pipeline(
    [
        (
            "drop",
            ColumnTransformer(
                [("fnlwgt", "drop", ["fnlwgt"])],
                remainder="passthrough",
                verbose_feature_names_out=False,
            ).set_output(transform="pandas"),
        ),
        (
            "fibinet",
            FiBiNETClassifier(
                hidden_layer_sizes=(64,),
                batch_size=1024,
                learning_rate=3e-3,
                max_epochs=2 if SMOKE else 10,
                early_stopping=True,
                n_iter_no_change=2,
                random_state=0,
            ),
        ),
    ]
)

# %%
# The search
# ----------
# Parameters of a pipeline step are addressed as ``<step>__<parameter>``.
# Every candidate is fitted once per fold; ``refit=True`` (the default) then
# refits the best one on the whole training set. Each grid dimension
# multiplies the cost: adding ``fibinet__learning_rate: [1e-3, 3e-3]`` would
# double it.
param_grid = {
    "fibinet__embedding_dim": [4, 8] if SMOKE else [4, 16],
    "fibinet__bilinear_type": ["all", "interaction"]
    if SMOKE
    else ["all", "each", "interaction"],
}
search = GridSearchCV(
    pipe, param_grid, scoring="roc_auc", cv=2 if SMOKE else 3, n_jobs=2
)
start = time.perf_counter()
search.fit(X_train, y_train)
print(f"search time: {time.perf_counter() - start:.1f} s")

# %%
# The results, best first. ``mean_fit_time`` is the time of one fit in a
# worker process.
results = pd.DataFrame(search.cv_results_)
table = (
    results.rename(
        columns={
            "param_fibinet__embedding_dim": "embedding_dim",
            "param_fibinet__bilinear_type": "bilinear_type",
            "mean_test_score": "mean_auc",
            "std_test_score": "std_auc",
            "mean_fit_time": "fit_s",
        }
    )
    .sort_values("rank_test_score")
    .set_index("rank_test_score")[
        ["embedding_dim", "bilinear_type", "mean_auc", "std_auc", "fit_s"]
    ]
)
print(table.to_string(float_format=lambda v: f"{v:.4f}"))
print("best parameters:", search.best_params_)

# %%
# Held-out evaluation
# -------------------
# The refitted best pipeline, on the test file it has never seen.
proba = search.predict_proba(X_test)[:, 1]
print(f"best CV ROC AUC:  {search.best_score_:.4f}")
print(f"test ROC AUC:     {roc_auc_score(y_test, proba):.4f}")

# %%
# Mean cross-validated ROC AUC per setting, with the standard deviation over
# the folds as error bars. On Adult the settings differ by less than 0.001 of
# AUC, less than the spread between folds: the choice hardly matters here, and
# ``embedding_dim=4`` fits in about half the time of 16 or less (``fit_s``
# above). On other data, in particular click logs with many high-cardinality
# columns, the ranking can differ: search there too.
means = results["mean_test_score"].to_numpy()
stds = results["std_test_score"].to_numpy()
labels = [
    f"d={p['fibinet__embedding_dim']}\n{p['fibinet__bilinear_type']}\n{m:.4f}"
    for p, m in zip(results["params"], means, strict=True)
]
best = int(np.argmax(means))
colors = ["#3b75af"] * len(means)
colors[best] = "#e07b39"

fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
ax.bar(range(len(means)), means, yerr=stds, capsize=4, color=colors)
ax.set_xticks(range(len(means)), labels)
low = (means - stds).min()
high = (means + stds).max()
pad = max(high - low, 1e-3) * 0.3
ax.set_ylim(low - pad, high + pad)
ax.set_xlabel("embedding_dim, bilinear_type and mean ROC AUC")
ax.set_ylabel(f"ROC AUC, mean and std over {search.n_splits_} folds")
ax.set_title("Grid search on Adult (best setting in orange)")
save(fig, "tuning_grid_search_cv_auc.png")
