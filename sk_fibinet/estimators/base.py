"""BaseFiBiNET: what the FiBiNET classifier and regressor share.

Parameters, their validation, the fit structure (validate -> encode -> split ->
build the skorch net -> train -> inspect) and the questions the network answers
about itself. A subclass supplies only what depends on the task: how targets
become the target column of the training tensor, the loss, how many outputs the
network has, what early stopping watches and how outputs become predictions, as
scikit-learn's ``BaseHistGradientBoosting`` does for its two estimators.

Over 500 lines because it is the estimators' shared core: parameter
validation, the in-memory fit with its data-parallel and checkpoint hooks,
the explanations and prediction; the task-specific parts are in the
subclasses and the engines (skorch glue, streaming, DDP, checkpoints,
partial_fit) in modules of their own.
"""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import EarlyStopping

from ..data.features import with_statistics
from ..data.frame_source import FrameSource
from ..data.parquet import ParquetSource
from ..data.stream_predict import forward_source, predict_to_parquet
from ..data.stream_source import StreamSource
from ..nn.fibinet import BILINEAR_TYPES, FiBiNET
from ..nn.fibinetpp import FiBiNetPP
from ..nn.optim import SparseDenseAdamW
from ..preprocessing.polars_input import is_polars_frame, polars_to_pandas
from ..training.engine import train
from ..training.explain import (
    N_PERMUTATIONS,
    Replacer,
    ablation_losses,
    coalitions,
    importance_rows,
    normalised_importances,
    shapley_values,
)
from ..training.net import (
    _PREDICT_BATCH_SIZE,
    _BatchIterator,
    _CodesDataset,
    _eval_mode,
    _FiBiNETNet,
    _row_losses,
    _silent,
)

# Rows per chunk for field weights and interaction strengths, which build
# (chunk, pairs, hidden) tensors: 400 MB at 1,024 rows, 40 fields, 128 hidden.
_INSPECT_BATCH_SIZE = 1024
# The first-order weights start at 0 and each sees only the rows with its code;
# at 10x the network's learning rate they keep up with it (3 seeds, with
# min_frequency=2: Avazu AUC 0.682 -> 0.689, Bank 0.792 -> 0.794, Adult and
# Criteo within 0.004 of before, see docs/performance.md).
_LINEAR_LR_SCALE = 10.0
# The tables with one row per code, in code order: embedding_l2 applies to them
_PER_CODE_TABLES = ("embedding.embedding.weight", "linear.weight")


