"""FiBiNETClassifier: its parameters and their documentation, ``partial_fit``
and the predictions (probabilities, calibrated logits, labels, explanations).

What classification changes in a fit (class labels and weights, log loss,
temperature calibration) is its task hook mixin in ``tasks.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ..data.chunk_source import ChunkSource
from ..training.engine import train
from ..training.net import _logits_to_proba
from .base import BaseFiBiNET
from .docstrings import fill_doc
from .tasks import ClassificationTask


@fill_doc
class FiBiNETClassifier(ClassifierMixin, ClassificationTask, BaseFiBiNET):
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
    embedding_dim : int or "auto", default="auto"
        Width ``d`` of every field embedding. ``"auto"``: 8, narrower for
        tables of more than 43 fields:
        $embedding_dim_auto
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
    cross_pairs : {"auto", "all"}, default="auto"
        $cross_pairs
    cross_triples : "auto" or None, default="auto"
        $cross_triples
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
    target_stats : {"auto", "all"} or None, default="auto"
        $target_stats
        Measured (docs/performance.md, 3 seeds): under ``"auto"``
        Book-Crossing ROC AUC 0.712 -> 0.871 (CatBoost 0.867), level on MIND;
        ``"all"`` was 0.002 worse on MovieLens-1M and 0.02 worse on the
        Criteo and Avazu samples, which ``"auto"`` leaves unchanged.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        $precision

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
        class_weight=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
        calibration="temperature",
        variant="fibinet",
        distributed=False,
        checkpoint_dir=None,
        target_stats="auto",
        precision="auto",
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
            cross_pairs=cross_pairs,
            cross_triples=cross_triples,
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
            precision=precision,
        )
        self.class_weight = class_weight
        self.calibration = calibration

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
