"""Held-out quality of FiBiNETClassifier's defaults against strong baselines.

Datasets (read from ``--data``, a folder laid out like ``adult/``,
``bank_marketing/``, ``criteo_kaggle/``, ``avazu/``, ``kdd2012_click/``,
``census_income_kdd/``): Adult (official train / test files), Bank marketing
(bank-full, ``duration`` dropped: it leaks the target), the Criteo 10k sample,
the Avazu sample, the KDD Cup 2012 track 2 click sample (ten ID columns whose
values are mostly seen once or twice) and Census-Income KDD (the 99,762-row
test file, ``instance_weight`` dropped); 80/20 stratified split per seed except
Adult.

Models: ``FiBiNETClassifier()`` with its defaults (only ``random_state`` set);
``HistGradientBoostingClassifier`` on ordinal codes with the categorical
columns of at most 255 categories declared categorical; ``LogisticRegression``
on one-hot categoricals (``min_frequency=2``) and standardized, imputed
numerics; LightGBM with its defaults on pandas ``category`` columns; CatBoost
with its defaults, the categorical columns declared and ``thread_count`` set to
the number of cores. LightGBM and CatBoost are benchmark-only dependencies::

    pip install lightgbm catboost
    python benchmarks/quality.py --data DATA_DIR

Prints mean and standard deviation over the seeds of ROC AUC, log loss and fit
seconds, then FiBiNET's AUC and log loss beside the best baseline of each set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from sk_fibinet import FiBiNETClassifier
from sk_fibinet.datasets import load_adult


def load_bank(data: Path):
    frame = pd.read_csv(data / "bank_marketing" / "bank-full.csv.gz", sep=";")
    y = (frame.pop("y") == "yes").astype(int).to_numpy()
    return frame.drop(columns="duration"), y


def load_criteo(data: Path):
    names = (
        ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    )
    frame = pd.read_csv(
        data / "criteo_kaggle" / "criteo_train_first10k.txt.gz",
        sep="\t",
        header=None,
        names=names,
        dtype={f"C{i}": "str" for i in range(1, 27)},
    )
    y = frame.pop("label").to_numpy()
    return frame, y


def load_avazu(data: Path):
    frame = pd.read_csv(data / "avazu" / "avazu_union_sample.csv.gz", dtype=str)
    y = frame.pop("click").astype(int).to_numpy()
    frame = frame.drop(columns="id")
    frame["hour"] = frame["hour"].str[-2:]  # hour of day; YYMMDDHH
    return frame, y


def load_kdd2012(data: Path):
    frame = pd.read_csv(
        data / "kdd2012_click" / "click_prediction_small.csv.gz", dtype=str
    )
    y = frame.pop("click").astype(int).to_numpy()
    frame["impression"] = frame["impression"].astype(float)
    return frame, y


CENSUS_COLUMNS = (
    "age class_worker det_ind_code det_occ_code education wage_per_hour hs_college "
    "marital_stat major_ind_code major_occ_code race hisp_origin sex union_member "
    "unemp_reason full_or_part_emp capital_gains capital_losses stock_dividends "
    "tax_filer_stat region_prev_res state_prev_res det_hh_fam_stat det_hh_summ "
    "instance_weight mig_chg_msa mig_chg_reg mig_move_reg mig_same "
    "mig_prev_sunbelt num_emp fam_under_18 country_father country_mother "
    "country_self citizenship own_or_self vet_question vet_benefits weeks_worked "
    "year income_50k"
).split()
CENSUS_NUMERIC = (
    "age wage_per_hour capital_gains capital_losses stock_dividends num_emp "
    "weeks_worked"
).split()


def load_census(data: Path):
    frame = pd.read_csv(
        data / "census_income_kdd" / "census-income.test.gz",
        header=None,
        names=CENSUS_COLUMNS,
        skipinitialspace=True,
        na_values="?",
        dtype=str,
    )
    y = (frame.pop("income_50k").str.strip() == "50000+.").astype(int).to_numpy()
    frame = frame.drop(columns="instance_weight")
    for c in CENSUS_NUMERIC:
        frame[c] = frame[c].astype(float)
    return frame, y


LOADERS = {
    "bank": load_bank,
    "criteo": load_criteo,
    "avazu": load_avazu,
    "kdd2012": load_kdd2012,
    "census": load_census,
}
DATASETS = ["adult", "bank", "criteo", "avazu", "kdd2012", "census"]


def split(name, data: Path, seed: int):
    if name == "adult":
        X_tr, y_tr = load_adult(subset="train", return_X_y=True)
        X_te, y_te = load_adult(subset="test", return_X_y=True)
        return X_tr, X_te, (y_tr == ">50K").to_numpy(), (y_te == ">50K").to_numpy()
    X, y = LOADERS[name](data)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)


def _categorical(X: pd.DataFrame) -> list[str]:
    return [
        c
        for c in X.columns
        if not pd.api.types.is_numeric_dtype(X[c])
        or isinstance(X[c].dtype, pd.CategoricalDtype)
    ]


def ordinal_pipeline(X: pd.DataFrame, make_model):
    """Ordinal codes for the categorical columns (NaN for missing and unknown),
    numeric columns as they are; ``make_model(low)`` builds the model, ``low``
    the categorical columns of at most 255 categories."""
    cat = _categorical(X)
    num = [c for c in X.columns if c not in cat]
    low = [c for c in cat if X[c].nunique() <= 255]
    pre = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                cat,
            ),
            ("num", "passthrough", num),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return make_pipeline(pre, make_model(low))


def one_hot_pipeline(X: pd.DataFrame, model):
    """One-hot categoricals (``min_frequency=2``), imputed standardized numerics."""
    cat = _categorical(X)
    num = [c for c in X.columns if c not in cat]
    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=2
                    ),
                ),
                cat,
            ),
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), num),
        ]
    )
    return make_pipeline(pre, model)


def hgb(X: pd.DataFrame, seed: int):
    return ordinal_pipeline(
        X,
        lambda low: HistGradientBoostingClassifier(
            categorical_features=low, random_state=seed
        ),
    )


def logreg(X: pd.DataFrame, seed: int):
    return one_hot_pipeline(X, LogisticRegression(max_iter=2000, random_state=seed))


def _as_str(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as object strings for the one-hot / ordinal baselines."""
    X = X.copy()
    for c in _categorical(X):
        X[c] = X[c].astype(object).where(X[c].notna(), np.nan)
    return X


