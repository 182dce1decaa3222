"""partial_fit: train on a stream of chunks, one pass over each.

The first call (on an estimator that was never fitted) fixes everything fit
would learn from the data: the encoder (vocabularies, numeric bins; hashed
columns need no data), the classes or the target scaling, the network and its
layout. Later calls, and calls on an estimator fitted with ``fit``, keep all of
it and train the same network one epoch on the chunk, continuing the optimizer
state and the random streams. There is no validation split, no early stopping
and no calibration: the classifier's temperature is 1.0 after any call.

Nothing here imports Dask: dask-ml's ``Incremental`` calls ``partial_fit`` with
the pandas (or NumPy) blocks of a collection, which need no special handling.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_consistent_length,
)
from skorch.callbacks import ProgressBar

from ._base import _CROSS_MIN_ROWS_PER_CELL, _check_device
from ._encoding import OTHER_CODE, FieldEncoder
from ._network import code_counts
from ._skorch import _CodesDataset, _StopOnNonFinite


class UnknownCategoryWarning(UserWarning):
    """A later ``partial_fit`` chunk holds categories outside the vocabulary.

    Columns without ``hash_buckets`` keep the vocabulary of the data the
    estimator was first fitted on; their other values share the "other" code
    and get no embedding of their own.
    """


def _is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask collection (without importing dask)."""
    return type(X).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(
        X, "__dask_graph__"
    )


def _without_monitoring(estimator) -> None:
    """Drop the validation split and early stopping ``fit`` may have set up.

    ``partial_fit`` holds nothing out; skorch's early stopping would also
    restore its best epoch at the end of every call.
    """
    net = estimator.net_
    present = {name for name, _ in net.callbacks_}
    params = {
        f"callbacks__{name}": None
        for name, _ in estimator._monitor_callbacks()
        if name in present
    }
    if net.train_split is not None or params:
        net.set_params(train_split=None, **params)
        net.initialize_callbacks()  # set_params leaves None in callbacks_


def _warn_unknown(estimator, codes: np.ndarray) -> None:
    """Warn when exactly-encoded columns of a later chunk hit the "other" code."""
    encoder = estimator.encoder_
    hashed = getattr(encoder, "hash_buckets_", None) or [None] * codes.shape[1]
    counts = {
        name: int(np.count_nonzero(codes[:, j] == OTHER_CODE))
        for j, (name, vocab, buckets) in enumerate(
            zip(encoder.column_names_, encoder.vocabularies_, hashed, strict=True)
        )
        if vocab is not None and buckets is None
    }
    counts = {name: n for name, n in counts.items() if n}
    if counts:
        listed = ", ".join(f"{name!r}: {n}" for name, n in counts.items())
        warnings.warn(
            "partial_fit: categories outside the vocabulary fixed when the "
            "estimator was first fitted (unseen then, or rarer than "
            "min_frequency) share the 'other' code in this chunk of "
            f"{len(codes)} rows; rows per column: {listed}. Give such columns "
            "hash_buckets to learn new categories.",
            UnknownCategoryWarning,
            stacklevel=5,  # the caller of the estimator's partial_fit
        )


def partial_fit(estimator, X, y, *, classes=None, sample_weight=None):
    """One pass over a chunk, for ``FiBiNETClassifier`` / ``FiBiNETRegressor``.

    See the estimators' ``partial_fit`` for the parameters.
    """
    if _is_dask_collection(X) or _is_dask_collection(y):
        raise TypeError(
            "partial_fit takes in-memory chunks (pandas or NumPy), got a Dask "
            "collection. Train on it with dask_ml.wrappers.Incremental(estimator)"
            ".fit(X, y, classes=...), which calls partial_fit on every partition "
            "(pip install sk_fibinet[dask])."
        )
    if estimator.distributed:
        raise ValueError(
            "partial_fit does not train data-parallel: with distributed=True each "
            "process would train its own copy on its own chunk. Use fit under "
            "torchrun, or set distributed=False and feed the chunks to one process."
        )
    first = not hasattr(estimator, "net_")
    if first:
        device = _check_device(estimator.device)
        hidden = estimator._hidden_sizes()
    X = estimator._validate_X(X, reset=first)
    if not first and X.shape[0] == 0 and y is not None and _num_samples(y) == 0:
        return estimator  # an empty partition: nothing to learn
    y = estimator._validate_y(y)
    check_consistent_length(X, y)
    weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    # Weights are not normalised per chunk, so chunks keep their relative weight.
    target, weight = estimator._partial_fit_targets(
        y, weight, first=first, classes=classes
    )
    if not weight.sum() > 0:
        raise ValueError(f"{estimator._weight_name} sums to zero in this chunk.")

    if first:
        encoder = FieldEncoder(
            categorical_features=estimator.categorical_features,
            min_frequency=estimator.min_frequency,
            n_bins=estimator.n_bins,
            hash_buckets=estimator.hash_buckets,
        )
        if not isinstance(X, pd.DataFrame) and isinstance(
            estimator.categorical_features, str
        ):
            encoder.categorical_features = None  # "auto" on an array: numeric
        codes = encoder.fit_transform(X)  # (n, F) int64
    else:
        encoder = estimator.encoder_
        codes = encoder.transform(X)  # (n, F) int64
        _warn_unknown(estimator, codes)
    codes = torch.from_numpy(codes)  # (n, F)
    target_weight = torch.from_numpy(
        np.column_stack([target, weight]).astype(np.float32)
    )  # (n, 2)
    dataset = _CodesDataset(codes, target_weight)

    if first:
        seed = int(
            check_random_state(estimator.random_state).randint(np.iinfo(np.int32).max)
        )
        callbacks = list(estimator.callbacks or [])
        callbacks.append(("stop_on_non_finite", _StopOnNonFinite()))
        if estimator.verbose >= 2:
            callbacks.append(("progress_bar", ProgressBar(postfix_keys=["train_loss"])))
        cross_cells = 0
        if estimator.linear and estimator.variant == "fibinet":
            cross_cells = min(
                estimator.max_cross_cells, len(dataset) // _CROSS_MIN_ROWS_PER_CELL
            )
        net = estimator._build_net(
            encoder=encoder,
            hidden=hidden,
            n_outputs=estimator._n_outputs(),
            cross_cells=cross_cells,
            device=device,
            train_split=None,
            callbacks=callbacks,
            seed=seed,
            # embedding_l2 scales by the first chunk's counts
            code_counts=code_counts(codes, encoder.cardinalities_),
        )
    else:
        _without_monitoring(estimator)
        net = estimator.net_

    # the net draws from its own generators, seeded from (seed, epochs done)
    net.partial_fit(dataset, None, epochs=1)
    if first:
        estimator.encoder_ = encoder
        estimator.net_ = net
        # Rows this chunk did not reach get their field's mean, as after fit;
        # later chunks train them from there.
        net.module_.fill_untrained_rows(codes)
    estimator.n_iter_ = len(net.history)
    estimator._after_training(None)  # classifier: temperature_ = 1.0
    estimator.senet_weights_ = estimator._field_weights(dataset, mean=True)  # (F,)
    # references average over every chunk's codes so far; importances measured
    # on this chunk (partial_fit holds nothing out)
    counts = code_counts(codes, encoder.cardinalities_)  # (R,)
    if not first and getattr(estimator, "_code_counts", None) is not None:
        counts = counts + estimator._code_counts
    estimator._learn_explanations(dataset, None, int(net.shuffle_seed), counts)
    return estimator
