"""Do SENET field weights find the columns that carry signal?

Synthetic data: 6 signal columns (4 categorical, 2 numeric) and 8 pure-noise
columns (5 categorical, 3 numeric); the label depends on the signal columns
only. For each seed the table gives how many of the 6 top-ranked columns are
signal columns (6 = perfect, ~2.6 = chance) under

- ``feature_importances_`` (mean SENET excitation weight, normalised),
- permutation importance of ROC AUC on held-out rows (scikit-learn),

plus the mean SENET weight itself, which shows how far the excitation moved
from its near-zero start::

    python benchmarks/senet_importance.py
    python benchmarks/senet_importance.py --n-rows 20000 --seeds 0,1,2
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from sk_fibinet import FiBiNETClassifier

N_SIGNAL = 6


def make_data(n_rows: int, seed: int):
    """Signal in the ``sig_*`` columns, none in the ``noise_*`` columns."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefgh")
    cols = {}
    for k in range(4):
        cols[f"sig_cat{k}"] = pd.Series(rng.choice(letters, n_rows), dtype="str")
    for k in range(2):
        cols[f"sig_num{k}"] = rng.normal(size=n_rows)
    for k in range(5):
        cols[f"noise_cat{k}"] = pd.Series(rng.choice(letters, n_rows), dtype="str")
    for k in range(3):
        cols[f"noise_num{k}"] = rng.normal(size=n_rows)
    X = pd.DataFrame(cols)
    logit = (
        sum(X[f"sig_cat{k}"].isin(["a", "b", "c"]).astype(float) for k in range(4))
        + X["sig_num0"]
        - X["sig_num1"]
        - 1.5
    )
    y = (logit + 0.5 * rng.logistic(size=n_rows) > 0).astype(int).to_numpy()
    return X, y


def signal_in_top(scores: pd.Series) -> int:
    """How many of the ``N_SIGNAL`` highest-scored columns are signal columns."""
    top = scores.sort_values(ascending=False).index[:N_SIGNAL]
    return sum(name.startswith("sig") for name in top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-rows", type=int, default=5_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.n_rows:,} rows; signal columns among the top {N_SIGNAL} (of 14)\n")
    print(
        "| seed | feature_importances_ | permutation importance | mean SENET weight |"
    )  # noqa: E501
    print("|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        X, y = make_data(args.n_rows, seed)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y
        )
        clf = FiBiNETClassifier(random_state=seed).fit(X_tr, y_tr)
        senet = pd.Series(clf.feature_importances_, index=X.columns)
        perm = permutation_importance(
            clf, X_te, y_te, scoring="roc_auc", n_repeats=3, random_state=seed
        )
        perm = pd.Series(perm.importances_mean, index=X.columns)
        mean_weight = clf.field_weights(X_tr).to_numpy().mean()
        print(
            f"| {seed} | {signal_in_top(senet)}/{N_SIGNAL} | "
            f"{signal_in_top(perm)}/{N_SIGNAL} | {mean_weight:.2g} |"
        )


if __name__ == "__main__":
    main()
