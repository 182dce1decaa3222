"""BaseFiBiNET: what the FiBiNET classifier and regressor share.

The parameters and their declarative constraints, the fit entry point (which
hands the data to the one training engine), the skorch net built from the
parameters, and the task hooks a subclass supplies: how targets become the
target column of the training tensor, the loss, how many outputs the network
has, what early stopping watches and how outputs become predictions, as
scikit-learn's ``BaseHistGradientBoosting`` does for its two estimators.

The checks the constraints cannot express are in ``validation.py``, the
questions to the fitted network (prediction internals, inspection,
explanations) in ``inspection.py``, the hooks of each task in ``tasks.py``.
"""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from skorch.callbacks import EarlyStopping

from ..data.frame_source import FrameSource
from ..data.parquet import ParquetSource
from ..data.stream_source import StreamSource
from ..nn.fibinet import BILINEAR_TYPES, FiBiNET
from ..nn.fibinetpp import FiBiNetPP
from ..nn.optim import SparseDenseAdamW
from ..nn.precision import first_layer_dtype
from ..training.engine import train
from ..training.net import (
    _PREDICT_BATCH_SIZE,
    _CodesDataset,
    _FiBiNETNet,
    _silent,
)
from .inspection import InspectionMixin
from .validation import ValidationMixin

# The first-order weights start at 0 and each sees only the rows with its code;
# at 10x the network's learning rate they keep up with it (3 seeds, with
# min_frequency=2: Avazu AUC 0.682 -> 0.689, Bank 0.792 -> 0.794, Adult and
# Criteo within 0.004 of before, see docs/performance.md).
_LINEAR_LR_SCALE = 10.0
# The tables with one row per code, in code order: embedding_l2 applies to them
_PER_CODE_TABLES = ("embedding.embedding.weight", "linear.weight")
# embedding_dim="auto" keeps FiBiNET's DNN input, 2 * P * d for P field pairs,
# within this many values (the classifier's d = 8 up to 43 fields); wider
# tables get a narrower d, at least _AUTO_MIN_EMBEDDING_DIM. Measured on
# benchmarks/fit_time.py's 100k x 50 table (d = 8: 157 s, 6: 115 s with the
# same held-out AUC, 4: 49 s but 0.013 lower; docs/performance.md).
AUTO_DNN_INPUTS = 15_000
_AUTO_MIN_EMBEDDING_DIM = 4


def auto_embedding_dim(n_fields: int, widest: int) -> int:
    """The width ``embedding_dim="auto"`` gives FiBiNET over ``n_fields`` fields.

    The pair products make the network's cost grow as ``F^2 d``: its first DNN
    layer reads ``2 P d`` values, ``P = F (F - 1) / 2``. ``"auto"`` takes
    ``widest`` (8 for the classifier, 32 for the regressor) unless that puts
    more than ``AUTO_DNN_INPUTS`` values into the DNN, and then the widest
    ``d`` that does not, but never below 4.

    Parameters
    ----------
    n_fields : int
        Number of fields ``F``.
    widest : int
        The width for tables narrow enough.

    Returns
    -------
    int

    Examples
    --------
    >>> auto_embedding_dim(43, 8), auto_embedding_dim(50, 8), auto_embedding_dim(50, 32)
    (8, 6, 6)
    >>> auto_embedding_dim(22, 32), auto_embedding_dim(23, 32)
    (32, 29)
    """
    n_pairs = n_fields * (n_fields - 1) // 2
    if n_pairs == 0:
        return widest
    fits = AUTO_DNN_INPUTS // (2 * n_pairs)
    return int(min(widest, max(_AUTO_MIN_EMBEDDING_DIM, fits)))


