"""Fit time of ``FiBiNETClassifier()`` with its defaults on 100k rows x 40 columns.

Criteo-shaped data (27 categorical + 13 numeric columns, vocabularies up to
1e5) from ``criteo_like.make_criteo_like``; a second draw of 20k rows is the
held-out set. Prints fit seconds, epochs run and held-out ROC AUC / log loss,
and the machine's measured fp32 matmul peak (hosts of the same kind differ)::

    python benchmarks/fit_time.py
    python benchmarks/fit_time.py --params '{"embedding_dim": 8}'
    python benchmarks/fit_time.py --n-categorical 30 --n-numeric 20  # 50 columns
    python benchmarks/fit_time.py --n-categorical 30 --n-numeric 20 --regressor
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from sklearn.metrics import log_loss, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo_like import make_criteo_like  # noqa: E402
from throughput import matmul_peak_gflops  # noqa: E402

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-rows", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--params", default="{}", help="JSON of parameters to try")
    p.add_argument("--n-categorical", type=int, default=27)
    p.add_argument("--n-numeric", type=int, default=13)
    p.add_argument(
        "--regressor",
        action="store_true",
        help="FiBiNETRegressor on the click label as a number (a timing case)",
    )
    p.add_argument(
        "--malloc-tuning",
        action="store_true",
        help="call sk_fibinet.tune_malloc() first (off by default, as for users)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.malloc_tuning:
        from sk_fibinet import tune_malloc

        tune_malloc()
    # one draw, split: train and test share vocabularies and label function
    X, y = make_criteo_like(
        n_rows=args.n_rows + 20_000,
        n_categorical=args.n_categorical,
        n_numeric=args.n_numeric,
        random_state=0,
    )
    X_tr, y_tr = X.iloc[: args.n_rows], y[: args.n_rows]
    X_te, y_te = X.iloc[args.n_rows :], y[args.n_rows :]
    Estimator = FiBiNETRegressor if args.regressor else FiBiNETClassifier
    clf = Estimator(random_state=0, **json.loads(args.params))
    start = time.perf_counter()
    clf.fit(X_tr, y_tr.astype(float) if args.regressor else y_tr)
    seconds = time.perf_counter() - start
    if args.regressor:
        proba = clf.predict(X_te).clip(1e-6, 1 - 1e-6)
    else:
        proba = clf.predict_proba(X_te)[:, 1]
    print(
        f"{type(clf).__name__}, {args.n_rows:,} rows x {X.shape[1]} columns, "
        f"params {args.params}"
        f"{', malloc tuning' if args.malloc_tuning else ''}: "
        f"fit {seconds:.1f} s, {clf.n_iter_} epochs, "
        f"held-out ROC AUC {roc_auc_score(y_te, proba):.4f}, "
        f"log loss {log_loss(y_te, proba):.4f}"
    )
    print(f"fp32 matmul peak {matmul_peak_gflops(args.threads):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
