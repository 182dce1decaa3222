"""Synthetic Criteo-like click data and its integer field-code representation.

The throughput benchmark needs data shaped like the Criteo display-advertising
set (26 categorical fields with vocabularies from a handful to ~10^5 values,
skewed frequencies, missing values, and 13 heavy-tailed count fields) without
downloading it. :func:`make_criteo_like` draws such a table with a label that is
learnable from a few fields and two pairwise interactions, and
:func:`encode_codes` turns it into the one integer code per field that every
benchmarked implementation is fed.

Only numpy and pandas are used, and everything is vectorised: a million rows
take a few seconds. Run as a script, the module writes the codes of a drawn
table to an ``.npz`` file (see :func:`save_codes`)::

    python benchmarks/criteo_like.py --n-rows 100000 --out codes.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

__all__ = ["encode_codes", "make_criteo_like", "save_codes"]

_MIN_VOCABULARY = 3
_LATENT_DIM = 4
_POSITIVE_RATE = 0.22
_SIGNAL_STD = 1.6


def _vocabulary_sizes(n_categorical, max_vocabulary, rng):
    """Log-uniformly spaced vocabulary sizes, in a shuffled column order."""
    low = min(_MIN_VOCABULARY, max_vocabulary)
    sizes = np.geomspace(low, max_vocabulary, num=n_categorical)
    return rng.permutation(np.rint(sizes).astype(np.int64))


def _zipf_codes(n_rows, vocabulary, exponent, missing_rate, rng):
    """Category codes with Zipf-like frequencies, ``-1`` marking missing values.

    Frequency ranks are mapped to codes by a random permutation, so that a
    category's code says nothing about how frequent it is.
    """
    weights = np.arange(1, vocabulary + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(n_rows), side="right")
    np.minimum(ranks, vocabulary - 1, out=ranks)
    codes = rng.permutation(vocabulary).astype(np.int32)[ranks]
    codes[rng.random(n_rows) < missing_rate] = -1
    return codes


def _heavy_tailed_counts(n_rows, rng):
    """Zero-inflated, floored log-normal counts with about 10% NaN."""
    mu = rng.uniform(0.0, 4.0)
    sigma = rng.uniform(0.5, 2.5)
    values = np.floor(rng.lognormal(mu, sigma, size=n_rows))
    values[rng.random(n_rows) < rng.uniform(0.05, 0.5)] = 0.0
    values[rng.random(n_rows) < rng.uniform(0.05, 0.15)] = np.nan
    return values


def _standardize(term):
    """Center and scale a label term to unit variance (constant terms vanish)."""
    term = term - term.mean()
    std = term.std()
    return term / std if std > 0 else term


def _category_effect(codes, vocabulary, rng):
    """Random per-category weight, missing values sharing one more weight."""
    table = rng.normal(size=vocabulary + 1)
    return table[codes + 1]


def _numeric_feature(values):
    """``log1p`` of a count, standardised, with NaN mapped to a fixed offset."""
    finite = ~np.isnan(values)
    out = np.full(values.shape, 0.5)
    if finite.any():
        logs = np.log1p(values[finite])
        std = logs.std()
        out[finite] = (logs - logs.mean()) / (std if std > 0 else 1.0)
    return out


def _intercept_for_rate(signal, rate):
    """Intercept ``b`` with ``mean(sigmoid(b + signal))`` equal to ``rate``."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(mid + signal)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _label_signal(cat_codes, vocabularies, numerics, rng):
    """Logit contributions of a few main effects and two pairwise interactions.

    Main effects come from the (up to) four categorical fields whose vocabulary
    is closest to a few hundred values, so that they are learnable from
    ~10^5 rows, and from (up to) two numeric fields. One interaction is a
    low-rank product of two categorical fields, the other a categorical field
    scaling a numeric one.
    """
    n_rows = numerics.shape[0]
    # Categorical fields by how close their vocabulary is to a few hundred.
    distance = np.abs(np.log(vocabularies) - np.log(300.0))
    order = np.argsort(distance, kind="stable").tolist()
    numeric_features = [
        _numeric_feature(numerics[:, j]) for j in range(min(2, numerics.shape[1]))
    ]

    terms = []
    for j in order[:4]:
        terms.append((1.0, _category_effect(cat_codes[:, j], vocabularies[j], rng)))
    for weight, feature in zip((0.8, -0.6), numeric_features, strict=False):
        terms.append((weight, np.sin(1.5 * feature) + 0.5 * feature))
    if len(order) >= 2:
        a, b = order[0], order[min(4, len(order) - 1)]
        left = rng.normal(size=(vocabularies[a] + 1, _LATENT_DIM))
        right = rng.normal(size=(vocabularies[b] + 1, _LATENT_DIM))
        product = np.einsum(
            "ij,ij->i", left[cat_codes[:, a] + 1], right[cat_codes[:, b] + 1]
        )
        terms.append((1.0, product))
    if order and numeric_features:
        c = order[min(1, len(order) - 1)]
        slope = _category_effect(cat_codes[:, c], vocabularies[c], rng)
        terms.append((0.8, slope * numeric_features[-1]))

    signal = np.zeros(n_rows)
    for weight, term in terms:
        signal += weight * _standardize(term)
    return _standardize(signal) * _SIGNAL_STD


