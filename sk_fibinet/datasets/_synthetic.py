"""A synthetic table whose informative columns are known."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_signal_and_noise(n_samples=5000, *, random_state=None):
    """Binary classification data with 6 signal columns and 8 noise columns.

    The label's logit is ``sum_k [sig_cat{k} in {a, b, c}] + sig_num0 -
    sig_num1 - 1.5`` plus logistic noise (scale 0.5): it depends on the four
    categorical ``sig_cat*`` and the two numeric ``sig_num*`` columns, additively,
    and on none of the five categorical ``noise_cat*`` and three numeric
    ``noise_num*`` columns. Categorical columns hold the letters ``a``-``h``
    with the ``str`` dtype. Use it to check that an importance measure ranks
    the ``sig_*`` columns first (6 of the top 6; about 2.6 by chance).

    Parameters
    ----------
    n_samples : int, default=5000
        Number of rows.
    random_state : int, numpy Generator or None, default=None
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    X : DataFrame of shape (n_samples, 14)
        The ``sig_*`` columns first, then the ``noise_*`` columns.
    y : ndarray of shape (n_samples,)
        Labels 0 / 1.

    Examples
    --------
    >>> from sk_fibinet.datasets import make_signal_and_noise
    >>> X, y = make_signal_and_noise(100, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((100, 14), [0, 1])
    """
    rng = np.random.default_rng(random_state)
    letters = list("abcdefgh")
    cols = {}
    for k in range(4):
        cols[f"sig_cat{k}"] = pd.Series(rng.choice(letters, n_samples), dtype="str")
    for k in range(2):
        cols[f"sig_num{k}"] = rng.normal(size=n_samples)
    for k in range(5):
        cols[f"noise_cat{k}"] = pd.Series(rng.choice(letters, n_samples), dtype="str")
    for k in range(3):
        cols[f"noise_num{k}"] = rng.normal(size=n_samples)
    X = pd.DataFrame(cols)
    logit = (
        sum(X[f"sig_cat{k}"].isin(["a", "b", "c"]).astype(float) for k in range(4))
        + X["sig_num0"]
        - X["sig_num1"]
        - 1.5
    )
    y = (logit + 0.5 * rng.logistic(size=n_samples) > 0).astype(int).to_numpy()
    return X, y