def lightgbm(X: pd.DataFrame, seed: int):
    from lightgbm import LGBMClassifier

    # pandas category columns are LightGBM's categorical features; categories
    # are fixed at fit, so unseen ones at predict become NaN.
    return make_pipeline(
        _CategoryCodes(_categorical(X)),
        LGBMClassifier(random_state=seed, n_jobs=THREADS[0], verbose=-1),
    )


class _CategoryCodes(BaseEstimator, TransformerMixin):
    """String columns to pandas ``category`` with the training categories."""

    def __init__(self, columns):
        self.columns = columns

    def fit(self, X, y=None):
        self.categories_ = {
            c: pd.Index(X[c].dropna().unique()).astype(str) for c in self.columns
        }
        return self

    def transform(self, X):
        X = X.copy()
        for c in self.columns:
            X[c] = pd.Categorical(X[c], categories=self.categories_[c])
        return X


def catboost(X: pd.DataFrame, seed: int):
    from catboost import CatBoostClassifier

    cat = _categorical(X)
    return make_pipeline(
        _FillMissing(cat),
        CatBoostClassifier(
            cat_features=cat,
            random_seed=seed,
            thread_count=THREADS[0],
            verbose=0,
            allow_writing_files=False,
        ),
    )


class _FillMissing(BaseEstimator, TransformerMixin):
    """CatBoost needs strings in categorical columns: missing becomes one."""

    def __init__(self, columns):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = X.copy()
        for c in self.columns:
            X[c] = X[c].astype(object).where(X[c].notna(), "NaN").astype(str)
        return X


THREADS = [os.cpu_count()]  # --threads: every model's thread count
FIBINET_PARAMS: dict = {}  # --params: try other settings than the defaults

MODELS = {
    "FiBiNET (defaults)": lambda X, seed: FiBiNETClassifier(
        random_state=seed, **FIBINET_PARAMS
    ),
    "HistGradientBoosting": hgb,
    "LogReg one-hot": logreg,
    "LightGBM": lightgbm,
    "CatBoost": catboost,
}
# The baselines FiBiNET must match on every set (CatBoost is reported apart).
BASELINES = ["HistGradientBoosting", "LogReg one-hot", "LightGBM"]

