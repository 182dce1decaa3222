"""Categorical columns hashed into buckets instead of learning a vocabulary.

A categorical column given ``hash_buckets`` (an open vocabulary, as in
streaming) learns no vocabulary: every value maps by a stable hash to one of
``N`` buckets, codes ``2..N+1`` (code ``0`` is still missing, code ``1`` is
unused), so values first met after ``fit`` get trained rows of their own,
shared with the values that collide with them. The hash is MurmurHash3
(32 bits, seed ``HASH_SEED``) of the value's UTF-8 text, which onnxruntime's
``com.microsoft.MurmurHash3`` operator computes bit for bit, so an exported
graph hashes as ``transform`` does; encoders fitted before it (format 2 files)
keep pandas' SipHash, recorded in ``hash_function_``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import murmurhash3_32

from .categories import MISSING_CODE, N_RESERVED, _as_indexable

# Seed of the MurmurHash3 (x86, 32 bits, as scikit-learn's murmurhash3_32 and
# onnxruntime's com.microsoft.MurmurHash3 compute it) applied to the UTF-8 text
# of categories given hash_buckets. Saved models, every worker of a cluster and
# exported ONNX graphs rely on the same value landing in the same bucket: never
# change it (Python's own hash() is salted per process and could not be used).
HASH_SEED = 0x5F1B1E7
# Key of the SipHash-2-4 that pandas' hash_array applied before MurmurHash3:
# encoders fitted then (hash_function_ == "siphash") keep it.
HASH_KEY = "sk_fibinet/hash1"  # 16 bytes
#: Hash functions of ``FieldEncoder.hash_function_``: new fits use the first.
HASH_FUNCTIONS = ("murmurhash3", "siphash")


def resolve_hash_buckets(hash_buckets, column_names, categorical_mask) -> list:
    """Number of hash buckets of every column, None where it keeps a vocabulary.

    Parameters
    ----------
    hash_buckets : int, dict or None
        An int for every categorical column, a dict from column name (or
        position, for arrays) to an int or None, or None for no hashing.
    column_names : list of str
        Column names (positions for arrays), as strings.
    categorical_mask : ndarray of bool
        Which columns are categorical.

    Returns
    -------
    buckets : list of int or None
        One entry per column.
    """
    n = len(column_names)
    if hash_buckets is None:
        return [None] * n
    if isinstance(hash_buckets, Integral) and not isinstance(hash_buckets, bool):
        if hash_buckets < 1:
            raise ValueError(f"hash_buckets must be >= 1, got {hash_buckets!r}.")
        return [int(hash_buckets) if m else None for m in categorical_mask]
    if not isinstance(hash_buckets, dict):
        raise TypeError(
            "hash_buckets must be None, an int or a dict from column name to int, "
            f"got {type(hash_buckets).__name__}."
        )
    position = {name: i for i, name in enumerate(column_names)}
    out = [None] * n
    for key, value in hash_buckets.items():
        i = position.get(str(key))
        if i is None:
            raise ValueError(
                f"hash_buckets names column {key!r}, which is not in X; X has "
                f"columns {list(column_names)}."
            )
        if not categorical_mask[i]:
            raise ValueError(
                f"hash_buckets names column {key!r}, which is numeric (it is cut "
                "into bins, not hashed); list it in categorical_features to hash "
                "its values."
            )
        if value is None:
            continue
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"hash_buckets[{key!r}] must be an int >= 1 or None, got {value!r}."
            )
        out[i] = int(value)
    return out


def _canonical_text(uniques) -> np.ndarray:
    """Distinct non-missing values as text: equal values of any dtype agree.

    ``5``, ``5.0``, ``np.int32(5)`` and ``"5"`` all become ``"5"``, so a column
    read as int in one chunk and as float (it had a NaN) or text in the next
    hashes the same; booleans become ``"True"`` / ``"False"``.
    """
    values = np.asarray(uniques)
    if values.dtype.kind == "b":
        return np.where(values, "True", "False").astype(object)
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        f = values.astype(np.float64)  # float32 0.1 reads as the float64 it is
        integral = np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0**63)
        out = f.astype(str).astype(object)
        out[integral] = f[integral].astype(np.int64).astype(str)
        return out
    if values.dtype.kind != "O":  # text, dates
        return values.astype(str).astype(object)
    out = np.empty(values.size, dtype=object)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, bool):
            out[i] = "True" if v else "False"
        elif isinstance(v, Integral):
            out[i] = str(int(v))
        elif isinstance(v, Real):
            f = float(v)
            integral = np.isfinite(f) and f.is_integer() and abs(f) < 2.0**63
            out[i] = str(int(f)) if integral else str(np.float64(f))
        else:
            out[i] = str(v)
    return out


def _murmurhash3(texts) -> np.ndarray:
    """``(n,)`` uint32 MurmurHash3 of each text's UTF-8 bytes, seed ``HASH_SEED``."""
    return np.fromiter(
        (murmurhash3_32(t, seed=HASH_SEED, positive=True) for t in texts),
        dtype=np.uint64,
        count=len(texts),
    )  # (n,)


def hash_codes(col, n_buckets: int, hash_function: str = "murmurhash3") -> np.ndarray:
    """Codes of one categorical column by stable hashing into ``n_buckets``.

    Parameters
    ----------
    col : Series or ndarray of shape (n_samples,)
    n_buckets : int
    hash_function : {"murmurhash3", "siphash"}, default="murmurhash3"
        ``"murmurhash3"``: MurmurHash3 (32 bits, seed ``HASH_SEED``, unsigned)
        of the value's UTF-8 text, modulo ``n_buckets``. ``"siphash"``: pandas'
        SipHash-2-4 with key ``HASH_KEY``, as encoders fitted before
        MurmurHash3 hashed.

    Returns
    -------
    codes : ndarray of int64 of shape (n_samples,)
        ``MISSING_CODE`` for missing values, otherwise in
        ``[N_RESERVED, N_RESERVED + n_buckets)``.
    """
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        # hash the categories, not every row
        index, uniques = col.cat.codes.to_numpy(), col.cat.categories.to_numpy()
    else:
        index, uniques = pd.factorize(_as_indexable(col), use_na_sentinel=True)
    texts = _canonical_text(uniques)  # (n_uniques,) object
    if hash_function == "murmurhash3":
        hashes = _murmurhash3(texts)  # (n_uniques,) uint64
    elif hash_function == "siphash":
        hashes = pd.util.hash_array(
            texts, hash_key=HASH_KEY, categorize=False
        )  # (n_uniques,) uint64
    else:
        raise ValueError(
            f"hash_function must be one of {HASH_FUNCTIONS}, got {hash_function!r}."
        )
    buckets = (hashes % np.uint64(n_buckets)).astype(np.int64) + N_RESERVED
    index = np.asarray(index, dtype=np.int64)
    found = index >= 0
    out = np.full(index.shape, MISSING_CODE, dtype=np.int64)
    out[found] = buckets[index[found]]
    return out