class BaseFiBiNET(InspectionMixin, ValidationMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the FiBiNET estimators; use a subclass.

    Subclasses define ``__init__`` with every parameter spelt out (they call
    this one with the shared ones) and the task hooks marked abstract below.
    """

    _parameter_constraints: dict = {
        "categorical_features": ["array-like", StrOptions({"auto"}), None],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "hash_buckets": [Interval(Integral, 1, None, closed="left"), dict, None],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "embedding_dim": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "reduction_ratio": [Interval(Integral, 1, None, closed="left")],
        "senet_activation": [StrOptions({"relu", "sigmoid"})],
        "bilinear_type": [StrOptions(set(BILINEAR_TYPES))],
        "shared_bilinear": ["boolean"],
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "linear": ["boolean"],
        "max_cross_cells": [Interval(Integral, 0, None, closed="left")],
        "cross_pairs": [StrOptions({"auto", "all"})],
        "cross_triples": [StrOptions({"auto"}), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "embedding_l2": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "variant": [StrOptions({"fibinet", "fibinet++"})],
        "distributed": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "target_stats": [StrOptions({"auto", "all"}), None],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
    }

    # What the error names when the (adjusted) sample weights sum to zero.
    _weight_name = "sample_weight"
    # With checkpoint_dir, also save every this many training batches (None:
    # after every epoch only); for fits whose epochs are long, e.g. streaming.
    _checkpoint_every_n_batches = None
    # The width embedding_dim="auto" starts from (auto_embedding_dim).
    _AUTO_EMBEDDING_DIM = 8

    @abstractmethod
    def __init__(
        self,
        *,
        categorical_features="auto",
        min_frequency=2,
        hash_buckets=None,
        n_bins=32,
        embedding_dim="auto",
        reduction_ratio=3,
        senet_activation="relu",
        bilinear_type="interaction",
        shared_bilinear=False,
        hidden_layer_sizes=(128, 64),
        dropout=0.1,
        linear=True,
        max_cross_cells=2000,
        cross_pairs="auto",
        cross_triples="auto",
        learning_rate=1e-3,
        weight_decay=0.0,
        embedding_l2=0.03,
        batch_size=512,
        max_epochs=20,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=1,
        tol=1e-4,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
        variant="fibinet",
        distributed=False,
        checkpoint_dir=None,
        target_stats=None,
        precision="auto",
    ):
        self.categorical_features = categorical_features
        self.min_frequency = min_frequency
        self.hash_buckets = hash_buckets
        self.n_bins = n_bins
        self.embedding_dim = embedding_dim
        self.reduction_ratio = reduction_ratio
        self.senet_activation = senet_activation
        self.bilinear_type = bilinear_type
        self.shared_bilinear = shared_bilinear
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.linear = linear
        self.max_cross_cells = max_cross_cells
        self.cross_pairs = cross_pairs
        self.cross_triples = cross_triples
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.embedding_l2 = embedding_l2
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose
        self.variant = variant
        self.distributed = distributed
        self.checkpoint_dir = checkpoint_dir
        self.target_stats = target_stats
        self.precision = precision

    # ------------------------------------------------------------------ input
    # -------------------------------------------------------------- the task
    @abstractmethod
    def _validate_y(self, y):
        """Check ``y``; return it as a 1-d ndarray."""

    @abstractmethod
    def _prepare_targets(self, y, sample_weight: np.ndarray):
        """Learn what the targets need; return the target column and the weights.

        Called once per fit with the validated ``y`` and the checked, unnormalised
        sample weights. Returns ``(target, weight)``, both of shape
        ``(n_samples,)``: the value the loss compares with (a class index, a
        scaled target) and the weight of each row, before normalisation.
        """

    def _target_summary(self, y) -> pd.Series:
        """Summary of one chunk of targets of a streamed fit.

        The summaries of all chunks are summed (aligned on their index) and
        handed to :meth:`_targets_from_stats`.
        """
        raise NotImplementedError

    def _targets_from_stats(self, stats: pd.Series):
        """Learn from summed chunk summaries what ``_prepare_targets`` learns.

        Returns a function mapping one chunk's targets to ``(target, weight)``
        as ``_prepare_targets`` would, weights scaled to mean 1 over all rows.
        """
        raise NotImplementedError

    def _statistics_target(self, target: np.ndarray) -> np.ndarray:
        """What target statistics average, ``(n, k)`` float, from the target
        column ``_prepare_targets`` returned (the regressor's scaled target)."""
        return np.asarray(target, dtype=np.float64)[:, None]  # (n, 1)

    @abstractmethod
    def _n_outputs(self) -> int:
        """Width of the network's output layer."""

    @abstractmethod
    def _task(self) -> str:
        """Name of the training loss, one of ``_skorch.TASKS``."""

    def _stratify(self, target: np.ndarray):
        """Labels to stratify the validation split by, or None."""
        return None

    @abstractmethod
    def _monitor_callbacks(self) -> list:
        """The skorch callbacks that score each epoch and stop early."""

    def _early_stopping(self, monitor: str) -> EarlyStopping:
        return EarlyStopping(
            monitor=monitor,
            patience=self.n_iter_no_change,
            threshold=self.tol,
            threshold_mode="abs",
            load_best=True,
            sink=print if self.verbose else _silent,
        )

    def _after_training(
        self,
        valid_ds: _CodesDataset | None,
        train_ds: _CodesDataset | None = None,
        broadcast=None,
    ) -> None:
        """Learn what needs the trained network: from the validation rows, or
        (where it applies) the training rows without them; ``broadcast(value)``
        returns process 0's float under ``distributed=True`` (None otherwise)."""

    def _loss_input(self, z: torch.Tensor) -> torch.Tensor:
        """Network outputs as the loss of :attr:`feature_importances_` reads them."""
        return z

    @abstractmethod
    def _explain_units(self) -> tuple[float, float]:
        """``(scale, offset)``: explanations are in units of ``offset + scale z``
        for network output ``z``."""

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, groups=None):
        """Fit the encoder and train the network.

        Parameters
        ----------
        X : DataFrame, array-like of shape (n_samples, n_features) or ParquetSource
            Training data; DataFrame columns keep their dtypes. A
            :class:`ParquetSource` streams its rows from Parquet with bounded
            memory and holds the target itself (see :doc:`/big_data`).
        y : array-like of shape (n_samples,), default=None
            Target values: class labels of any type (strings, ints, bools) for
            the classifier, numbers for the regressor. None with a
            :class:`ParquetSource`.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss (not with a :class:`ParquetSource`).
        groups : array-like of shape (n_samples,), default=None
            Group labels of rows whose targets are related (the candidates of
            one impression, the events of one session): the early-stopping
            rows are then held out by whole groups, and target statistics are
            cross-fitted by whole groups, so no training row's statistic counts
            the other rows of its group. Pass the groups you split by (say,
            for ``GroupKFold``): on the MIND click table, split by impression,
            hashed row folds cost ``target_stats="auto"`` 0.016 ROC AUC and
            impression folds won it back (docs/performance.md). Not with a
            :class:`ParquetSource`.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if isinstance(X, ParquetSource):
            if groups is not None:
                raise ValueError(
                    "groups is not supported with a ParquetSource; fit a "
                    "DataFrame to hold out and cross-fit by groups."
                )
            source = StreamSource(X, y, sample_weight)
        else:
            source = FrameSource(X, y, sample_weight, groups)
        return train(self, source)

    def __sklearn_is_fitted__(self) -> bool:
        # a fit sets its state only once it has completed (``_engine._commit``)
        return hasattr(self, "n_iter_")

    def _build_net(
        self,
        *,
        encoder,
        hidden,
        n_outputs,
        cross_cells,
        device,
        train_split,
        callbacks,
        seed,
        code_counts=None,
        cross_pairs=None,
    ):
        """The only place that speaks skorch's prefixed parameter names.

        ``code_counts`` ``(n_codes,)``: how often each code occurs in the
        training rows, for ``embedding_l2``; None (a model read back for
        prediction) leaves the rows unpenalised. ``cross_pairs``: the pairs of
        fields to cross among those within ``cross_cells`` (None: all).
        """
        module_class = FiBiNetPP if self.variant == "fibinet++" else FiBiNET
        module = {"module": module_class}
        if self.variant == "fibinet":
            module |= {
                "module__senet_activation": self.senet_activation,
                "module__bilinear_type": self.bilinear_type,
                "module__shared_bilinear": self.shared_bilinear,
                "module__linear": self.linear,
                "module__max_cross_cells": cross_cells,
                "module__cross_pairs": None
                if cross_pairs is None
                else [[int(i), int(j)] for i, j in cross_pairs],
                "module__first_layer_dtype": first_layer_dtype(self.precision, device),
            }
        return _FiBiNETNet(
            **module,
            module__cardinalities=list(encoder.cardinalities_),
            module__numeric_bins=encoder.numeric_bins(),
            module__d_embedding=self._embedding_width(len(encoder.cardinalities_)),
            module__reduction_ratio=self.reduction_ratio,
            module__d_hidden=hidden,
            module__dropout=float(self.dropout),
            module__n_outputs=n_outputs,
            module__sparse=True,
            criterion=torch.nn.BCEWithLogitsLoss,  # unused: get_loss is weighted
            optimizer=SparseDenseAdamW,
            optimizer__weight_decay=self.weight_decay,
            optimizer__fused=device.type in ("cpu", "cuda"),
            # the network names its sparse tables; the linear part learns faster
            optimizer__param_groups=[
                (name, self._sparse_group(name, code_counts))
                for name in module_class.SPARSE_PARAMETERS
            ],
            lr=self.learning_rate,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            callbacks=callbacks,
            predict_nonlinearity=None,
            device=str(device),
            verbose=int(self.verbose),
            shuffle_seed=seed,
            predict_batch_size=_PREDICT_BATCH_SIZE,
            task=self._task(),
        )

    def _embedding_width(self, n_fields: int) -> int:
        """The embedding width ``d`` the network is built with (see
        :func:`auto_embedding_dim` for ``embedding_dim="auto"``)."""
        if self.embedding_dim != "auto":
            return int(self.embedding_dim)
        if self.variant != "fibinet":
            return self._AUTO_EMBEDDING_DIM
        return auto_embedding_dim(n_fields, self._AUTO_EMBEDDING_DIM)

    def _sparse_group(self, name: str, code_counts) -> dict:
        """Optimizer options of the sparse table ``name``."""
        group = {"sparse": True}
        if name == "linear.weight":
            group["lr"] = _LINEAR_LR_SCALE * self.learning_rate
        if name in _PER_CODE_TABLES and code_counts is not None and self.embedding_l2:
            group["row_l2"] = float(self.embedding_l2)
            group["row_scale"] = 1.0 / code_counts.to(torch.float32).clamp(min=1)
        return group

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.non_deterministic = str(self.device).startswith("cuda")
        return tags
