"""Held-out quality of FiBiNETClassifier's defaults against strong baselines.

Setup (benchmark-only dependencies, never dependencies of the package; the
versions measured)::

    pip install lightgbm==4.7.0 catboost==1.2.10   # into the project's venv
    benchmarks/setup_fuxictr_venv.sh               # FuxiCTR 2.3.10, own venv
    python benchmarks/quality.py --data DATA_DIR

Datasets (``--datasets``, read from ``--data``, a folder laid out like
``adult/``, ``bank_marketing/``, ``criteo_kaggle/``, ``avazu/``,
``kdd2012_click/``, ``census_income_kdd/``, ``book_crossing/``,
``mind_small_subset/``, ``movielens_1m_partial/``): Adult (official train /
test files), Bank marketing (bank-full, ``duration`` dropped: it leaks the
target), the Criteo 10k sample, the Avazu sample, the KDD Cup 2012 track 2
click sample (ten ID columns whose values are mostly seen once or twice),
Census-Income KDD (the 99,762-row test file, ``instance_weight`` dropped),
Book-Crossing (user x book, one sampled negative per positive), the MIND-small
subset (user x news with real non-clicks; split by impression, so that one
impression's candidates never straddle train and test) and MovieLens-1M
partial (ratings joined with users and movies, label rating >= 4); each set's
PROVENANCE.txt gives its source and split rule. 80/20 split per seed,
stratified, except Adult (its own files) and MIND (``GroupShuffleSplit`` on
the impression id).

Models: ``FiBiNETClassifier()`` with its defaults (only ``random_state`` set)
and with ``variant="fibinet++"``; ``HistGradientBoostingClassifier`` on
ordinal codes with the categorical columns of at most 255 categories declared
categorical; ``LogisticRegression`` on one-hot categoricals
(``min_frequency=2``) and standardized, imputed numerics; LightGBM with its
defaults on pandas ``category`` columns; CatBoost with its defaults, the
categorical columns declared and ``thread_count`` set to ``--threads``; and,
as a tuned peer, FuxiCTR 2.3.10's FiBiNET with the BARS benchmark's Frappe
configuration (``benchmarks/fuxictr_fibinet.py``, run as a subprocess with the
interpreter of ``--fuxictr-python``; it holds out 10 % of the training rows,
stratified, for its AUC monitor).

Prints mean and standard deviation over the seeds of ROC AUC, log loss and fit
seconds, then FiBiNET's AUC and log loss beside the best baseline of each set.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn import config_context
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split
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


def load_book_crossing(data: Path):
    """Book-Crossing (RippleNet / KGCN form): user x book, one sampled negative
    per positive; random stratified 80/20 split per seed."""
    frame = pd.read_csv(
        data / "book_crossing" / "ratings_final.txt.gz",
        sep="\t",
        header=None,
        names=["user", "item", "label"],
        dtype={"user": str, "item": str},
    )
    y = frame.pop("label").to_numpy()
    return frame, y


def load_mind(data: Path):
    """MIND-small subset, one row per shown candidate (real clicks and non-clicks).

    Fields: ``user_id``, ``news_id``, ``hour`` and ``weekday`` of the impression
    (categorical), ``impression_size`` (candidates shown together) and
    ``history_length`` (numeric), ``in_history`` (0/1: the candidate is among the
    user's earlier clicks). Returns the impression ids as groups: the split keeps
    each impression's candidates on one side (``GroupShuffleSplit``, 80/20).
    """
    b = pd.read_csv(
        data / "mind_small_subset" / "behaviors.tsv.gz",
        sep="\t",
        header=None,
        names=["impression_id", "user_id", "time", "history", "impressions"],
        dtype=str,
    )
    time_ = pd.to_datetime(b["time"], format="%m/%d/%Y %I:%M:%S %p")
    b["hour"] = time_.dt.hour.astype(str)
    b["weekday"] = time_.dt.day_of_week.astype(str)
    history = b["history"].fillna("").str.split()
    b["history_length"] = history.str.len().astype(float)
    b["history_set"] = history.map(set)
    cand = b["impressions"].str.split(" ")
    b["impression_size"] = cand.str.len().astype(float)
    rows = b.assign(cand=cand).explode("cand", ignore_index=True)
    rows[["news_id", "click"]] = rows["cand"].str.rsplit("-", n=1, expand=True)
    rows["in_history"] = [
        int(n in h) for n, h in zip(rows["news_id"], rows["history_set"], strict=True)
    ]
    y = rows["click"].astype(int).to_numpy()
    columns = [
        "user_id",
        "news_id",
        "hour",
        "weekday",
        "impression_size",
        "history_length",
        "in_history",
    ]
    return rows[columns].copy(), y, rows["impression_id"].to_numpy()


def load_movielens(data: Path):
    """MovieLens-1M partial ratings joined with users and movies; label rating >= 4.

    Fields: ``user_id``, ``movie_id``, ``gender``, ``age``, ``occupation``,
    ``zip_code``, ``genres`` (the '|'-joined combination) as categorical, and
    ``timestamp`` as a number; random stratified 80/20 split per seed.
    """
    folder = data / "movielens_1m_partial"
    ratings = pd.read_csv(
        folder / "ratings_partial.dat.gz",
        sep="::",
        engine="python",
        names=["user_id", "movie_id", "rating", "timestamp"],
    )
    users = pd.read_csv(
        folder / "users.dat.gz",
        sep="::",
        engine="python",
        names=["user_id", "gender", "age", "occupation", "zip_code"],
    )
    movies = pd.read_csv(
        folder / "movies.dat.gz",
        sep="::",
        engine="python",
        encoding="latin-1",
        names=["movie_id", "title", "genres"],
    )
    frame = ratings.merge(users, on="user_id", how="left").merge(
        movies[["movie_id", "genres"]], on="movie_id", how="left"
    )
    y = (frame.pop("rating") >= 4).astype(int).to_numpy()
    for c in ["user_id", "movie_id", "gender", "age", "occupation", "zip_code"]:
        frame[c] = frame[c].astype(str)
    frame["timestamp"] = frame["timestamp"].astype(float)
    columns = [
        "user_id",
        "movie_id",
        "gender",
        "age",
        "occupation",
        "zip_code",
        "genres",
        "timestamp",
    ]
    return frame[columns], y


LOADERS = {
    "bank": load_bank,
    "criteo": load_criteo,
    "avazu": load_avazu,
    "kdd2012": load_kdd2012,
    "census": load_census,
    "book_crossing": load_book_crossing,
    "mind": load_mind,
    "movielens_1m": load_movielens,
}
DATASETS = [
    "adult",
    "bank",
    "criteo",
    "avazu",
    "kdd2012",
    "census",
    "book_crossing",
    "mind",
    "movielens_1m",
]


@functools.cache
def _load(name: str, data: Path):
    """``(X, y, groups)`` of a set, read once per process (groups may be None)."""
    X, y, *groups = LOADERS[name](data)
    return X, y, (groups[0] if groups else None)


def split(name, data: Path, seed: int):
    """Train and test rows of ``name`` for ``seed``: ``X_tr, X_te, y_tr, y_te``."""
    return split_with_groups(name, data, seed)[:4]


def split_with_groups(name, data: Path, seed: int):
    """``split`` and the training rows' group labels (None for ungrouped sets):
    FiBiNET gets them in ``fit(..., groups=)`` (MIND's impressions)."""
    if name == "adult":
        X_tr, y_tr = load_adult(subset="train", return_X_y=True)
        X_te, y_te = load_adult(subset="test", return_X_y=True)
        y_tr, y_te = (y_tr == ">50K").to_numpy(), (y_te == ">50K").to_numpy()
        return X_tr, X_te, y_tr, y_te, None
    X, y, groups = _load(name, data)
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
        train, test = next(splitter.split(X, y, groups))
        groups = np.asarray(groups)[train]
        return X.iloc[train], X.iloc[test], y[train], y[test], groups
    parts = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    return (*parts, None)


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


HERE = Path(__file__).resolve().parent
FUXICTR_PYTHON = [
    Path(os.environ.get("FUXICTR_VENV", HERE / ".venv-fuxictr")) / "bin" / "python"
]  # --fuxictr-python


class FuxiCTRFiBiNET(BaseEstimator, ClassifierMixin):
    """FuxiCTR's FiBiNET (BARS Frappe configuration) run in its own environment.

    ``fit`` holds out ``validation_fraction`` of the training rows (stratified)
    for FuxiCTR's AUC monitor, encodes the columns the way FuxiCTR's feature
    processor would (categorical: a vocabulary of the training part, index 0
    for padding, one index for out-of-vocabulary values, missing as its own
    value; numeric: standardized on the training part, missing as 0), writes
    them in FuxiCTR's npz layout and runs ``benchmarks/fuxictr_fibinet.py fit``
    with the interpreter made by ``benchmarks/setup_fuxictr_venv.sh``.
    ``predict_proba`` writes the rows the same way and runs its ``predict``.
    """

    def __init__(self, *, seed=0, validation_fraction=0.1, params=None):
        self.seed = seed
        self.validation_fraction = validation_fraction
        self.params = params

    def _columns(self, X):
        return {
            c: X[c].astype(object).where(X[c].notna(), "__NA__").astype(str)
            if c in self.categorical_
            else X[c].astype(float)
            for c in X.columns
        }

    def _write(self, X, y, path: Path):
        arrays = {"label": np.asarray(y, dtype=np.float32)}
        for j, (c, col) in enumerate(self._columns(X).items()):
            if c in self.categorical_:
                vocab = self.vocab_[c]
                codes = vocab.get_indexer(col) + 1  # 0 is padding
                codes[codes == 0] = len(vocab) + 1  # out of vocabulary
                arrays[f"f{j}"] = codes.astype(np.int64)
            else:
                mean, std = self.scale_[c]
                arrays[f"f{j}"] = np.nan_to_num((col.to_numpy() - mean) / std)
        np.savez(path, **arrays)

    def _run(self, command: str) -> dict:
        python = FUXICTR_PYTHON[0]
        result = subprocess.run(
            [
                str(python),
                str(HERE / "fuxictr_fibinet.py"),
                command,
                "--workdir",
                self.workdir_.name,
                "--seed",
                str(self.seed),
                "--threads",
                str(THREADS[0]),
                "--params",
                json.dumps(self.params or {}),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(
                f"fuxictr_fibinet.py {command} failed:\n{result.stderr[-3000:]}"
            )
        return json.loads(result.stdout.strip().splitlines()[-1])

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        X_tr, X_va, y_tr, y_va = train_test_split(
            X,
            y,
            test_size=self.validation_fraction,
            stratify=y,
            random_state=self.seed,
        )
        self.categorical_ = set(_categorical(X))
        cols = self._columns(X_tr)
        self.vocab_ = {
            c: pd.Index(cols[c].unique()) for c in X.columns if c in self.categorical_
        }
        self.scale_ = {
            c: (cols[c].mean(), cols[c].std() or 1.0)
            for c in X.columns
            if c not in self.categorical_
        }
        self.workdir_ = tempfile.TemporaryDirectory(prefix="fuxictr_")
        workdir = Path(self.workdir_.name)
        features = [
            {
                f"f{j}": {
                    "source": "",
                    "type": "categorical",
                    "padding_idx": 0,
                    "vocab_size": len(self.vocab_[c]) + 2,
                }
                if c in self.categorical_
                else {"source": "", "type": "numeric"}
            }
            for j, c in enumerate(X.columns)
        ]
        (workdir / "feature_map.json").write_text(
            json.dumps(
                {
                    "dataset_id": "quality",
                    "num_fields": len(features),
                    "total_features": sum(
                        f.get("vocab_size", 1) for x in features for f in x.values()
                    ),
                    "input_length": len(features),
                    "labels": ["label"],
                    "features": features,
                }
            )
        )
        self._write(X_tr, y_tr, workdir / "train.npz")
        self._write(X_va, y_va, workdir / "valid.npz")
        self.fit_report_ = self._run("fit")
        return self

    def predict_proba(self, X):
        workdir = Path(self.workdir_.name)
        self._write(X, np.zeros(len(X)), workdir / "test.npz")
        self._run("predict")
        proba = np.load(workdir / "proba.npy")  # (n,)
        return np.column_stack([1 - proba, proba])  # (n, 2)


FUXICTR = "FuxiCTR FiBiNET (BARS Frappe config)"
THREADS = [os.cpu_count()]  # --threads: every model's thread count
FIBINET_PARAMS: dict = {}  # --params: try other settings than the defaults

MODELS = {
    "FiBiNET (defaults)": lambda X, seed: FiBiNETClassifier(
        random_state=seed, **FIBINET_PARAMS
    ),
    "FiBiNET++ (variant='fibinet++')": lambda X, seed: FiBiNETClassifier(
        random_state=seed, **{"variant": "fibinet++", **FIBINET_PARAMS}
    ),
    "FiBiNET (target_stats=None)": lambda X, seed: FiBiNETClassifier(
        random_state=seed, **{"target_stats": None, **FIBINET_PARAMS}
    ),
    "FiBiNET (target_stats='all')": lambda X, seed: FiBiNETClassifier(
        random_state=seed, **{"target_stats": "all", **FIBINET_PARAMS}
    ),
    "FiBiNET++ (target_stats='all')": lambda X, seed: FiBiNETClassifier(
        random_state=seed,
        **{"variant": "fibinet++", "target_stats": "all", **FIBINET_PARAMS},
    ),
    "HistGradientBoosting": hgb,
    "LogReg one-hot": logreg,
    "LightGBM": lightgbm,
    "CatBoost": catboost,
    FUXICTR: lambda X, seed: FuxiCTRFiBiNET(seed=seed),
}
# The baselines FiBiNET must match on every set (CatBoost is reported apart).
BASELINES = ["HistGradientBoosting", "LogReg one-hot", "LightGBM"]


class _Averaged(VotingClassifier):
    """Soft voting over FiBiNET networks of different seeds, as a user would
    write it; ``groups`` (MIND) reach every member through metadata routing."""

    def fit(self, X, y, groups=None):
        if groups is None:
            return super().fit(X, y)
        with config_context(enable_metadata_routing=True):
            for _, member in self.estimators:
                member.set_fit_request(groups=True)
            return super().fit(X, y, groups=groups)


def averaged_fibinet(seed: int, n: int = 3) -> VotingClassifier:
    members = [
        (f"seed{k}", FiBiNETClassifier(random_state=seed * 1000 + k, **FIBINET_PARAMS))
        for k in range(n)
    ]
    return _Averaged(members, voting="soft")


# Not in the default table; ask for them with --models. Gradient boosting
# restricted to pairwise interactions, FiBiNET's own order (the bilinear layer
# crosses pairs of fields): shows how much of boosting's lead on a table comes
# from interactions of three or more columns.
DIAGNOSTIC_MODELS = {
    "HistGradientBoosting (pairwise)": lambda X, seed: hgb(X, seed).set_params(
        histgradientboostingclassifier__interaction_cst="pairwise"
    ),
    # Where a lead of FiBiNET's comes from variance: three networks of
    # different seeds averaged (three times the fit).
    "FiBiNET (3 networks averaged)": lambda X, seed: averaged_fibinet(seed),
    # Where CatBoost's lead comes from: its statistics of single columns only
    # (no combinations of categorical columns), and without its counters too
    # (only the target statistics, "Borders").
    "CatBoost (single-column statistics)": lambda X, seed: catboost(X, seed).set_params(
        catboostclassifier__max_ctr_complexity=1
    ),
    "CatBoost (single-column statistics without counters)": lambda X, seed: catboost(
        X, seed
    ).set_params(
        catboostclassifier__max_ctr_complexity=1,
        catboostclassifier__simple_ctr=["Borders"],
    ),
    # The BARS configuration without its L2 on the whole embedding tables at
    # every step (0.05): how much of the peer's result that one setting decides.
    "FuxiCTR FiBiNET (embedding_regularizer=0)": lambda X, seed: FuxiCTRFiBiNET(
        seed=seed, params={"embedding_regularizer": 0}
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
    p.add_argument(
        "--fuxictr-python",
        type=Path,
        default=FUXICTR_PYTHON[0],
        help="interpreter of the FuxiCTR environment (benchmarks/"
        "setup_fuxictr_venv.sh; default $FUXICTR_VENV/bin/python)",
    )
    args = p.parse_args(argv)
    models = args.models.split(",")
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {list(ALL_MODELS)}")
    FUXICTR_PYTHON[0] = args.fuxictr_python
    if any(m.startswith("FuxiCTR") for m in models) and not (
        args.fuxictr_python.exists()
    ):
        p.error(
            f"--fuxictr-python {args.fuxictr_python} does not exist: run "
            "benchmarks/setup_fuxictr_venv.sh, or leave the FuxiCTR row out of "
            "--models"
        )
    THREADS[0] = args.threads
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    FIBINET_PARAMS.update(json.loads(args.params))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for name in args.datasets.split(","):
        for model_name in models:
            scores = []
            for seed in seeds:
                X_tr, X_te, y_tr, y_te, groups = split_with_groups(
                    name, args.data, seed
                )
                fit_params = {}
                if model_name.startswith("FiBiNET"):
                    fit_params = {"groups": groups}  # the groups the split used
                else:
                    X_tr, X_te = _as_str(X_tr), _as_str(X_te)
                model = ALL_MODELS[model_name](X_tr, seed)
                start = time.perf_counter()
                model.fit(X_tr, y_tr, **fit_params)
                seconds = time.perf_counter() - start
                proba = model.predict_proba(X_te)[:, 1]
                scores.append(
                    (roc_auc_score(y_te, proba), log_loss(y_te, proba), seconds)
                )
                print(
                    f"# {name} {model_name} seed {seed}: AUC {scores[-1][0]:.4f} "
                    f"logloss {scores[-1][1]:.4f} {seconds:.1f}s "
                    f"{getattr(model, 'fit_report_', '')}",
                    file=sys.stderr,
                    flush=True,
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
        if (name, "FiBiNET (defaults)") in by:  # the defaults, when measured
            ours = ["FiBiNET (defaults)"]
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