def _check_device(device):
    """Return a usable ``torch.device`` or raise a ValueError that says why."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0', "
            f"got {device!r} ({exc})."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
    elif dev.type == "mps":
        raise ValueError(
            f"device={device!r} is not supported: the embedding tables are trained "
            "with sparse gradients, which PyTorch does not support on MPS (Apple "
            "silicon); use device='cpu'."
        )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}.")
    return dev


class BaseFiBiNET(BaseEstimator, metaclass=ABCMeta):
    """Base class of the FiBiNET estimators; use a subclass.

    Subclasses define ``__init__`` with every parameter spelt out (they call
    this one with the shared ones) and the task hooks marked abstract below.
    """

    _parameter_constraints: dict = {
        "categorical_features": ["array-like", StrOptions({"auto"}), None],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "hash_buckets": [Interval(Integral, 1, None, closed="left"), dict, None],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
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
        "target_stats": [StrOptions({"auto"}), None],
    }

    # What the error names when the (adjusted) sample weights sum to zero.
    _weight_name = "sample_weight"
    # With checkpoint_dir, also save every this many training batches (None:
    # after every epoch only); for fits whose epochs are long, e.g. streaming.
    _checkpoint_every_n_batches = None

    @abstractmethod
    def __init__(
        self,
        *,
        categorical_features="auto",
        min_frequency=2,
        hash_buckets=None,
        n_bins=32,
        embedding_dim=8,
        reduction_ratio=3,
        senet_activation="relu",
        bilinear_type="interaction",
        shared_bilinear=False,
        hidden_layer_sizes=(128, 64),
        dropout=0.1,
        linear=True,
        max_cross_cells=2000,
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

    # ------------------------------------------------------------------ input
    def _validate_X(self, X, *, reset: bool):
        """Check X, set or compare feature names, return a DataFrame or ndarray."""
        if is_polars_frame(X):
            X = polars_to_pandas(X)
        if isinstance(X, pd.DataFrame):
            duplicated = X.columns[X.columns.duplicated()].unique().tolist()
            if duplicated:
                raise ValueError(f"X has duplicate column names: {duplicated}.")
            if not reset and hasattr(self, "feature_names_in_"):
                X = self._align_columns(X)
            if reset and X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                    "of 1 is required."
                )
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={X.shape}) while a "
                    "minimum of 1 is required."
                )
            return X
        if reset:
            numeric_only = self.categorical_features is None or isinstance(
                self.categorical_features, str
            )
        else:
            numeric_only = not self.encoder_.categorical_mask_.any()
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=np.float64 if numeric_only else None,
            ensure_all_finite=False,
            ensure_min_samples=1 if reset else 0,
        )

    def _align_columns(self, X: pd.DataFrame) -> pd.DataFrame:
        """Match DataFrame columns by name to those seen in fit."""
        expected = list(self.feature_names_in_)
        got = [str(c) for c in X.columns]
        missing = [c for c in expected if c not in set(got)]
        extra = [c for c in got if c not in set(expected)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise ValueError(
                "X does not have the columns seen in fit: " + " and ".join(parts) + "."
            )
        if got != expected:
            X = X[expected]
        return X

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
    def _hidden_sizes(self) -> tuple:
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        if not all(isinstance(h, Integral) and not isinstance(h, bool) for h in hidden):
            raise TypeError(
                "hidden_layer_sizes must be an int or a tuple of ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        if any(h < 1 for h in hidden):  # ints, checked above
            raise ValueError(
                "hidden_layer_sizes must hold positive ints, got "
                f"{self.hidden_layer_sizes!r}."
            )
        return hidden

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

    def _device(self) -> torch.device:
        return _check_device(self.device)

    def __sklearn_is_fitted__(self) -> bool:
        # a fit sets its state only once it has completed (``_engine._commit``)
        return hasattr(self, "n_iter_")

    def _learn_explanations(
        self, train_ds, valid_ds, seed: int, counts, *, n_train: int, n_epochs: int
    ) -> None:
        """``feature_importances_`` and ``explain_base_value_`` (training/explain.py).

        Field ablation on the validation rows (the training rows without them),
        a random subset of at most :func:`~._explain.importance_rows` rows;
        ``counts`` ``(n_codes,)``: the training codes' counts, which the field
        references average over; ``n_train`` rows trained ``n_epochs`` epochs
        in this call size the budget of rows.
        """
        n_fields = len(self.encoder_.cardinalities_)
        self._code_counts = counts.to(torch.float64)  # (R,)
        replacer = self._replacer()
        rows = train_ds if valid_ds is None else valid_ds
        n_rows = importance_rows(len(rows), n_train, n_epochs, n_fields)
        if n_rows < len(rows):
            generator = torch.Generator().manual_seed(seed)
            pick = torch.randperm(len(rows), generator=generator)[:n_rows]  # (m,)
            pick = pick.sort().values  # (m,)
            rows = _CodesDataset(rows.codes[pick], rows.target[pick])
        task = self._task()

        def row_loss(z, target):  # (batch, n_out), (batch, 2) -> (batch,)
            losses = _row_losses(self._loss_input(z), target[:, 0], task)
            return losses * target[:, 1]  # (batch,)

        base, losses = ablation_losses(replacer, rows, row_loss)
        importances = normalised_importances(base, losses)  # (F,)
        self.feature_importances_ = self._to_columns(importances)  # (n_features,)
        scale, offset = self._explain_units()
        value = offset + scale * replacer.base(n_fields).numpy()  # (n_outputs,)
        self.explain_base_value_ = float(value[0]) if value.size == 1 else value

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
    ):
        """The only place that speaks skorch's prefixed parameter names.

        ``code_counts`` ``(n_codes,)``: how often each code occurs in the
        training rows, for ``embedding_l2``; None (a model read back for
        prediction) leaves the rows unpenalised.
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
            }
        return _FiBiNETNet(
            **module,
            module__cardinalities=list(encoder.cardinalities_),
            module__numeric_bins=encoder.numeric_bins(),
            module__d_embedding=self.embedding_dim,
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

    def _sparse_group(self, name: str, code_counts) -> dict:
        """Optimizer options of the sparse table ``name``."""
        group = {"sparse": True}
        if name == "linear.weight":
            group["lr"] = _LINEAR_LR_SCALE * self.learning_rate
        if name in _PER_CODE_TABLES and code_counts is not None and self.embedding_l2:
            group["row_l2"] = float(self.embedding_l2)
            group["row_scale"] = 1.0 / code_counts.to(torch.float32).clamp(min=1)
        return group

    # ---------------------------------------------------------------- predict
    def _encode(self, X) -> _CodesDataset:
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        statistics = getattr(self, "target_stats_", None)
        if statistics is not None:  # of the training rows
            X = with_statistics(
                X, statistics.feature_names_, statistics.transform(X).to_numpy()
            )
        return _CodesDataset(torch.from_numpy(self.encoder_.transform(X)))

    def _to_columns(self, values: np.ndarray) -> np.ndarray:
        """Per-field values ``(..., F)`` summed into the input columns
        ``(..., n_features_in_)``: a target statistic counts for its column, a
        pair's statistic half for each of its two columns."""
        statistics = getattr(self, "target_stats_", None)
        if statistics is None:
            return values
        names = list(self.encoder_.column_names_)
        n_inputs = len(names) - len(statistics.feature_names_)
        fold = np.zeros((len(names), n_inputs))  # (F, n_features)
        fold[np.arange(n_inputs), np.arange(n_inputs)] = 1.0
        for j, name in enumerate(statistics.feature_names_, start=n_inputs):
            sources = statistics.sources_[name]
            for source in sources:
                fold[j, names.index(source)] += 1.0 / len(sources)
        return values @ fold  # (..., n_features)

    def _forward(self, X) -> torch.Tensor:
        """The network's raw output for ``X``, ``(n_samples, n_outputs)``."""
        if isinstance(X, ParquetSource):
            return forward_source(self, X)
        dataset = self._encode(X)
        if len(dataset) == 0:
            return torch.empty(0, self._n_outputs())  # (0, n_outputs)
        return self.net_.forward(dataset, training=False)  # (n, n_outputs)

    @torch.no_grad()
    def _field_weights(self, dataset: _CodesDataset, mean: bool = False) -> np.ndarray:
        """SENET excitation weights ``A``: every row ``(n, F)``, or their mean ``(F,)``.

        ``mean=True`` sums chunk by chunk, so no ``(n, F)`` array is built.
        """
        module = self.net_.module_
        device = self.net_.device
        n_fields = len(self.encoder_.cardinalities_)
        out = [torch.empty(0, n_fields)]  # (0, F)
        total = torch.zeros(n_fields, dtype=torch.float64)  # (F,)
        with _eval_mode(module):
            for codes, _ in _BatchIterator(dataset, _INSPECT_BATCH_SIZE, None):
                a = module.field_weights(codes.to(device)).cpu()  # (batch, F)
                if mean:
                    total += a.sum(0, dtype=torch.float64)  # (F,)
                else:
                    out.append(a)
        if mean:
            return (total / max(len(dataset), 1)).numpy()  # (F,)
        return torch.cat(out).to(torch.float64).numpy()  # (n, F)

    def predict_to_parquet(self, source, path, *, method="predict", columns=None):
        """Write predictions for the rows of a Parquet source to a Parquet file.

        Reads, predicts and writes one batch of rows at a time, so memory stays
        bounded whatever the size of the source; the rows keep the source's
        order.

        Parameters
        ----------
        source : ParquetSource
            Rows to predict; its feature columns must be those seen in ``fit``.
        path : str or path-like
            Parquet file to write (replaced if it exists).
        method : {"predict", "predict_proba"}, default="predict"
            ``"predict"`` writes one column ``prediction``; ``"predict_proba"``
            (classifier) one column ``proba_<class>`` per class.
        columns : list of str, default=None
            Source columns copied in front of the predictions (an id column,
            say), read along with the features.

        Returns
        -------
        path : str
            The file written.
        """
        return predict_to_parquet(self, source, path, method=method, columns=columns)

    def _column_names(self) -> list[str]:
        return list(self.encoder_.column_names_)

    def _replacer(self) -> Replacer:
        """The network with fields replaceable by their references."""
        if not hasattr(self, "_code_counts"):
            raise AttributeError(
                "This model has no code frequencies to build field references "
                "from (saved by an sk_fibinet version without explanations); "
                "refit it to use explain()."
            )
        return Replacer(self.net_.module_, self._code_counts, self.net_.device)

    def _explain(self, X, output: int, sign: float = 1.0) -> pd.DataFrame:
        """Shapley values of the fields for output column ``output``, in the
        units of :meth:`_explain_units` (times ``sign``)."""
        dataset = self._encode(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        n_fields = len(self.encoder_.cardinalities_)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        kept, weights = coalitions(n_fields, N_PERMUTATIONS, seed)
        phi = shapley_values(self._replacer(), dataset.codes, output, kept, weights)
        scale, _ = self._explain_units()
        columns = self._column_names()
        if getattr(self, "target_stats_", None) is not None:
            phi = self._to_columns(phi)  # (n, n_features)
            columns = columns[: phi.shape[1]]
        return pd.DataFrame(sign * scale * phi, index=index, columns=columns)

    def field_weights(self, X) -> pd.DataFrame:
        """Per-row SENET field weights.

        The SENET layer squeezes every field embedding to its mean and maps the
        ``F`` means to one non-negative weight per field; the network multiplies
        each field's embedding by its weight before the second bilinear branch.
        These are the gate's values (their mean over the rows passed to ``fit``
        is ``senet_weights_``), not a measure of importance: see
        ``feature_importances_`` and :meth:`explain` for that.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        weights : DataFrame of shape (n_samples, n_features)
            One column per input column, indexed like ``X`` (a RangeIndex for
            arrays).
        """
        dataset = self._encode(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(
            self._field_weights(dataset), index=index, columns=self._column_names()
        )

    @torch.no_grad()
    def interaction_strengths(self, X) -> pd.DataFrame:
        """How strongly every pair of fields feeds the DNN, averaged over ``X``.

        For pair ``(i, j)`` the bilinear layers produce ``p_ij`` (plain
        embeddings) and ``q_ij`` (SENET embeddings), each of width ``d``. Their
        contribution to the first hidden layer is ``W_p,ij p_ij + W_q,ij q_ij``,
        where ``W_p,ij`` and ``W_q,ij`` are the columns of the first DNN layer
        that read them. The strength of the pair is the L2 norm of that
        contribution, averaged over the rows of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        strengths : DataFrame of shape (n_features, n_features)
            Symmetric, indexed and labelled by input column; the diagonal is 0.
        """
        dataset = self._encode(X)
        module = self.net_.module_
        names = self._column_names()
        n_fields = len(names)
        n_pairs = n_fields * (n_fields - 1) // 2
        strengths = np.zeros(n_pairs)
        if n_pairs:
            device = self.net_.device
            with _eval_mode(module):
                for codes, _ in _BatchIterator(dataset, _INSPECT_BATCH_SIZE, None):
                    c = module.pair_strengths(codes.to(device))  # (batch, P)
                    strengths += c.sum(0).cpu().double().numpy()  # (P,)
            strengths /= max(len(dataset), 1)
        matrix = np.zeros((n_fields, n_fields))
        left, right = np.triu_indices(n_fields, k=1)
        matrix[left, right] = strengths
        matrix[right, left] = strengths
        return pd.DataFrame(matrix, index=names, columns=names)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.non_deterministic = str(self.device).startswith("cuda")
        return tags
