"""The task hooks: what classification and regression do differently in a fit.

:class:`~.base.BaseFiBiNET` declares the hooks and the training engine calls
them; each mixin here fills them in for one task. They turn labels or numbers
into the target column and weights of the training tensor (for a fit in
memory, from the summed chunk summaries of a streamed fit, and chunk by chunk
for ``partial_fit``), name the loss and the width of the output layer, choose
what early stopping watches, learn what needs the trained network (the
classifier's temperature, the regressor's intercept) and give the units of the
explanations. The public classes in ``classifier.py`` and ``regressor.py`` add
the parameters, the docstrings and the predictions.
"""

from __future__ import annotations

from functools import partial
from numbers import Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils import assert_all_finite, column_or_1d
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_y

from ..nn.layers import shift_outputs
from ..training.net import _fit_temperature, _ValidScore

# With temperature calibration, early stopping watches the calibrated
# validation loss (False: the raw one, for comparisons).
_STOP_ON_CALIBRATED_LOSS = True

LOSSES = ("squared_error", "absolute_error", "poisson")
# rows the intercept is centred on at most (evenly spaced)
_CENTRE_MAX_ROWS = 200_000


class ClassificationTask:
    """Task hooks of :class:`~.classifier.FiBiNETClassifier`: class labels,
    class weights, log loss, temperature calibration."""

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

    def _prepare_targets(self, y, sample_weight):
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                "FiBiNETClassifier needs samples of at least 2 classes in the data, "
                f"but the data contains only 1 class: {self.classes_[0]!r}."
            )
        weight = sample_weight
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        return y_index, weight

    def _target_summary(self, y) -> pd.Series:
        return pd.Series(y, copy=False).value_counts()  # rows per label

    def _targets_from_stats(self, stats: pd.Series):
        labels = stats.index.to_numpy()
        self._prepare_targets(labels, np.ones(labels.size))  # classes_ and checks
        counts = stats.reindex(self.classes_).to_numpy(np.float64)  # (n_classes,)
        if self.class_weight == "balanced":  # as compute_sample_weight("balanced")
            per_class = counts.sum() / (counts.size * counts)
        elif self.class_weight is not None:
            per_class = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_
            )
        else:
            per_class = np.ones(counts.size)
        per_class = per_class / (per_class @ counts / counts.sum())  # mean 1 per row
        return partial(_class_targets, self.classes_, per_class)

    def _partial_fit_targets(self, y, sample_weight, *, first, classes):
        """Class indices and weights of a ``partial_fit`` chunk."""
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class "
                "frequencies of one chunk are not those of the stream. Pass a dict "
                "(e.g. from sklearn.utils.class_weight.compute_class_weight on a "
                "sample)."
            )
        if first:
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit: every "
                    "label the stream can hold, e.g. classes=np.unique(y_all) (a "
                    "chunk may lack some)."
                )
            labels = np.unique(column_or_1d(classes))
            if labels.size < 2:
                raise ValueError(
                    f"classes must hold at least 2 labels, got {labels.tolist()!r}."
                )
            self.classes_ = labels
        elif classes is not None and not np.array_equal(
            np.unique(column_or_1d(classes)), self.classes_
        ):
            raise ValueError(
                f"classes={np.unique(classes).tolist()!r} is not classes_="
                f"{self.classes_.tolist()!r}, fixed by the first call to partial_fit "
                "(or by fit)."
            )
        target = pd.Index(self.classes_).get_indexer(y)  # -1: not a class
        if (target < 0).any():
            raise ValueError(
                f"y holds labels {np.unique(y[target < 0]).tolist()!r} that are not "
                f"in classes_={self.classes_.tolist()!r}; pass every label of the "
                "stream in classes on the first call."
            )
        weight = sample_weight
        if self.class_weight is not None:
            per_class = np.array(
                [self.class_weight.get(c, 1.0) for c in self.classes_.tolist()],
                dtype=np.float64,
            )  # (n_classes,)
            weight = weight * per_class[target]
        return target, weight

    def _statistics_target(self, target):
        # binary: the rate of the positive class; multiclass: of every class
        target = np.asarray(target, dtype=np.int64)
        if self.classes_.size == 2:
            return target[:, None].astype(np.float64)  # (n, 1)
        return np.eye(self.classes_.size)[target]  # (n, n_classes)

    def _n_outputs(self) -> int:
        return 1 if self.classes_.size == 2 else self.classes_.size

    def _task(self) -> str:
        return "log_loss"

    def _stratify(self, target):
        _, counts = np.unique(target, return_counts=True)
        return target if counts.min() >= 2 else None

    def _monitor_callbacks(self) -> list:
        calibrate = self.calibration == "temperature"
        monitor = (
            "valid_loss_calibrated"
            if calibrate and _STOP_ON_CALIBRATED_LOSS
            else "valid_loss"
        )
        return [
            ("valid_auc", _ValidScore(calibrate=calibrate)),
            ("early_stopping", self._early_stopping(monitor)),
        ]

    def _after_training(self, valid_ds, train_ds=None, broadcast=None) -> None:
        self.temperature_ = 1.0
        if self.calibration == "temperature" and valid_ds is not None:
            self.temperature_ = _fit_temperature(
                self.net_.forward(valid_ds, training=False), valid_ds.target
            )
        if broadcast is not None:  # every process keeps process 0's
            self.temperature_ = broadcast(self.temperature_)

    def _loss_input(self, z):
        return z / self.temperature_  # (n, n_outputs): calibrated logits

    def _explain_units(self) -> tuple[float, float]:
        return 1.0 / self.temperature_, 0.0


