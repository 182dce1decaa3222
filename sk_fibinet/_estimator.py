"""FiBiNETClassifier: the one place where scikit-learn and skorch meet."""

from __future__ import annotations

import math
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.utils import assert_all_finite, check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.helper import predefined_split

from ._encoding import FieldEncoder
from ._fibinetpp import FiBiNetPP
from ._malloc import tune_malloc
from ._network import BILINEAR_TYPES, FiBiNET
from ._optim import SparseDenseAdamW

# Rows per prediction chunk. The pair products are computed a cache-sized block
# at a time whatever the chunk, so larger chunks only amortise per-chunk costs:
# predict_proba on 20k Criteo-shaped rows, default network, ran at 47.7k /
# 51.5k / 50.7k rows/s with chunks of 1,024 / 2,048 / 4,096 (medians of 5).
_PREDICT_BATCH_SIZE = 2048
# Rows per chunk for field weights and interaction strengths, which build
# (chunk, pairs, hidden) tensors: 400 MB at 1,024 rows, 40 fields, 128 hidden.
_INSPECT_BATCH_SIZE = 1024
# The first-order weights start at 0 and each sees only the rows with its code;
# at 10x the network's learning rate they keep up with it (3 seeds, with
# min_frequency=2: Avazu AUC 0.682 -> 0.689, Bank 0.792 -> 0.794, Adult and
# Criteo within 0.004 of before, see docs/performance.md).
_LINEAR_LR_SCALE = 10.0
# A pair of fields is crossed only if its combinations could get this many
# training rows each on average; below that the weights would memorise rows.
_CROSS_MIN_ROWS_PER_CELL = 4
# With temperature calibration, early stopping watches the calibrated
# validation loss (False: the raw one, for comparisons).
_STOP_ON_CALIBRATED_LOSS = True


class _CodesDataset(torch.utils.data.Dataset):
    """Pre-encoded field codes (and targets) held as whole tensors."""

    def __init__(self, codes: torch.Tensor, target: torch.Tensor | None = None):
        self.codes = codes  # (n, F) int64
        self.target = target  # (n, 2) float32: class index, sample weight

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __getitem__(self, i):
        y = None if self.target is None else self.target[i]
        return self.codes[i], y


class _BatchIterator:
    """Yield whole batches by slicing tensors, never row by row."""

    def __init__(self, dataset: _CodesDataset, batch_size: int, seed: int | None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed  # None: keep the order
        # skorch asks for the training iterator once per fit and iterates it
        # once per epoch: each pass draws the next permutation.
        self.n_passes = 0

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        codes, target = self.dataset.codes, self.dataset.target
        n = codes.shape[0]
        if self.seed is None:
            for start in range(0, n, self.batch_size):
                stop = start + self.batch_size
                yield codes[start:stop], None if target is None else target[start:stop]
            return
        generator = torch.Generator().manual_seed(self.seed + self.n_passes)
        self.n_passes += 1
        order = torch.randperm(n, generator=generator)  # (n,)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]  # (batch,)
            yield codes[idx], None if target is None else target[idx]


class _ToCuda:
    """Batches of another iterator copied to a CUDA device asynchronously.

    Each batch is pinned (page-locked) on the host and copied with
    ``non_blocking=True``, so the copy of the next batch overlaps the GPU work
    of the previous one; skorch's own move to the device is then a no-op.
    """

    def __init__(self, iterator, device: torch.device):
        self.iterator = iterator
        self.device = device

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self):
        for batch in self.iterator:
            yield tuple(
                None if t is None else t.pin_memory().to(self.device, non_blocking=True)
                for t in batch
            )