# Not in the default table; ask for them with --models. Gradient boosting
# restricted to pairwise interactions, FiBiNET's own order (the bilinear layer
# crosses pairs of fields): shows how much of boosting's lead on a table comes
# from interactions of three or more columns.
DIAGNOSTIC_MODELS = {
    "HistGradientBoosting (pairwise)": lambda X, seed: hgb(X, seed).set_params(
        histgradientboostingclassifier__interaction_cst="pairwise"
    ),
}
ALL_MODELS = {**MODELS, **DIAGNOSTIC_MODELS}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated, from {list(ALL_MODELS)}",
    )
    p.add_argument(
        "--params", default="{}", help="JSON of FiBiNETClassifier parameters to try"
    )
    p.add_argument("--out", type=Path, help="also write the table as JSON here")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="threads of every model (torch, OpenMP, CatBoost, LightGBM)",
    )
    args = p.parse_args(argv)
    THREADS[0] = args.threads
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    FIBINET_PARAMS.update(json.loads(args.params))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.datasets.split(","):
        for model_name in args.models.split(","):
            scores = []
            for seed in seeds:
                X_tr, X_te, y_tr, y_te = split(name, args.data, seed)
                if model_name != "FiBiNET (defaults)":
                    X_tr, X_te = _as_str(X_tr), _as_str(X_te)
                model = ALL_MODELS[model_name](X_tr, seed)
                start = time.perf_counter()
                model.fit(X_tr, y_tr)
                seconds = time.perf_counter() - start
                proba = model.predict_proba(X_te)[:, 1]
                scores.append(
                    (roc_auc_score(y_te, proba), log_loss(y_te, proba), seconds)
                )
                print(
                    f"# {name} {model_name} seed {seed}: AUC {scores[-1][0]:.4f} "
                    f"logloss {scores[-1][1]:.4f} {seconds:.1f}s",
                    file=sys.stderr,
                )
            s = np.array(scores)
            rows.append((name, model_name, s.mean(0), s.std(0)))
    host = platform.processor() or platform.machine()
    print(
        f"\nmean ± std over seeds {seeds}; {os.cpu_count()} cores ({host}), "
        f"{args.threads} thread(s) per model\n"
    )
    print(format_table(rows))
    summary = _summary(rows)
    if summary:
        print("\n" + summary)
    if args.out:
        args.out.write_text(
            json.dumps(
                [
                    {
                        "dataset": name,
                        "model": model_name,
                        "auc": [mean[0], std[0]],
                        "log_loss": [mean[1], std[1]],
                        "fit_s": mean[2],
                    }
                    for name, model_name, mean, std in rows
                ],
                indent=1,
            )
        )


def format_table(rows) -> str:
    """The Markdown table of ``(dataset, model, mean, std)`` rows, where mean
    and std hold ROC AUC, log loss and fit seconds."""
    lines = [
        "| dataset | model | ROC AUC | log loss | fit s |",
        "|---|---|---|---|---|",
    ]
    for name, model_name, mean, std in rows:
        lines.append(
            f"| {name} | {model_name} | {mean[0]:.4f} ± {std[0]:.4f} | "
            f"{mean[1]:.4f} ± {std[1]:.4f} | {mean[2]:.1f} |"
        )
    return "\n".join(lines)


def _summary(rows) -> str:
    """FiBiNET beside the best baseline and CatBoost, per dataset.

    "AUC level" is yes when FiBiNET's mean ROC AUC is at least the best
    baseline's minus one standard deviation (the larger of the two); "log loss
    level" when its mean log loss is at most the best baseline's plus 0.002.
    """
    by = {(name, model): (mean, std) for name, model, mean, std in rows}
    lines = [
        "| dataset | FiBiNET AUC | best baseline AUC | AUC level | "
        "FiBiNET log loss | best baseline log loss | log loss level | "
        "FiBiNET / CatBoost AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(n for n, *_ in rows):
        ours = [m for (n, m) in by if n == name and m.startswith("FiBiNET (")]
        base = [m for m in BASELINES if (name, m) in by]
        if not ours or not base:
            continue
        mean, std = by[(name, ours[0])]
        best_auc = max(base, key=lambda m: by[(name, m)][0][0])
        best_ll = min(base, key=lambda m: by[(name, m)][0][1])
        b_mean, b_std = by[(name, best_auc)]
        auc_ok = mean[0] >= b_mean[0] - max(std[0], b_std[0])
        ll_ok = mean[1] <= by[(name, best_ll)][0][1] + 0.002
        cat = by.get((name, "CatBoost"))
        vs_cat = f"{mean[0] / cat[0][0]:.4f}" if cat else "-"
        lines.append(
            f"| {name} | {mean[0]:.4f} ± {std[0]:.4f} | "
            f"{b_mean[0]:.4f} ± {b_std[0]:.4f} ({best_auc}) | "
            f"{'yes' if auc_ok else 'no'} | {mean[1]:.4f} | "
            f"{by[(name, best_ll)][0][1]:.4f} ({best_ll}) | "
            f"{'yes' if ll_ok else 'no'} | {vs_cat} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


if __name__ == "__main__":
    main()