def make_criteo_like(
    n_rows=100_000,
    n_categorical=26,
    n_numeric=13,
    max_vocabulary=100_000,
    n_numeric_bins=64,
    random_state=0,
):
    """Draw a synthetic click-through table shaped like Criteo's.

    Parameters
    ----------
    n_rows : int, default=100_000
        Number of rows.
    n_categorical : int, default=26
        Number of categorical columns ``C1..C{n_categorical}``.
    n_numeric : int, default=13
        Number of numeric columns ``I1..I{n_numeric}``.
    max_vocabulary : int, default=100_000
        Largest vocabulary. Vocabulary sizes are spaced log-uniformly from 3 to
        ``max_vocabulary`` and assigned to the columns in random order.
    n_numeric_bins : int, default=64
        Number of quantile bins the numeric columns are meant to be cut into by
        :func:`encode_codes`. The label only depends on smooth functions of the
        numeric values, so binning them this finely loses little signal.
    random_state : int or numpy.random.Generator, default=0
        Seed of the generator, for reproducible draws.

    Returns
    -------
    X : pandas.DataFrame of shape (n_rows, n_categorical + n_numeric)
        Columns ``C1..`` of dtype ``category`` whose categories are the integers
        ``0..vocabulary - 1`` (Zipf-like frequencies, some missing values), then
        columns ``I1..`` of dtype float64 holding heavy-tailed non-negative
        counts with about 10% NaN.
    y : numpy.ndarray of int64 of shape (n_rows,)
        Binary label, about 22% positive. Its log-odds are a sum of a few
        per-field effects and two pairwise interactions (one categorical x
        categorical, one categorical x numeric), so a model that sees the fields
        reaches a ROC AUC around 0.7-0.8.

    Notes
    -----
    The label's terms are standardised and its intercept calibrated on the
    drawn sample, so the positive rate holds for any ``n_rows``.

    Examples
    --------
    >>> X, y = make_criteo_like(n_rows=1_000)
    >>> X.shape
    (1000, 39)
    >>> sorted(set(X.dtypes.astype(str)))
    ['category', 'float64']
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}.")
    if n_categorical < 0 or n_numeric < 0 or n_categorical + n_numeric == 0:
        raise ValueError("Need at least one categorical or numeric column.")
    if max_vocabulary < 1:
        raise ValueError(f"max_vocabulary must be positive, got {max_vocabulary}.")
    if n_numeric_bins < 1:
        raise ValueError(f"n_numeric_bins must be positive, got {n_numeric_bins}.")
    rng = np.random.default_rng(random_state)

    vocabularies = _vocabulary_sizes(n_categorical, max_vocabulary, rng)
    exponents = rng.uniform(0.9, 1.3, size=n_categorical)
    # Most fields are nearly complete; about a quarter miss many values.
    sparse_fields = rng.random(n_categorical) < 0.25
    missing_rates = np.where(
        sparse_fields,
        rng.uniform(0.1, 0.45, size=n_categorical),
        rng.uniform(0.0, 0.05, size=n_categorical),
    )
    cat_codes = np.empty((n_rows, n_categorical), dtype=np.int32)
    for j in range(n_categorical):
        cat_codes[:, j] = _zipf_codes(
            n_rows, int(vocabularies[j]), exponents[j], missing_rates[j], rng
        )
    numerics = np.empty((n_rows, n_numeric), dtype=np.float64)
    for j in range(n_numeric):
        numerics[:, j] = _heavy_tailed_counts(n_rows, rng)

    signal = _label_signal(cat_codes, vocabularies, numerics, rng)
    logits = signal + _intercept_for_rate(signal, _POSITIVE_RATE)
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)

    columns = {}
    for j in range(n_categorical):
        categories = pd.RangeIndex(int(vocabularies[j]))
        columns[f"C{j + 1}"] = pd.Categorical.from_codes(
            cat_codes[:, j], categories=categories
        )
    for j in range(n_numeric):
        columns[f"I{j + 1}"] = numerics[:, j]
    return pd.DataFrame(columns, copy=False), y


def _inner_bin_edges(values, n_bins):
    """Sorted inner edges cutting ``values`` into at most ``n_bins`` bins.

    Columns with at most ``n_bins`` distinct values get one bin per value
    (edges at the midpoints); others get quantile edges, duplicates merged.
    """
    finite = np.sort(values[np.isfinite(values)])
    if finite.size == 0:
        return np.empty(0)
    distinct = finite[np.concatenate(([True], finite[1:] != finite[:-1]))]
    if distinct.size <= n_bins:
        return (distinct[:-1] + distinct[1:]) / 2
    positions = np.linspace(0, 1, n_bins + 1)[1:-1] * (finite.size - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, finite.size - 1)
    fraction = positions - below
    quantiles = finite[below] * (1 - fraction) + finite[above] * fraction
    return np.unique(quantiles)


def encode_codes(X, n_numeric_bins=64):
    """Encode every column of ``X`` as one integer code per row.

    Parameters
    ----------
    X : pandas.DataFrame
        Table as returned by :func:`make_criteo_like`: columns of dtype
        ``category`` are categorical, all others numeric.
    n_numeric_bins : int, default=64
        Maximum number of quantile bins per numeric column.

    Returns
    -------
    codes : numpy.ndarray of int64 of shape (n_rows, n_columns)
        One field per column, in ``X``'s column order. Categorical fields hold
        the category code + 1, numeric fields the quantile bin index + 1; code
        0 marks a missing value (NaN) in both.
    vocabulary_sizes : list of int
        Number of distinct codes each field can take, code 0 included: the
        number of categories + 1, or the number of bins + 1. Every code of field
        ``j`` lies in ``[0, vocabulary_sizes[j])``.

    Notes
    -----
    Bin edges are computed from ``X`` itself; ``+-inf`` fall into the
    outermost bins. Columns with at most ``n_numeric_bins`` distinct values get
    one bin per value.

    Examples
    --------
    >>> X, y = make_criteo_like(n_rows=1_000)
    >>> codes, vocabulary_sizes = encode_codes(X)
    >>> codes.shape, len(vocabulary_sizes)
    ((1000, 39), 39)
    >>> bool((codes < vocabulary_sizes).all())
    True
    """
    if n_numeric_bins < 1:
        raise ValueError(f"n_numeric_bins must be positive, got {n_numeric_bins}.")
    codes = np.empty(X.shape, dtype=np.int64)
    vocabulary_sizes = []
    for j, name in enumerate(X.columns):
        column = X[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes[:, j] = column.cat.codes.to_numpy()
            codes[:, j] += 1
            vocabulary_sizes.append(len(column.cat.categories) + 1)
        else:
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            edges = _inner_bin_edges(values, n_numeric_bins)
            field = np.searchsorted(edges, values, side="right") + 1
            field[np.isnan(values)] = 0
            codes[:, j] = field
            vocabulary_sizes.append(edges.size + 2)
    return codes, vocabulary_sizes


def save_codes(path, codes, y, vocabulary_sizes):
    """Write field codes, labels and vocabulary sizes to an ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    codes : numpy.ndarray of int64 of shape (n_rows, n_fields)
        Field codes from :func:`encode_codes`.
    y : numpy.ndarray of shape (n_rows,)
        Binary labels.
    vocabulary_sizes : list of int
        Vocabulary size of each field, from :func:`encode_codes`.

    Notes
    -----
    The arrays are stored under the keys ``codes`` (int64), ``y`` (int64) and
    ``vocab`` (int64), uncompressed so that loading them is fast.
    """
    np.savez(
        path,
        codes=np.ascontiguousarray(codes, dtype=np.int64),
        y=np.asarray(y, dtype=np.int64),
        vocab=np.asarray(vocabulary_sizes, dtype=np.int64),
    )


def main(argv=None):
    """Draw a Criteo-like table, encode it and save the codes to ``--out``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="destination .npz file")
    parser.add_argument("--n-rows", type=int, default=100_000)
    parser.add_argument("--n-categorical", type=int, default=26)
    parser.add_argument("--n-numeric", type=int, default=13)
    parser.add_argument("--max-vocabulary", type=int, default=100_000)
    parser.add_argument("--n-numeric-bins", type=int, default=64)
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    X, y = make_criteo_like(
        n_rows=args.n_rows,
        n_categorical=args.n_categorical,
        n_numeric=args.n_numeric,
        max_vocabulary=args.max_vocabulary,
        n_numeric_bins=args.n_numeric_bins,
        random_state=args.random_state,
    )
    codes, vocabulary_sizes = encode_codes(X, n_numeric_bins=args.n_numeric_bins)
    save_codes(args.out, codes, y, vocabulary_sizes)
    print(
        f"{args.out}: {codes.shape[0]} rows, {codes.shape[1]} fields, "
        f"{y.mean():.1%} positive, {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    main()
