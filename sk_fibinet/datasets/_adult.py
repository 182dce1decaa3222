"""The Adult census income data (UCI, CC BY 4.0), bundled with the package."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
]
_NUMERIC = [
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
]
_FILES = {"train": "adult.data.gz", "test": "adult.test.gz"}
_DESCR = """Adult census income (UCI Machine Learning Repository, Kohavi & Becker 1996).

Predict whether yearly income exceeds 50K USD from 14 census attributes
(6 numeric, 8 categorical; missing values, '?' in the source, are NaN).
Train split: 32,561 rows; test split: 16,281 rows; positive rate about 24%.
Source: https://archive.ics.uci.edu/dataset/2/adult  Licence: CC BY 4.0.
"""


def _read(split: str) -> pd.DataFrame:
    path = resources.files("sk_fibinet.datasets") / "data" / _FILES[split]
    with resources.as_file(path) as p:
        frame = pd.read_csv(
            p,
            header=None,
            names=_COLUMNS + ["income"],
            skipinitialspace=True,
            na_values="?",
            compression="gzip",
        )
    frame["income"] = frame["income"].str.rstrip(".")
    for col in _COLUMNS:
        if col not in _NUMERIC:
            frame[col] = frame[col].astype("category")
    return frame


def load_adult(*, subset="train", return_X_y=False, as_frame=True):
    """Load the Adult census income data (binary classification).

    =================  ==============
    Classes                         2
    Samples (train)            32,561
    Samples (test)             16,281
    Features           14 (6 numeric)
    =================  ==============

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The official train file, the official test file, or both stacked.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=True
        Return a DataFrame (categorical columns as ``category`` dtype, missing
        values as NaN) and a Series of strings (``"<=50K"``, ``">50K"``). If
        False, ``data`` is an object ndarray and ``target`` an int array with 1
        for ``">50K"``.

    Returns
    -------
    data : Bunch
        With ``data``, ``target``, ``frame`` (None unless ``as_frame``),
        ``feature_names``, ``target_names`` and ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Examples
    --------
    >>> from sk_fibinet.datasets import load_adult
    >>> X, y = load_adult(return_X_y=True)
    >>> X.shape
    (32561, 14)
    >>> sorted(y.unique())
    ['<=50K', '>50K']
    """
    if subset not in ("train", "test", "all"):
        raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}.")
    if subset == "all":
        frame = pd.concat([_read("train"), _read("test")], ignore_index=True)
        for col in _COLUMNS:
            if col not in _NUMERIC:
                frame[col] = frame[col].astype("category")
    else:
        frame = _read(subset)
    data, target = frame[_COLUMNS], frame["income"]
    if not as_frame:
        data = data.astype(object).where(data.notna(), np.nan).to_numpy()
        target = (target == ">50K").to_numpy().astype(np.int64)
        frame = None
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=list(_COLUMNS),
        target_names=["<=50K", ">50K"],
        DESCR=_DESCR,
    )