class RegressionTask:
    """Task hooks of :class:`~.regressor.FiBiNETRegressor`: target scaling,
    the regression losses, the intercept centred after training."""

    def _validate_y(self, y):
        y = _check_y(y, y_numeric=True, estimator=self).astype(np.float64)
        if y.shape[0] == 0:
            raise ValueError("y is empty: found 0 samples.")
        return y

    def _prepare_targets(self, y, sample_weight):
        if not sample_weight.sum() > 0:
            raise ValueError("sample_weight sums to zero.")
        mean = float(np.average(y, weights=sample_weight))
        if self.loss == "poisson":
            if (y < 0).any() or not mean > 0:
                raise ValueError(
                    "loss='poisson' needs non-negative y with a positive (weighted) "
                    f"sum, got min(y)={y.min()!r} and mean(y)={mean!r}."
                )
            self.target_offset_, self.target_scale_ = 0.0, mean
            return y / mean, sample_weight
        std = float(np.sqrt(np.average((y - mean) ** 2, weights=sample_weight)))
        if not std > 1e-12 * max(1.0, abs(mean)):  # a constant target
            std = 1.0
        self.target_offset_, self.target_scale_ = mean, std
        return (y - mean) / std, sample_weight

    def _target_summary(self, y) -> pd.Series:
        y = np.asarray(y, dtype=np.float64)
        return pd.Series(
            {"n": y.size, "sum": y.sum(), "sum_sq": y @ y, "negative": (y < 0).sum()}
        )

    def _targets_from_stats(self, stats: pd.Series):
        # the rules of _prepare_targets with unit weights, from sums over chunks
        mean = float(stats["sum"] / stats["n"])
        if self.loss == "poisson":
            if stats["negative"] or not mean > 0:
                raise ValueError(
                    "loss='poisson' needs non-negative y with a positive (weighted) "
                    f"sum, got {int(stats['negative'])} negative values and "
                    f"mean(y)={mean!r}."
                )
            self.target_offset_, self.target_scale_ = 0.0, mean
        else:
            std = float(np.sqrt(max(stats["sum_sq"] / stats["n"] - mean**2, 0.0)))
            if not std > 1e-12 * max(1.0, abs(mean)):  # a constant target
                std = 1.0
            self.target_offset_, self.target_scale_ = mean, std
        return partial(_scaled_targets, self.target_offset_, self.target_scale_)

    def _partial_fit_targets(self, y, sample_weight, *, first, classes=None):
        """Scaled targets and weights of a ``partial_fit`` chunk."""
        if first:  # the first chunk fixes the scaling
            return self._prepare_targets(y, sample_weight)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                f"loss='poisson' needs non-negative y, got min(y)={y.min()!r}."
            )
        return (y - self.target_offset_) / self.target_scale_, sample_weight

    def _n_outputs(self) -> int:
        return 1

    def _task(self) -> str:
        return self.loss

    def _monitor_callbacks(self) -> list:
        return [("early_stopping", self._early_stopping("valid_loss"))]

    def _after_training(self, valid_ds, train_ds=None, broadcast=None) -> None:
        """Centre the outputs on the targets: shift the network's intercept so
        that on the validation rows (without early stopping, the training rows)
        the weighted mean residual is 0 (``"squared_error"``), the weighted
        median residual is 0 (``"absolute_error"``) or the predicted total
        equals the observed one (``"poisson"``).

        A fully trained model with an intercept satisfies these equations; a
        fit stopped early, short, or with row penalties pulling rare codes
        towards 0 (``embedding_l2``) can miss them (600 rows, 8 epochs, Poisson:
        the mean prediction 13-20 % low).
        """
        rows = valid_ds if valid_ds is not None else train_ds
        if rows is None or len(rows) == 0:
            return
        if len(rows) > _CENTRE_MAX_ROWS:  # evenly spaced rows, deterministic
            pick = torch.linspace(0, len(rows) - 1, _CENTRE_MAX_ROWS).long()
            rows = type(rows)(rows.codes[pick], rows.target[pick])
        z = self.net_.forward(rows, training=False)[:, 0].double()  # (n,)
        target = rows.target.double()  # (n, 2): target, weight
        shift = _intercept_shift(z, target[:, 0], target[:, 1], self.loss)
        if broadcast is not None:  # every process applies process 0's
            shift = broadcast(shift)
        shift_outputs(self.net_.module_, torch.tensor([shift]))

    def _explain_units(self) -> tuple[float, float]:
        if self.loss == "poisson":  # the log link: log(predict) = log(scale) + z
            return 1.0, float(np.log(self.target_scale_))
        return self.target_scale_, self.target_offset_