def _rng_devices() -> list[int]:
    """Every CUDA device, for ``fork_rng``: ``torch.manual_seed`` reseeds them all."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


class _FiBiNETNet(NeuralNet):
    """skorch net fed with pre-encoded tensors, with a weighted loss.

    The target tensor carries the class index and the sample weight per row, so
    weights reach the loss without touching the module's signature.
    """

    def __init__(
        self, *args, shuffle_seed=0, predict_batch_size=_PREDICT_BATCH_SIZE, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.shuffle_seed = shuffle_seed
        self.predict_batch_size = predict_batch_size

    def notify(self, method_name, **cb_kwargs):
        # skorch calls PrintLog last, so an EarlyStopping that stops training
        # (by raising KeyboardInterrupt in on_epoch_end) used to swallow the
        # printed row of the epoch it stopped after: run every callback, then stop.
        if method_name != "on_epoch_end":
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        stop = None
        for _, cb in self.callbacks_:
            try:
                getattr(cb, method_name)(self, **cb_kwargs)
            except KeyboardInterrupt as exc:
                stop = exc
        if stop is not None:
            raise stop

    def evaluation_step(self, batch, training=False):
        # Prediction under inference_mode rather than skorch's no_grad: the
        # blocked pair products are many small ops, and inference mode skips
        # their autograd bookkeeping (version counters, view tracking).
        if training:
            return super().evaluation_step(batch, training=True)
        self.check_is_fitted()
        with torch.inference_mode():
            self._set_training(False)
            return self.infer(batch[0])

    def get_dataset(self, X, y=None):
        if isinstance(X, _CodesDataset):
            return X
        return _CodesDataset(torch.as_tensor(X, dtype=torch.int64))

    def get_iterator(self, dataset, training=False):
        if training:
            # Called once per fit (skorch's fit_loop builds the iterator before
            # the epoch loop): the iterator itself moves to a fresh, reproducible
            # permutation on every pass, starting after the epochs already run
            # (a warm start continues the sequence).
            seed = self.shuffle_seed + len(self.history)
            iterator = _BatchIterator(dataset, self.batch_size, seed)
        else:
            iterator = _BatchIterator(dataset, self.predict_batch_size, None)
        device = torch.device(self.device)
        return _ToCuda(iterator, device) if device.type == "cuda" else iterator

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = y_true.to(y_pred.device)  # (batch, 2)
        label, weight = y_true[:, 0], y_true[:, 1]  # (batch,), (batch,)
        return (_row_losses(y_pred, label) * weight).mean()


def _row_losses(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Unreduced log loss per row: sigmoid for one logit, softmax otherwise."""
    if logits.shape[1] == 1:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, 0], label.to(logits.dtype), reduction="none"
        )  # (n,)
    return torch.nn.functional.cross_entropy(
        logits, label.long(), reduction="none"
    )  # (n,)


class _ValidScore(Callback):
    """Record validation ROC AUC and the calibrated log loss after every epoch.

    Uses the logits of skorch's own validation pass, so the validation rows are
    not run through the network a second time. ``valid_auc`` is the ROC AUC
    (binary) or the one-vs-rest macro AUC; ``valid_loss_calibrated`` is the
    weighted log loss after dividing the logits by the temperature that
    minimises it (``valid_temperature``), the probabilities the estimator
    would return had training stopped at this epoch. A network that keeps
    ranking better while it grows over-confident lowers the calibrated loss
    while the raw ``valid_loss`` rises; early stopping watches the former.
    """

    def __init__(self, calibrate: bool = True):
        self.calibrate = calibrate

    def on_epoch_begin(self, net, **kwargs):
        self.logits_, self.targets_ = [], []

    def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
        if not training and y_pred is not None:
            # kept on the device: one copy to the host per epoch, not per batch
            self.logits_.append(y_pred.detach())  # (batch, n_outputs)
            self.targets_.append(batch[1])  # (batch, 2): class index, weight

    def on_epoch_end(self, net, **kwargs):
        if not self.logits_:
            return
        logits = torch.cat(self.logits_).cpu()  # (n_valid, n_outputs)
        target = torch.cat(self.targets_).cpu()  # (n_valid, 2)
        self.logits_, self.targets_ = [], []
        if self.calibrate:
            temperature, loss = _fit_temperature(logits, target, return_loss=True)
            net.history.record("valid_temperature", temperature)
            net.history.record("valid_loss_calibrated", loss)
        y = target[:, 0].long().numpy()
        proba = _logits_to_proba(logits)
        n_classes = proba.shape[1]
        if np.unique(y).size < 2:
            return
        if n_classes == 2:
            score = roc_auc_score(y, proba[:, 1])
        elif np.unique(y).size == n_classes:
            score = roc_auc_score(y, proba, multi_class="ovr")
        else:
            return
        net.history.record("valid_auc", float(score))


