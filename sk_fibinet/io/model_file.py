"""The model file format of :func:`~.persistence.save_model`: its versions,
every fitted part of an estimator as tensors and plain Python values (str,
int, float, bool, None, lists, tuples, dicts) and back, and reading a file
with ``torch.load(..., weights_only=True)``, which refuses to build any other
object.

The readers here take untrusted content: each says what is wrong with a file
in a ValueError. Putting the parts together into a file, and an estimator back
together from one, is ``persistence.py``.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral

import numpy as np
import pandas as pd
import torch

from .._serialization import _SCALARS, _plain, _plain_scalar
from ..estimators.base import BaseFiBiNET
from ..preprocessing.encoding import FieldEncoder
from ..preprocessing.hashing import HASH_FUNCTIONS, resolve_hash_buckets
from ..preprocessing.target_stats import TargetStatistics

# 2: derived index buffers (field offsets, coarse and pair indices) are no
# longer stored; version-1 files, which hold them, still load.
# 3: the encoder records its hash function; hashed columns of new fits use
# MurmurHash3, and version-1/2 files, written when the hash was pandas'
# SipHash, load with "siphash" and keep predicting as before.
# 4: the target statistics (target_stats="auto") are stored; a reader of
# versions 1-3 would drop them and load a model that cannot predict, so it
# must refuse the file. Files of versions 1-3 have none and still load.
# 5: the encoder's derived fields (cross_triples="auto") are stored; a reader
# of versions 1-4 would encode the columns without them, so it must refuse the
# file. Files of versions 1-4 have none and still load.
FORMAT_VERSION = 5
_READABLE_VERSIONS = (1, 2, 3, 4, 5)


def _params_to_plain(model: BaseFiBiNET) -> dict:
    params = model.get_params(deep=False)
    if params["callbacks"] is not None:
        raise ValueError(
            "Cannot save a model whose callbacks parameter is not None: callbacks "
            "are arbitrary Python objects that this format does not store. Set "
            "model.set_params(callbacks=None) before saving (the trained weights "
            "are kept)."
        )
    random_state = params["random_state"]
    if isinstance(random_state, Integral):
        params["random_state"] = int(random_state)
    elif random_state is not None:  # a RandomState instance: its state is lost
        params["random_state"] = None
    params["device"] = str(params["device"])
    if isinstance(params.get("checkpoint_dir"), os.PathLike):
        params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])
    return {
        name: _plain(value, f"parameter {name!r}") for name, value in params.items()
    }


def _string_dtype_spec(dtype: pd.StringDtype) -> dict:
    na_value = dtype.na_value
    return {
        "storage": str(dtype.storage),
        "na_value": "NA" if na_value is pd.NA else "nan",
    }


def _dtype_from_spec(spec: dict):
    """The pandas/numpy dtype described by ``spec`` (see :func:`_index_to_plain`)."""
    if "storage" in spec:
        na_value = pd.NA if spec["na_value"] == "NA" else np.nan
        try:
            return pd.StringDtype(storage=spec["storage"], na_value=na_value)
        except ImportError:  # e.g. pyarrow storage, pyarrow not installed here
            return pd.StringDtype(na_value=na_value)
    return pd.api.types.pandas_dtype(spec["dtype"])


def _index_from_plain(spec: dict) -> pd.Index:
    return pd.Index(spec["values"], dtype=_dtype_from_spec(spec), name=spec["name"])


def _index_to_plain(index: pd.Index, column: str) -> dict:
    """A vocabulary as plain values plus what is needed to rebuild it exactly."""
    values = []
    for value in index.tolist():
        value = _plain_scalar(value)
        if not isinstance(value, _SCALARS):
            raise ValueError(
                f"Cannot save column {column!r}: its category {value!r} has type "
                f"{type(value).__name__}; only str, int, float and bool categories "
                "can be saved."
            )
        values.append(value)
    name = _plain_scalar(index.name)
    spec = {
        "dtype": str(index.dtype),
        "values": values,
        "name": name if name is None or isinstance(name, _SCALARS) else str(name),
    }
    if isinstance(index.dtype, pd.StringDtype):
        spec.update(_string_dtype_spec(index.dtype))
    try:
        rebuilt = _index_from_plain(spec)
        exact = rebuilt.dtype == index.dtype and rebuilt.equals(index)
    except (TypeError, ValueError):
        exact = False
    if not exact:
        raise ValueError(
            f"Cannot save column {column!r}: its categories of dtype {index.dtype} "
            "cannot be stored exactly; only str, int, float and bool categories "
            "can be saved."
        )
    return spec


def _array_to_plain(array: np.ndarray, what: str) -> dict:
    """A 1-d label array as a list plus its numpy dtype string."""
    values = [_plain_scalar(v) for v in array.tolist()]
    bad = [v for v in values if not isinstance(v, _SCALARS)]
    if bad:
        raise ValueError(
            f"Cannot save {what}: value {bad[0]!r} has type {type(bad[0]).__name__}; "
            "only str, int, float and bool values can be saved."
        )
    spec = {"dtype": array.dtype.str, "values": values}
    rebuilt = _array_from_plain(spec)
    if rebuilt.dtype != array.dtype or not np.array_equal(rebuilt, array):
        raise ValueError(
            f"Cannot save {what}: values of dtype {array.dtype} cannot be stored "
            "exactly."
        )
    return spec


def _array_from_plain(spec: dict) -> np.ndarray:
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "O":
        out = np.empty(len(spec["values"]), dtype=object)
        out[:] = spec["values"]
        return out
    return np.asarray(spec["values"], dtype=dtype)


def _encoder_to_plain(encoder: FieldEncoder) -> dict:
    vocabularies = [
        None if vocab is None else _index_to_plain(vocab, column)
        for vocab, column in zip(
            encoder.vocabularies_, encoder.column_names_, strict=True
        )
    ]
    bin_edges = [
        None
        if edges is None
        else torch.from_numpy(np.array(edges, dtype=np.float64, copy=True))
        for edges in encoder.bin_edges_
    ]
    return {
        "params": {
            name: _plain(value, f"encoder parameter {name!r}")
            for name, value in encoder.get_params(deep=False).items()
        },
        "categorical_mask": [bool(m) for m in encoder.categorical_mask_],
        "column_names": [str(c) for c in encoder.column_names_],
        "cardinalities": [int(c) for c in encoder.cardinalities_],
        "vocabularies": vocabularies,
        "bin_edges": bin_edges,
        "hash_function": str(getattr(encoder, "hash_function_", "siphash")),
        "crosses": [[int(f) for f in fields] for fields in encoder._crosses()],
    }


def _encoder_from_plain(state: dict) -> FieldEncoder:
    encoder = FieldEncoder(**state["params"])
    encoder.categorical_mask_ = np.asarray(state["categorical_mask"], dtype=bool)
    encoder.column_names_ = list(state["column_names"])
    encoder.cardinalities_ = [int(c) for c in state["cardinalities"]]
    encoder.vocabularies_ = [
        None if spec is None else _index_from_plain(spec)
        for spec in state["vocabularies"]
    ]
    encoder.bin_edges_ = [
        None if edges is None else _float_array(edges) for edges in state["bin_edges"]
    ]
    # derived from the parameters (files written before hashing have none)
    encoder.hash_buckets_ = resolve_hash_buckets(
        encoder.hash_buckets, encoder.column_names_, encoder.categorical_mask_
    )
    # files of format 1 and 2 were hashed with SipHash and do not say so
    hash_function = state.get("hash_function", "siphash")
    if hash_function not in HASH_FUNCTIONS:
        raise ValueError(
            "The sk_fibinet model file names an unknown hash function "
            f"{hash_function!r}; known: {', '.join(HASH_FUNCTIONS)}."
        )
    encoder.hash_function_ = hash_function
    # files of formats 1-4 have no derived fields
    encoder.crosses_ = [tuple(int(f) for f in t) for t in state.get("crosses", [])]
    return encoder


def _float_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().to(torch.float64).numpy().copy()
    return np.asarray(values, dtype=np.float64)


def _tensor64(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float64, copy=True))


def _target_stats_to_plain(statistics) -> dict | None:
    """:meth:`TargetStatistics.to_state` as tensors and plain values."""
    if statistics is None:
        return None
    state = statistics.to_state()
    plain = {
        "columns": [str(c) for c in state["columns"]],
        "pairs": [[str(a), str(b)] for a, b in state["pairs"]],
        "n_folds": int(state["n_folds"]),
        "smooth": _plain(state["smooth"], "target statistics' smooth"),
        "prior": str(state["prior"]),
        "seed": int(state["seed"]),
        "n_targets": None if state["n_targets"] is None else int(state["n_targets"]),
        "vocabularies": [
            [str(c), _index_to_plain(index, c)] for c, index in state["vocabularies"]
        ],
        "pair_keys": [
            torch.from_numpy(np.array(keys, dtype=np.int64, copy=True))
            for keys in state["pair_keys"]
        ],
        "rows_seen": None if state["rows_seen"] is None else int(state["rows_seen"]),
    }
    if state["n_targets"] is not None:
        plain.update(
            fold_w=_tensor64(state["fold_w"]),
            fold_s=_tensor64(state["fold_s"]),
            fold_q=_tensor64(state["fold_q"]),
            sums=[
                [None if a is None else _tensor64(a) for a in sums]
                for sums in state["sums"]
            ],
            feature_names=[str(n) for n in state["feature_names"]],
            sources={str(n): [str(c) for c in s] for n, s in state["sources"].items()},
        )
    return plain


def _target_stats_from_plain(plain) -> TargetStatistics | None:
    if plain is None:
        return None
    state = dict(plain)
    state["pairs"] = [tuple(p) for p in plain["pairs"]]
    state["vocabularies"] = [
        (c, _index_from_plain(spec)) for c, spec in plain["vocabularies"]
    ]
    state["pair_keys"] = [k.to(torch.int64).numpy() for k in plain["pair_keys"]]
    if plain["n_targets"] is not None:
        for name in ("fold_w", "fold_s", "fold_q"):
            state[name] = _float_array(plain[name])
        state["sums"] = [
            tuple(None if a is None else _float_array(a) for a in sums)
            for sums in plain["sums"]
        ]
    try:
        return TargetStatistics.from_state(state)
    except ValueError as exc:
        raise ValueError(
            f"The sk_fibinet model file holds damaged target statistics: {exc}"
        ) from exc


def _network_to_plain(model: BaseFiBiNET) -> dict:
    """What ``_build_net`` needs besides the parameters, as fit computed it."""
    hidden = model.hidden_layer_sizes
    hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
    return {
        "hidden": [int(h) for h in hidden],
        "n_outputs": model._n_outputs(),
        "shuffle_seed": int(model.net_.shuffle_seed),
        "max_cross_cells": int(getattr(model.net_, "module__max_cross_cells", 0)),
        # the pairs cross_pairs="auto" chose (None: all within max_cross_cells)
        "cross_pairs": getattr(model.net_, "module__cross_pairs", None),
    }


def _torch_load(file, where: str):
    """``torch.load(weights_only=True)`` that turns "cannot read" into ValueError."""
    try:
        with warnings.catch_warnings():
            # torch's note on reading a pickle (protocol > 2): we refuse it anyway
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure means "not a file of this format"
        # torch's own text goes on to suggest weights_only=False: keep only its start
        detail = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise ValueError(
            f"{where} is not a sk_fibinet model file written by save_model: "
            f"torch.load(weights_only=True) cannot read it ({reason}). Pickle and "
            "joblib files are refused on purpose, because loading them can execute "
            "arbitrary code; load such a file only if it comes from a trusted "
            "source, with pickle.load or joblib.load."
        ) from exc


def _read(path):
    if isinstance(path, (str, os.PathLike)):
        with open(path, "rb") as f:  # a missing file raises the usual OSError
            return _torch_load(f, repr(os.fspath(path)))
    return _torch_load(path, "The given file object")
