"""Screen: do cross-fitted target statistics help?

(``sk_fibinet.preprocessing.target_stats`` and its sibling modules.)

Outside the estimator (issue 22): the columns and pairs are chosen by
``select_columns`` (with the pair counts from ``PairSketch``), the training rows get
``TargetStatistics.out_of_fold`` and the test rows ``transform``, and the
statistic columns are appended to X. Each model is fitted on X and on X + the
statistics; with ``--forced-pairs`` also on X + statistics of every pair of the
high-cardinality columns, the pairs the rule refused included (what issue 22
measured with TargetEncoder over string-concatenated pairs).

Book-Crossing (see its PROVENANCE.txt): user, item, label; random stratified
80/20 split per seed. One seed per run: a screen, not a result.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/target_stats_screen.py \\
        --data ../shared/data/book_crossing --epochs 5

Prints one table row per (model, features): test ROC AUC, log loss, fit seconds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

from sk_fibinet.preprocessing.target_selection import (
    PairSketch,
    candidate_pairs,
    select_columns,
)
from sk_fibinet.preprocessing.target_stats import TargetStatistics


def load_book_crossing(data: Path, seed: int, subsample: int | None):
    bc = pd.read_csv(
        data / "ratings_final.txt.gz",
        sep="\t",
        header=None,
        names=["user", "item", "label"],
    )
    X = bc[["user", "item"]].astype(str)
    y = bc["label"].to_numpy()
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed
    )
    if subsample and subsample < len(X_tr):
        X_tr, y_tr = X_tr.iloc[:subsample], y_tr[:subsample]
    return (X_tr.reset_index(drop=True), X_te.reset_index(drop=True), y_tr, y_te)


def statistics(X_tr, y_tr, X_te, columns, pairs, seed, smooth, prior="out_of_fold"):
    ts = TargetStatistics(columns, pairs, smooth=smooth, prior=prior, seed=seed)
    positions = np.arange(len(X_tr))
    ts.update(X_tr, y_tr.astype(float), positions=positions)
    return ts.out_of_fold(X_tr, positions), ts.transform(X_te)


def models(cat_columns, seed, epochs):
    from sk_fibinet import FiBiNETClassifier

    def logreg():
        enc = make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore", min_frequency=2), cat_columns),
            remainder="passthrough",
        )
        return make_pipeline(enc, LogisticRegression(max_iter=300, C=1.0))

    def hgb():
        enc = make_column_transformer(
            (
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                cat_columns,
            ),
            remainder="passthrough",
        )
        return make_pipeline(enc, HistGradientBoostingClassifier(random_state=seed))

    def fibinetpp():
        return FiBiNETClassifier(
            variant="fibinet++", random_state=seed, max_epochs=epochs
        )

    return {"logreg one-hot": logreg, "hgb ordinal": hgb, "fibinet++": fibinetpp}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="book_crossing folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5, help="FiBiNET++ max_epochs")
    p.add_argument("--subsample", type=int, default=None, help="training rows")
    p.add_argument("--smooth", default="auto", help="'auto' or a float")
    p.add_argument("--models", default="logreg one-hot,hgb ordinal,fibinet++")
    p.add_argument("--forced-pairs", action="store_true")
    p.add_argument("--prior-all", action="store_true", help="add a prior='all' arm")
    p.add_argument("--sklearn-te", action="store_true", help="add a TargetEncoder arm")
    args = p.parse_args()
    smooth = args.smooth if args.smooth == "auto" else float(args.smooth)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    X_tr, X_te, y_tr, y_te = load_book_crossing(args.data, args.seed, args.subsample)
    cat = list(X_tr.columns)
    counts = {c: X_tr[c].value_counts() for c in cat}
    sketch = PairSketch(candidate_pairs(cat))
    for part in np.array_split(np.arange(len(X_tr)), 8):  # as a stream would
        sketch.update(X_tr.iloc[part])
    summary = sketch.summary()
    columns, pairs = select_columns(counts, len(X_tr), summary)
    print(f"train rows {len(X_tr)}, test rows {len(X_te)}, seed {args.seed}")
    print("distinct values:", {c: len(v) for c, v in counts.items()})
    print("pair summary (PairSketch):")
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"chosen columns {columns}, chosen pairs {pairs}")

    t = time.perf_counter()
    feature_sets = {"X": (X_tr, X_te)}
    if columns:
        s_tr, s_te = statistics(X_tr, y_tr, X_te, columns, pairs, args.seed, smooth)
        feature_sets["X + stats (rule)"] = (
            pd.concat([X_tr, s_tr], axis=1),
            pd.concat([X_te, s_te], axis=1),
        )
    if args.prior_all and columns:
        s_tr, s_te = statistics(
            X_tr, y_tr, X_te, columns, pairs, args.seed, smooth, prior="all"
        )
        feature_sets["X + stats, prior=all"] = (
            pd.concat([X_tr, s_tr], axis=1),
            pd.concat([X_te, s_te], axis=1),
        )
    forced = candidate_pairs(columns)
    if args.forced_pairs and forced and forced != pairs:
        s_tr, s_te = statistics(X_tr, y_tr, X_te, columns, forced, args.seed, smooth)
        feature_sets["X + stats + all pairs"] = (
            pd.concat([X_tr, s_tr], axis=1),
            pd.concat([X_te, s_te], axis=1),
        )
    if args.sklearn_te and columns:
        # The reference: scikit-learn's own TargetEncoder (its default shuffled
        # 5-fold cross fitting) over the same columns, no pairs.
        cv = StratifiedKFold(5, shuffle=True, random_state=args.seed)
        te = TargetEncoder(smooth=smooth, cv=cv)
        te_tr = te.fit_transform(X_tr[columns], y_tr)
        names = [f"{c}:sklearn_te" for c in columns]
        feature_sets["X + sklearn TargetEncoder"] = (
            pd.concat([X_tr, pd.DataFrame(te_tr, columns=names)], axis=1),
            pd.concat(
                [X_te, pd.DataFrame(te.transform(X_te[columns]), columns=names)], axis=1
            ),
        )
    print(f"statistics: {time.perf_counter() - t:.1f} s (smooth={smooth!r})\n")

    chosen = [m.strip() for m in args.models.split(",")]
    print(f"{'model':<16} {'features':<24} {'ROC AUC':>8} {'log loss':>9} {'fit s':>7}")
    for name, make in models(cat, args.seed, args.epochs).items():
        if name not in chosen:
            continue
        for fname, (A_tr, A_te) in feature_sets.items():
            model = make()
            t = time.perf_counter()
            model.fit(A_tr, y_tr)
            fit_s = time.perf_counter() - t
            proba = model.predict_proba(A_te)[:, 1]
            auc, ll = roc_auc_score(y_te, proba), log_loss(y_te, proba)
            print(
                f"{name:<16} {fname:<24} {auc:8.4f} {ll:9.4f} {fit_s:7.1f}", flush=True
            )


if __name__ == "__main__":
    main()