class _StopOnNonFinite(Callback):
    """Stop at once with advice when the training loss becomes NaN or inf.

    Reads the batch loss skorch has already recorded as a Python float, so the
    check adds no device synchronisation of its own.
    """

    def on_batch_end(self, net, training=None, **kwargs):
        if not training:
            return
        loss = net.history[-1, "batches", -1].get("train_loss")
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(
                "Training diverged: the loss became "
                f"{loss} at epoch {len(net.history)}. Lower learning_rate, "
                "raise weight_decay, or check sample_weight / class_weight for "
                "extreme values."
            )


@contextmanager
def _eval_mode(module: torch.nn.Module):
    """Evaluation mode for the block, the previous mode restored after it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _silent(*args, **kwargs):
    """A picklable sink that prints nothing."""


def _logits_to_proba(logits: torch.Tensor) -> np.ndarray:
    """Logits (n, 1) or (n, K) to float64 probabilities (n, 2) or (n, K)."""
    logits = logits.detach().to("cpu", torch.float64)  # (n, n_outputs)
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])  # (n,)
        return torch.stack([1.0 - p1, p1], dim=1).numpy()  # (n, 2)
    return torch.softmax(logits, dim=1).numpy()  # (n, K)


def _fit_temperature(
    logits: torch.Tensor, target: torch.Tensor, return_loss: bool = False
):
    """Temperature minimising the weighted log loss of ``logits / T``.

    With ``return_loss``, also return that minimum loss (the loss at ``T = 1``
    when no temperature improves on it).
    """
    from scipy.optimize import minimize_scalar

    z = logits.detach().to("cpu", torch.float64)  # (n, n_outputs)
    label, weight = target[:, 0].double(), target[:, 1].double()  # (n,), (n,)

    def loss(log_t: float) -> float:
        losses = _row_losses(z / np.exp(log_t), label)  # (n,)
        return float((losses * weight).sum() / weight.sum())

    result = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded")
    plain = loss(0.0)
    if not np.isfinite(result.fun) or result.fun > plain:
        temperature, best = 1.0, plain
    else:
        temperature, best = float(np.exp(result.x)), float(result.fun)
    return (temperature, best) if return_loss else temperature


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


class FiBiNETClassifier(ClassifierMixin, BaseEstimator):
    """FiBiNET classifier for tabular and click-through-rate data.

    Every column becomes an embedding field: categorical columns through a
    vocabulary learned in ``fit`` (missing, rare and unseen values have reserved
    codes), numeric columns through quantile bins (NaN has its own code). The
    network (Huang, Zhang & Zhang, RecSys 2019) re-weights the fields with a
    SENET layer, crosses every pair of fields with bilinear interactions on
    both the plain and the re-weighted embeddings, and feeds both to a DNN.
    Training runs through a skorch net (``net_``).

    Parameters
    ----------
    categorical_features : "auto", None, array-like of bool, int or str, \
            default="auto"
        Which columns are categorical. ``"auto"``: category, string, object and
        bool columns of a DataFrame (a plain array is then all numeric). Also a
        boolean mask, column indices or column names; None for none.
    min_frequency : int, default=2
        Categories seen fewer times in the training data share one code with
        categories never seen in training (so that code is trained, and ids
        seen once do not get an embedding of their own to memorise).
    n_bins : int, default=32
        Maximum number of quantile bins per numeric column: edges at quantiles
        of the values, plus quantiles of the distinct values where a spike of
        one value leaves the budget unused. A column with few distinct values
        keeps them apart instead, one bin each: at most ``n_bins`` of them, or
        at most 255 seen 20 times each on average (ages, counts, amounts from
        a short list), as ``HistGradientBoostingClassifier`` does.
    embedding_dim : int, default=8
        Width ``d`` of every field embedding.
    reduction_ratio : int, default=3
        SENET reduction: the hidden excitation layer has
        ``max(1, n_fields // reduction_ratio)`` units.
    senet_activation : {"relu", "sigmoid"}, default="relu"
        Activation after the second excitation layer.
    bilinear_type : {"all", "each", "interaction"}, default="interaction"
        One shared ``d x d`` matrix, one per field, or one per field pair.
    shared_bilinear : bool, default=False
        Share the bilinear weights between the plain and the SENET branch.
    hidden_layer_sizes : int or tuple of int, default=(128, 64)
        Widths of the DNN's hidden layers; ``()`` for none.
    dropout : float, default=0.1
        Dropout after every hidden layer.
    linear : bool, default=True
        Add the first-order (logistic-regression) part. Its weights start at 0
        and learn at ``10 * learning_rate`` (they are sparse, one per code).
    max_cross_cells : int, default=2000
        With ``linear``, the linear part also crosses every pair of fields with
        at most this many code combinations (and, on average, at least 4
        training rows per combination): each combination gets a weight of its
        own, as a crossed feature in the wide part of Wide & Deep. Pairs of
        small fields (month x day of month, device type x banner position) are
        where a table of rates beats the low-rank bilinear products; the
        weights start at 0 and learn at ``learning_rate``. 0 turns crosses off.
    learning_rate : float, default=1e-3
        Learning rate of the optimizer: AdamW for the dense weights, lazy Adam
        (only the rows a batch touches) for the embedding tables.
    weight_decay : float, default=0.0
        Decoupled (AdamW) weight decay of the dense weights, the coarse tables
        shared by neighbouring numeric bins included; the code embedding table
        and the linear part (sparse, lazy Adam) are not decayed.
    batch_size : int, default=512
        Training mini-batch size; batches are reshuffled every epoch.
    max_epochs : int, default=20
        Maximum number of passes over the training data.
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the data and stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs,
        restoring the best epoch. ``"auto"``: on from 1,000 samples (a network
        overfits small data within a few epochs).
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping (stratified).
    n_iter_no_change : int, default=1
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Minimum decrease of the validation loss that counts as improvement.
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss, multiplied with ``sample_weight``.
    device : str, default="cpu"
        Torch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``. ``"mps"`` is
        refused: PyTorch has no sparse gradients on MPS.
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks added to the net.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout and the validation
        split. Same seed and data give identical probabilities (on CPU).
    verbose : int, default=0
        0 prints nothing; 1 prints a table row per epoch (training loss,
        validation loss and ROC AUC when early stopping holds data out, time);
        2 adds a progress bar within each epoch (notebook-aware).
    calibration : "temperature" or None, default="temperature"
        With early stopping, divide the logits by one temperature fitted on the
        validation split after training (minimum weighted log loss; Guo et al.
        2017). It sharpens or softens the probabilities; ``predict`` is
        unchanged and, for binary targets, so is ROC AUC (with more classes the
        softmax of scaled logits can reorder rows within a class's column). None,
        or no early stopping: no scaling. With calibration, early stopping also
        watches the validation loss after a temperature fitted on each epoch's
        validation logits, so a network that still ranks better while it grows
        over-confident is not stopped early.
    variant : {"fibinet", "fibinet++"}, default="fibinet"
        The network. ``"fibinet"``: FiBiNET (Huang, Zhang & Zhang 2019) as
        described above. ``"fibinet++"``: FiBiNet++ (Zhang, Zheng & Zhang
        2022): embeddings normalised (BatchNorm for categorical fields,
        LayerNorm per numeric field), Bi-Linear+ (one shared ``d x d`` matrix,
        one inner product per pair, compressed by a linear layer) and SENet+
        (bit-wise re-weighting with a skip connection), concatenated into the
        DNN; about 15x fewer non-embedding weights. ``senet_activation``,
        ``bilinear_type``, ``shared_bilinear``, ``linear`` and
        ``max_cross_cells`` apply to ``"fibinet"`` only (FiBiNet++ has no
        linear part).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, when ``X`` was a DataFrame with string column names.
    n_iter_ : int
        Number of epochs run.
    temperature_ : float
        Temperature the logits are divided by (1.0 without calibration).
    feature_importances_ : ndarray of shape (`n_features_in_`,)
        Mean SENET excitation weight of each field (the factor the SENET layer
        multiplies its embedding by), averaged over all rows passed to ``fit``
        (the validation rows included) with the final weights, then divided by
        the sum over fields so the values add up to 1. Non-negative, in
        ``feature_names_in_`` order. It is a gate value, describing what the
        SENET layer does, not a measure of which columns carry signal: the plain
        embedding branch and the linear part ignore it, and noise columns can
        rank high (use ``sklearn.inspection.permutation_importance`` for that).
    encoder_ : FieldEncoder
        Fitted column-to-field encoder.
    net_ : skorch.NeuralNet
        Fitted skorch net; ``net_.module_`` is the torch module and
        ``net_.history`` the per-epoch history.

    Examples
    --------
    >>> from sk_fibinet import FiBiNETClassifier
    >>> from sk_fibinet.datasets import load_adult
    >>> X, y = load_adult(return_X_y=True, as_frame=True)
    >>> clf = FiBiNETClassifier(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> clf.predict_proba(X.head(2)).shape  # doctest: +SKIP
    (2, 2)
    """

    _parameter_constraints: dict = {
        "categorical_features": ["array-like", StrOptions({"auto"}), None],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
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
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [str, torch.device],
        "callbacks": [list, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "calibration": [StrOptions({"temperature"}), None],
        "variant": [StrOptions({"fibinet", "fibinet++"})],
    }

    def __init__(
        self,
        *,
        categorical_features="auto",
        min_frequency=2,
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
        batch_size=512,
        max_epochs=20,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=1,
        tol=1e-4,
        class_weight=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
        calibration="temperature",
        variant="fibinet",
    ):
        self.categorical_features = categorical_features
        self.min_frequency = min_frequency
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
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.device = device
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose
        self.calibration = calibration
        self.variant = variant

    # ------------------------------------------------------------------ input
    def _validate_X(self, X, *, reset: bool):
        """Check X, set or compare feature names, return a DataFrame or ndarray."""
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

    def _validate_y(self, y):
        y = column_or_1d(y, warn=True)
        if y.dtype.kind == "f":
            assert_all_finite(y, input_name="y")
        elif y.dtype.kind == "O" or isinstance(y.dtype, pd.StringDtype):
            if pd.isna(y).any():
                raise ValueError("Input y contains missing values (None or NaN).")
            kinds = {
                "number"
                if isinstance(v, Real) and not isinstance(v, bool)
                else type(v).__name__
                for v in y
            }
            if len(kinds) > 1:
                raise TypeError(
                    f"y mixes label types {sorted(kinds)}; use labels of one type."
                )
        if y.shape[0] == 0:
            raise ValueError("y is empty: found 0 samples.")
        check_classification_targets(y)
        return y

    # -------------------------------------------------------------------- fit
    def fit(self, X, y, sample_weight=None):
        """Fit the encoder and train the network.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Training data; DataFrame columns keep their dtypes.
        y : array-like of shape (n_samples,)
            Target labels of any type (strings, ints, bools).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : FiBiNETClassifier
            Fitted estimator.
        """
        self._validate_params()
        device = _check_device(self.device)
        tune_malloc()
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
        X = self._validate_X(X, reset=True)
        y = self._validate_y(y)
        check_consistent_length(X, y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                "FiBiNETClassifier needs samples of at least 2 classes in the data, "
                f"but the data contains only 1 class: {self.classes_[0]!r}."
            )
        weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        if not weight.sum() > 0:
            raise ValueError("sample_weight (times class_weight) sums to zero.")
        weight = weight / weight.mean()

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))

        self.encoder_ = FieldEncoder(
            categorical_features=self.categorical_features,
            min_frequency=self.min_frequency,
            n_bins=self.n_bins,
        )
        if not isinstance(X, pd.DataFrame) and isinstance(
            self.categorical_features, str
        ):
            self.encoder_.categorical_features = None  # "auto" on an array: numeric
        codes = torch.from_numpy(self.encoder_.fit_transform(X))  # (n, F) int64
        target = torch.from_numpy(
            np.column_stack([y_index, weight]).astype(np.float32)
        )  # (n, 2)

        n_samples = codes.shape[0]
        early = self.early_stopping
        if early == "auto":
            early = n_samples >= 1_000
        callbacks = list(self.callbacks or [])
        train_split = None
        train_ds = _CodesDataset(codes, target)
        valid_ds = None
        if early:
            _, counts = np.unique(y_index, return_counts=True)
            stratify = y_index if counts.min() >= 2 else None
            n_valid = int(np.ceil(self.validation_fraction * n_samples))
            if n_valid < 1 or n_samples - n_valid < 1:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves no "
                    f"training or validation data for {n_samples} samples; use "
                    "early_stopping=False."
                )
            try:
                tr, va = train_test_split(
                    np.arange(n_samples),
                    test_size=self.validation_fraction,
                    stratify=stratify,
                    random_state=seed,
                )
            except ValueError:  # too few samples per class to stratify
                tr, va = train_test_split(
                    np.arange(n_samples),
                    test_size=self.validation_fraction,
                    random_state=seed,
                )
            tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
            train_ds = _CodesDataset(codes[tr], target[tr])
            valid_ds = _CodesDataset(codes[va], target[va])
            train_split = predefined_split(valid_ds)
            calibrate = self.calibration == "temperature"
            callbacks += [
                ("valid_auc", _ValidScore(calibrate=calibrate)),
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor=(
                            "valid_loss_calibrated"
                            if calibrate and _STOP_ON_CALIBRATED_LOSS
                            else "valid_loss"
                        ),
                        patience=self.n_iter_no_change,
                        threshold=self.tol,
                        threshold_mode="abs",
                        load_best=True,
                        sink=print if self.verbose else _silent,
                    ),
                ),
            ]
        callbacks.append(("stop_on_non_finite", _StopOnNonFinite()))
        if self.verbose >= 2:  # a bar within each epoch (tqdm, via skorch)
            callbacks.append(("progress_bar", ProgressBar(postfix_keys=["train_loss"])))

        n_outputs = 1 if self.classes_.size == 2 else self.classes_.size
        cross_cells = 0
        linear = self.linear and self.variant == "fibinet"
        if linear:  # crosses need rows per combination to learn from
            cross_cells = min(
                self.max_cross_cells, len(train_ds) // _CROSS_MIN_ROWS_PER_CELL
            )
        self.net_ = self._build_net(
            encoder=self.encoder_,
            hidden=hidden,
            n_outputs=n_outputs,
            cross_cells=cross_cells,
            device=device,
            train_split=train_split,
            callbacks=callbacks,
            seed=seed,
        )
        # manual_seed reseeds the CPU and every CUDA generator: restore them all
        with torch.random.fork_rng(devices=_rng_devices()):
            torch.manual_seed(seed)
            self.net_.fit(train_ds, None)
        self.n_iter_ = len(self.net_.history)
        self._fill_untrained_rows(train_ds.codes)
        self.temperature_ = 1.0
        if self.calibration == "temperature" and valid_ds is not None:
            self.temperature_ = _fit_temperature(
                self.net_.forward(valid_ds, training=False), valid_ds.target
            )
        mean_weights = self._field_weights(_CodesDataset(codes), mean=True)  # (F,)
        total = mean_weights.sum()
        self.feature_importances_ = (
            mean_weights / total if total > 0 else np.full_like(mean_weights, 0.0)
        )
        return self

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
    ):
        """The only place that speaks skorch's prefixed parameter names."""
        if self.variant == "fibinet++":
            module = {"module": FiBiNetPP}
        else:
            module = {
                "module": FiBiNET,
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
            optimizer__param_groups=[
                ("embedding.embedding.weight", {"sparse": True}),
                (
                    "linear.weight",
                    {"sparse": True, "lr": _LINEAR_LR_SCALE * self.learning_rate},
                ),
                ("cross.table.weight", {"sparse": True}),
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
        )

    # ---------------------------------------------------------------- predict
    def _encode(self, X) -> _CodesDataset:
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return _CodesDataset(torch.from_numpy(self.encoder_.transform(X)))

    def _logits(self, X) -> torch.Tensor:
        dataset = self._encode(X)
        tune_malloc()
        if len(dataset) == 0:
            n_outputs = 1 if self.classes_.size == 2 else self.classes_.size
            return torch.empty(0, n_outputs)  # (0, n_outputs)
        logits = self.net_.forward(dataset, training=False)  # (n, n_outputs)
        if self.temperature_ != 1.0:
            logits = logits / self.temperature_  # (n, n_outputs)
        return logits

    @torch.no_grad()
    def _fill_untrained_rows(self, codes: torch.Tensor) -> None:
        """Give codes never seen in training the mean embedding of their field.

        Missing values in a column that had none in training, and unseen
        categories when nothing was rare, would otherwise read rows that kept
        their random initial values. They get the frequency-weighted mean of the
        field's trained rows instead (embedding and linear weights alike).
        """
        module = self.net_.module_
        cardinalities = torch.tensor(self.encoder_.cardinalities_)  # (F,)
        # one field at a time: no (n, F) temporary next to the codes
        counts = torch.cat(
            [
                torch.bincount(codes[:, f], minlength=int(c))  # (c,)
                for f, c in enumerate(cardinalities)
            ]
        ).to(torch.float64)  # (R,)
        untrained = counts == 0  # (R,)
        if not untrained.any():
            return
        field = torch.repeat_interleave(
            torch.arange(len(cardinalities)), cardinalities
        )  # (R,)
        totals = torch.zeros(len(cardinalities), dtype=torch.float64)
        totals.index_add_(0, field, counts)  # (F,)
        tables = [module.embedding.embedding.weight]
        if getattr(module, "linear", None) is not None:
            tables.append(module.linear.weight)
        for table in tables:
            weight = table.detach().cpu().to(torch.float64)  # (R, width)
            sums = torch.zeros(len(cardinalities), weight.shape[1], dtype=torch.float64)
            sums.index_add_(0, field, weight * counts[:, None])  # (F, width)
            means = sums / totals.clamp(min=1)[:, None]  # (F, width)
            rows = untrained.nonzero()[:, 0]  # (n_untrained,)
            filled = means[field[rows]].to(table.dtype).to(table.device)
            table.data[rows.to(table.device)] = filled  # (n_untrained, width)

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

    def _column_names(self) -> list[str]:
        return list(self.encoder_.column_names_)

    def field_weights(self, X) -> pd.DataFrame:
        """Per-row SENET field weights.

        The SENET layer squeezes every field embedding to its mean and maps the
        ``F`` means to one non-negative weight per field; the network multiplies
        each field's embedding by its weight before the second bilinear branch.

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

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; each row sums to 1.
        """
        return _logits_to_proba(self._logits(X))

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_`` (their original type).
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.non_deterministic = str(self.device).startswith("cuda")
        return tags
