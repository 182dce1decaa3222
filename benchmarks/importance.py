"""Do the importances find the columns that carry signal, and what do they cost?

Synthetic data: 6 signal columns (4 categorical, 2 numeric) and 8 pure-noise
columns (5 categorical, 3 numeric); the label depends on the signal columns
only. For each seed the first table gives how many of the 6 top-ranked columns
are signal columns (6 = perfect, ~2.6 = chance) under

- ``feature_importances_`` (field ablation: rise in validation loss when a
  field is replaced by its reference), and whether they are exactly the top 6,
- ``senet_weights_`` (mean SENET excitation weight, the gate's values),
- permutation importance of ROC AUC on held-out rows (scikit-learn),

plus the mean SENET weight, which shows how far the excitation moved from its
near-zero start. The second table times the importances inside ``fit`` (their
share of the fit time) on the workload of ``fit_time.py``: defaults, 100k
Criteo-shaped rows x 40 columns::

    python benchmarks/importance.py
    python benchmarks/importance.py --n-rows 20000 --seeds 0,1,2 --cost-rows 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo_like import make_criteo_like  # noqa: E402

from sk_fibinet import FiBiNETClassifier  # noqa: E402
from sk_fibinet.datasets import make_signal_and_noise  # noqa: E402

N_SIGNAL = 6


def signal_in_top(scores: pd.Series) -> int:
    """How many of the ``N_SIGNAL`` highest-scored columns are signal columns."""
    top = scores.sort_values(ascending=False).index[:N_SIGNAL]
    return sum(name.startswith("sig") for name in top)


class TimedClassifier(FiBiNETClassifier):
    """Records the seconds ``fit`` spends on the importances (and base value)."""

    def _learn_explanations(self, *args, **kwargs):
        start = time.perf_counter()
        super()._learn_explanations(*args, **kwargs)
        self.importance_seconds_ = time.perf_counter() - start


def signal_table(n_rows: int, seeds):
    print(f"{n_rows:,} rows; signal columns among the top {N_SIGNAL} (of 14)\n")
    print(
        "| seed | feature_importances_ | exactly the top 6 | senet_weights_ "
        "| permutation importance | mean SENET weight |"
    )
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        X, y = make_signal_and_noise(n_rows, random_state=seed)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y
        )
        clf = FiBiNETClassifier(random_state=seed).fit(X_tr, y_tr)
        ablation = pd.Series(clf.feature_importances_, index=X.columns)
        senet = pd.Series(clf.senet_weights_, index=X.columns)
        perm = permutation_importance(
            clf, X_te, y_te, scoring="roc_auc", n_repeats=3, random_state=seed
        )
        perm = pd.Series(perm.importances_mean, index=X.columns)
        found = signal_in_top(ablation)
        print(
            f"| {seed} | {found}/{N_SIGNAL} | {'yes' if found == N_SIGNAL else 'no'} "
            f"| {signal_in_top(senet)}/{N_SIGNAL} | {signal_in_top(perm)}/{N_SIGNAL} "
            f"| {clf.senet_weights_.mean():.2g} |"
        )


def cost_table(n_rows: int):
    X, y = make_criteo_like(n_rows=n_rows, n_categorical=27, random_state=0)
    print(f"\n{n_rows:,} Criteo-shaped rows x {X.shape[1]} columns, defaults\n")
    print("| fit s | epochs | importances s | share of fit |")
    print("|---|---|---|---|")
    start = time.perf_counter()
    clf = TimedClassifier(random_state=0).fit(X, y)
    seconds = time.perf_counter() - start
    print(
        f"| {seconds:.1f} | {clf.n_iter_} | {clf.importance_seconds_:.1f} "
        f"| {clf.importance_seconds_ / seconds:.1%} |"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-rows", type=int, default=5_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cost-rows", type=int, default=100_000, help="0: no timing")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    signal_table(args.n_rows, [int(s) for s in args.seeds.split(",")])
    if args.cost_rows:
        cost_table(args.cost_rows)


if __name__ == "__main__":
    main()
