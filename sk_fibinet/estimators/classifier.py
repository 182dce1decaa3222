"""FiBiNETClassifier: targets, log loss, probabilities.

Over 500 lines because the class docstring documents every constructor
parameter (numpydoc), as scikit-learn estimators do; the code is the small
part.
"""

from __future__ import annotations

from functools import partial
from numbers import Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import assert_all_finite, column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ..data.sources import ChunkSource
from ..training.engine import train
from ..training.net import _fit_temperature, _logits_to_proba, _ValidScore
from .base import BaseFiBiNET
from .docstrings import fill_doc

# With temperature calibration, early stopping watches the calibrated
# validation loss (False: the raw one, for comparisons).
_STOP_ON_CALIBRATED_LOSS = True


@fill_doc
class FiBiNETClassifier(ClassifierMixin, BaseFiBiNET):
    """FiBiNET classifier for tabular and click-through-rate data.

    $network.
    Training runs through a skorch net (``net_``).

    Parameters
    ----------
    categorical_features : "auto", None, array-like of bool, int or str, \
            default="auto"
        $categorical_features
    min_frequency : int, default=2
        $min_frequency
    hash_buckets : int, dict or None, default=None
        $hash_buckets
    n_bins : int, default=32
        $n_bins
    embedding_dim : int, default=8
        Width ``d`` of every field embedding.
    reduction_ratio : int, default=3
        $reduction_ratio
    senet_activation : {"relu", "sigmoid"}, default="relu"
        $senet_activation
    bilinear_type : {"all", "each", "interaction"}, default="interaction"
        $bilinear_type
    shared_bilinear : bool, default=False
        $shared_bilinear
    hidden_layer_sizes : int or tuple of int, default=(128, 64)
        $hidden_layer_sizes
    dropout : float, default=0.1
        $dropout
    linear : bool, default=True
        Add the first-order (logistic-regression) part. Its weights start at 0
        and learn at ``10 * learning_rate`` (they are sparse, one per code).
    max_cross_cells : int, default=2000
        $max_cross_cells
    learning_rate : float, default=1e-3
        $learning_rate
    weight_decay : float, default=0.0
        $weight_decay
    embedding_l2 : float, default=0.03
        $embedding_l2
    batch_size : int, default=512
        $batch_size
    max_epochs : int, default=20
        $max_epochs
    early_stopping : "auto" or bool, default="auto"
        $early_stopping
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping (stratified).
    n_iter_no_change : int, default=1
        $n_iter_no_change
    tol : float, default=1e-4
        $tol
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss, multiplied with ``sample_weight``.
    device : str, default="cpu"
        $device
    callbacks : list of skorch callbacks or None, default=None
        $callbacks
    random_state : int, RandomState instance or None, default=None
        $random_state
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
        $variant
    distributed : bool, default=False
        $distributed
    checkpoint_dir : str, path-like or None, default=None
        $checkpoint_dir
    target_stats : "auto" or None, default=None
        $target_stats
        Measured (docs/performance.md, 3 seeds): Book-Crossing ROC AUC 0.712
        -> 0.863 (CatBoost 0.867), level on MIND, but 0.002 worse on
        MovieLens-1M and 0.02 worse on the Criteo and Avazu samples, hence
        off by default.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        $n_features_in_
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        $feature_names_in_
    n_iter_ : int
        $n_iter_
    temperature_ : float
        Temperature the logits are divided by (1.0 without calibration).
    feature_importances_ : ndarray of shape (`n_features_in_`,)
        Field ablation importance, in ``feature_names_in_`` order: how much the
        weighted log loss (of the calibrated probabilities) rises when a
        column's field is replaced by its reference, measured at the end of
        ``fit`` on the rows early stopping held out (without early stopping, on
        the training rows), a random subset of at most 20,000 of them (fewer
        when the fit was short, so the cost stays within ~20 % of it). The
        reference of a field is the frequency-weighted mean of its embedding
        vectors over the training rows, and likewise of its first-order and
        crossed weights (see :meth:`explain`). Rises are clipped at 0 and
        divided by their sum, so the values add up to 1; if no field raises
        the loss, all are 0.
    senet_weights_ : ndarray of shape (`n_features_in_`,)
        Mean SENET excitation weight of each field over all rows passed to
        ``fit`` (for ``variant="fibinet++"``, the mean magnitude of SENet+'s
        bit weights): the gate's values, as :meth:`field_weights` gives per
        row, not a measure of importance. They can stay near their initial
        values and need not single out the columns that carry signal (see the
        interpretability guide).
    explain_base_value_ : float or ndarray of shape (n_classes,)
        The calibrated logit with every field replaced by its reference: what
        :meth:`explain`'s contributions add up from. Binary: a float, for the
        logit of ``classes_[1]``; multiclass: one value per class.
    encoder_ : FieldEncoder
        $encoder_
    net_ : skorch.NeuralNet
        $net_

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
        **BaseFiBiNET._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "calibration": [StrOptions({"temperature"}), None],
    }
    _weight_name = "sample_weight (times class_weight)"

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
        class_weight=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
        calibration="temperature",
        variant="fibinet",
        distributed=False,
        checkpoint_dir=None,
        target_stats=None,
    ):
        super().__init__(
            categorical_features=categorical_features,
            min_frequency=min_frequency,
            hash_buckets=hash_buckets,
            n_bins=n_bins,
            embedding_dim=embedding_dim,
            reduction_ratio=reduction_ratio,
            senet_activation=senet_activation,
            bilinear_type=bilinear_type,
            shared_bilinear=shared_bilinear,
            hidden_layer_sizes=hidden_layer_sizes,
            dropout=dropout,
            linear=linear,
            max_cross_cells=max_cross_cells,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            embedding_l2=embedding_l2,
            batch_size=batch_size,
            max_epochs=max_epochs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            device=device,
            callbacks=callbacks,
            random_state=random_state,
            verbose=verbose,
            variant=variant,
            distributed=distributed,
            checkpoint_dir=checkpoint_dir,
            target_stats=target_stats,
        )
        self.class_weight = class_weight
        self.calibration = calibration

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

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on a chunk, continuing where the last call stopped.

        The first call on an unfitted estimator learns the encoding from this
        chunk (the vocabularies of categorical columns without
        ``hash_buckets``, the numeric bins) and builds the network. Later
        calls, and calls after ``fit``, keep the encoder, the classes, the
        network, its optimizer state and the random streams, and train one
        more epoch. ``fit`` starts over.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            $chunk_X
        y : array-like of shape (n_samples,)
            Class labels, all of them in ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every label the stream can hold. Required on the first call (a chunk
            may lack some labels); on later calls it must name the same labels
            or be None.
        sample_weight : array-like of shape (n_samples,), default=None
            $chunk_sample_weight

        Returns
        -------
        self : object
            The estimator, trained one more epoch.

        Notes
        -----
        One call is one pass over the chunk in shuffled mini-batches of
        ``batch_size``. Nothing is held out: ``max_epochs``,
        ``early_stopping``, ``validation_fraction``, ``n_iter_no_change`` and
        ``tol`` are not used, and ``temperature_`` is 1.0 after any call (a
        temperature fitted by an earlier ``fit`` belonged to the weights before
        this pass); calibrate on held-out data, e.g. with
        ``CalibratedClassifierCV(FrozenEstimator(clf))``.
        ``class_weight="balanced"`` is refused (one chunk does not give the
        stream's class frequencies); a dict works.

        Categorical columns without ``hash_buckets`` keep the vocabulary of the
        first call (or of ``fit``): their categories first met in a later chunk
        share the "other" code with rare ones, and an
        :class:`~sk_fibinet.UnknownCategoryWarning` counts the rows. The
        crossed pairs of the linear part are chosen on the first chunk, as
        ``fit`` chooses them on its training rows. ``feature_importances_`` is
        averaged over the rows of the latest chunk. A model from
        :func:`~sk_fibinet.load_model` has no optimizer state: it continues
        from its weights with fresh optimizer moments. ``checkpoint_dir`` is
        not used (pickle the estimator between chunks: it continues exactly),
        and ``distributed=True`` is refused.
        """
        source = ChunkSource(X, y, classes=classes, sample_weight=sample_weight)
        return train(self, source, continue_net=hasattr(self, "net_"))

    def _loss_input(self, z):
        return z / self.temperature_  # (n, n_outputs): calibrated logits

    def _explain_units(self) -> tuple[float, float]:
        return 1.0 / self.temperature_, 0.0

    # ---------------------------------------------------------------- predict
    def _logits(self, X) -> torch.Tensor:
        logits = self._forward(X)  # (n, n_outputs)
        if self.temperature_ != 1.0:
            logits = logits / self.temperature_  # (n, n_outputs)
        return logits

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

    def decision_function(self, X):
        """Calibrated logits: the network's output divided by ``temperature_``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Binary: the logit of ``classes_[1]``, and
            ``predict_proba(X)[:, 1] == expit(scores)``. Multiclass: one logit
            per class (columns follow ``classes_``), and ``predict_proba(X)`` is
            their softmax.
        """
        check_is_fitted(self)
        z = self._logits(X).detach().to("cpu", torch.float64).numpy()  # (n, n_out)
        return z[:, 0] if z.shape[1] == 1 else z

    def explain(self, X, *, class_of_interest=None):
        """Contribution of every column to each row's calibrated logit.

        Shapley values over the fields (one field per input column) of the
        game whose value for a set of fields ``S`` is the calibrated logit with
        the fields outside ``S`` replaced by their references: the
        frequency-weighted mean of the field's embedding vectors over the
        training rows (every part of the network then sees that vector: SENET,
        both bilinear branches, the DNN), and likewise the mean of its
        first-order weights; a crossed weight (``max_cross_cells``) of a pair
        with a replaced field is averaged over that field's training codes.
        The contributions add up exactly (up to rounding)::

            explain(X).sum(axis=1) + explain_base_value_ == decision_function(X)

        With at most 10 columns every coalition is evaluated (``2**F`` network
        passes per row, exact Shapley values); with more, 64 random
        permutations of the fields (32 and their reverses, seeded by
        ``random_state``) are averaged: ``64 * (F - 1)`` passes per row, still
        exactly additive (each permutation's contributions telescope), with
        sampling noise in how the sum is shared.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        class_of_interest : label, default=None
            Binary: None or ``classes_[1]`` explain the logit of
            ``classes_[1]`` (``decision_function``); ``classes_[0]`` its
            negative (whose base value is ``-explain_base_value_``).
            Multiclass: required, the class whose logit (column of
            ``decision_function``) to explain; the base value is
            ``explain_base_value_[k]`` for that class's index ``k``.

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_features)
            In logit units, one column per input column, indexed like ``X``
            (a RangeIndex for arrays).
        """
        check_is_fitted(self)
        classes = list(self.classes_)
        if len(classes) == 2:
            if class_of_interest is None or class_of_interest == classes[1]:
                return self._explain(X, 0)
            if class_of_interest == classes[0]:
                return self._explain(X, 0, sign=-1.0)
        elif class_of_interest in classes:
            return self._explain(X, classes.index(class_of_interest))
        raise ValueError(
            f"class_of_interest must be one of the classes {classes}"
            + (" (None: the logit of classes_[1])" if len(classes) == 2 else "")
            + f", got {class_of_interest!r}."
        )

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


def _class_targets(classes, per_class, y):
    """Class index and weight of each label of a streamed chunk."""
    index = np.searchsorted(classes, y)  # (n,) every label was seen in the first pass
    return index, per_class[index]