def _class_targets(classes, per_class, y):
    """Class index and weight of each label of a streamed chunk."""
    index = np.searchsorted(classes, y)  # (n,) every label was seen in the first pass
    return index, per_class[index]


def _intercept_shift(z, target, weight, loss: str) -> float:
    """The constant that, added to outputs ``z`` ``(n,)``, solves the intercept's
    equation of ``loss`` on ``target`` ``(n,)`` with ``weight`` ``(n,)``."""
    if float(weight.sum()) <= 0:
        return 0.0
    if loss == "poisson":  # sum w exp(z + c) = sum w y
        observed = float((weight * target).sum())
        predicted = float((weight * z.exp()).sum())
        if observed <= 0 or not np.isfinite(predicted) or predicted <= 0:
            return 0.0
        return float(np.log(observed / predicted))
    residual = (target - z).numpy()  # (n,)
    if loss == "absolute_error":  # weighted median of the residuals
        order = np.argsort(residual)
        cumulative = np.cumsum(weight.numpy()[order])  # (n,)
        middle = np.searchsorted(cumulative, 0.5 * cumulative[-1])
        return float(residual[order][middle])
    return float(np.average(residual, weights=weight.numpy()))


def _scaled_targets(offset, scale, y):
    """Scaled target and unit weight of each row of a streamed chunk."""
    y = np.asarray(y, dtype=np.float64)
    return (y - offset) / scale, np.ones(y.size)
