"""Which columns a model gains or loses from: drop one at a time, compare log loss.

For one dataset and seed of ``quality.py``, fits FiBiNETClassifier (defaults)
and HistGradientBoosting on all columns, then once more without each column,
and prints the change in test log loss of both and the gap between them::

    python benchmarks/drop_column.py --data ../shared/data --dataset bank
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality import _as_str, hgb, split
from sklearn.metrics import log_loss

from sk_fibinet import FiBiNETClassifier


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--dataset", default="bank")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    X_tr, X_te, y_tr, y_te = split(args.dataset, args.data, args.seed)

    def losses(drop):
        a, b = X_tr.drop(columns=drop), X_te.drop(columns=drop)
        boost = hgb(_as_str(a), args.seed).fit(_as_str(a), y_tr)
        ours = FiBiNETClassifier(random_state=args.seed).fit(a, y_tr)
        return (
            log_loss(y_te, boost.predict_proba(_as_str(b))[:, 1]),
            log_loss(y_te, ours.predict_proba(b)[:, 1]),
        )

    base = losses([])
    print(
        f"{args.dataset}, seed {args.seed}: "
        "test log loss, change when a column is dropped\n"
    )
    print("| dropped | HistGradientBoosting | FiBiNET | FiBiNET - HGB |")
    print("|---|---|---|---|")
    print(f"| (none) | {base[0]:.4f} | {base[1]:.4f} | {base[1] - base[0]:+.4f} |")
    for column in X_tr.columns:
        boost, ours = losses([column])
        print(
            f"| {column} | {boost - base[0]:+.4f} | {ours - base[1]:+.4f} | "
            f"{ours - boost:+.4f} |"
        )


if __name__ == "__main__":
    main()
