"""
Click-through-rate prediction on Criteo-shaped data
===================================================

Train :class:`sk_fibinet.FiBiNETClassifier` on a click log shaped like the
Criteo display-advertising data: 13 integer count columns ``I1..I13`` and 26
hashed categorical columns ``C1..C26`` with vocabularies from a handful to
100,000 values, skewed frequencies and missing values.

By default the data is drawn by ``make_criteo_like`` from the repository's
``benchmarks/criteo_like.py``, whose label depends on a few fields and two
pairwise interactions. To use real data instead, pass a file in the Criteo
Kaggle format (tab-separated, no header: label, ``I1..I13``, ``C1..C26``;
``.gz`` works too)::

    python examples/plot_ctr_criteo_like.py --criteo train.txt --n-rows 200000
    SK_FIBINET_CRITEO=train.txt python examples/plot_ctr_criteo_like.py

CTR models are judged on held-out ROC AUC and log loss; the log loss is put in
context by the log loss of always predicting the training click rate.
"""

# %%
# Settings
# --------
# ``SK_FIBINET_EXAMPLES_SMOKE=1`` shrinks everything for a quick test run.
# Figures are saved as PNG files into ``$SK_FIBINET_EXAMPLES_OUT`` (default:
# the current directory). sphinx-gallery runs the examples without
# ``__file__`` from the ``examples/`` folder and captures the figures itself,
# so nothing is saved there unless the variable is set.
import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.plotting import plot_learning_curves

SMOKE = os.environ.get("SK_FIBINET_EXAMPLES_SMOKE") == "1"
IN_GALLERY = "__file__" not in globals()
HERE = Path.cwd() if IN_GALLERY else Path(__file__).resolve().parent
OUT = os.environ.get("SK_FIBINET_EXAMPLES_OUT", None if IN_GALLERY else ".")


def save(fig, name):
    """Write ``fig`` to ``OUT/name`` (the figure stays open for sphinx-gallery)."""
    if OUT is not None:
        Path(OUT).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(OUT) / name, dpi=100)


parser = argparse.ArgumentParser(description="FiBiNET on Criteo-shaped data")
parser.add_argument(
    "--criteo",
    default=os.environ.get("SK_FIBINET_CRITEO"),
    help="Criteo Kaggle-format file (default: synthetic data)",
)
parser.add_argument("--n-rows", type=int, default=None, help="rows to use")
args, _ = parser.parse_known_args()  # sphinx-gallery passes no arguments

# %%
# The data
# --------
# The generator returns the categorical columns with the ``category`` dtype
# and the counts as floats with NaN for missing values. The Criteo file is read
# the same way: hashed ids as categories, empty fields as missing values.
INTEGER = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]

if args.criteo:
    n_rows = args.n_rows or (5_000 if SMOKE else 100_000)
    frame = pd.read_csv(
        args.criteo,
        sep="\t",
        header=None,
        names=["label"] + INTEGER + CATEGORICAL,
        dtype={c: "category" for c in CATEGORICAL},
        nrows=n_rows,
    )
    y = frame.pop("label").to_numpy()
    X = frame
    source = f"Criteo file {args.criteo}"
else:
    # The generator lives in the repository's benchmarks/ folder.
    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from criteo_like import make_criteo_like

    n_rows = args.n_rows or (4_000 if SMOKE else 60_000)
    X, y = make_criteo_like(n_rows=n_rows, random_state=0)
    source = "make_criteo_like (synthetic)"

X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=0
)
print(f"data:          {source}")
print(f"train / test:  {len(X_train):,} / {len(X_test):,} rows, {X.shape[1]} columns")
print(f"click rate:    {y_train.mean():.3f} (train)")
distinct = sum(X_train[c].nunique() for c in CATEGORICAL)
print(f"distinct ids:  {distinct:,} in the 26 categorical training columns")

# %%
# The model
# ---------
# ``categorical_features`` names the hashed id columns; the count columns
# become fields through quantile bins. Most hashed ids are seen only once or
# twice: ``min_frequency=10`` gives every id seen fewer than 10 times one
# shared, trained "other" row per field, which keeps the embedding tables small
# and also serves ids that first appear at prediction time. With 39 fields the
# first DNN layer reads ``39 * 38 * embedding_dim`` bilinear outputs, so a
# small embedding keeps CPU training fast. Early stopping holds out 10% of the
# training rows and restores the best epoch.
clf = FiBiNETClassifier(
    categorical_features=CATEGORICAL,
    min_frequency=2 if SMOKE else 10,
    embedding_dim=4 if SMOKE else 8,
    hidden_layer_sizes=(32,) if SMOKE else (128, 64),
    batch_size=1024,
    learning_rate=2e-3,
    max_epochs=2 if SMOKE else 12,
    early_stopping=True,
    n_iter_no_change=2,
    random_state=0,
)
start = time.perf_counter()
clf.fit(X_train, y_train)
fit_seconds = time.perf_counter() - start
n_categorical_rows = sum(
    clf.encoder_.cardinalities_[i]
    for i, name in enumerate(clf.encoder_.column_names_)
    if name in CATEGORICAL
)
print(f"embedding rows for the categorical fields: {n_categorical_rows:,}")
best_epoch = int(np.argmin(clf.net_.history[:, "valid_loss"])) + 1
print(f"epochs run:    {clf.n_iter_} (best: {best_epoch})")
print(f"fit time:      {fit_seconds:.1f} s")

# %%
# Held-out evaluation
# -------------------
# The base rate log loss is what a model that knows nothing but the training
# click rate scores. The normalized entropy (log loss divided by it) is below
# 1 when the model beats that; lower is better.
proba = clf.predict_proba(X_test)[:, 1]
auc = roc_auc_score(y_test, proba)
loss = log_loss(y_test, proba)
base_loss = log_loss(y_test, np.full(len(y_test), y_train.mean()))
print(f"test ROC AUC:            {auc:.4f}")
print(f"test log loss:           {loss:.4f}")
print(f"base rate log loss:      {base_loss:.4f}")
print(f"normalized entropy:      {loss / base_loss:.3f}")

# %%
# Learning curves
# ---------------
# Training and validation loss per epoch from the skorch history, with the
# validation ROC AUC on the right axis. The dotted line marks the epoch whose
# weights early stopping restored. CTR models with large embedding tables
# typically overfit after one or two passes over the data (the training loss
# keeps falling while the validation loss rises), which is why early stopping
# with a short patience matters here.
ax = plot_learning_curves(clf)
save(ax.figure, "ctr_criteo_like_learning_curves.png")

# %%
# Calibration
# -----------
# CTR predictions are used as probabilities (bids, expected revenue), so they
# should be calibrated: in each bin of predicted click rates, the observed
# click rate should match the mean prediction.
fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
CalibrationDisplay.from_predictions(
    y_test, proba, n_bins=10, strategy="quantile", name="FiBiNET", ax=ax
)
ax.set_title("Calibration on the test split (deciles of predictions)")
save(fig, "ctr_criteo_like_calibration.png")
