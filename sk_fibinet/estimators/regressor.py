"""FiBiNETRegressor: its parameters and their documentation, ``partial_fit``
and the predictions (in the units of ``y``, explanations).

What regression changes in a fit (target scaling, the regression losses, the
intercept centred after training) is its task hook mixin in ``tasks.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ..data.chunk_source import ChunkSource
from ..training.engine import train
from .base import BaseFiBiNET
from .docstrings import fill_doc
from .tasks import LOSSES, RegressionTask


@fill_doc
class FiBiNETRegressor(RegressorMixin, RegressionTask, BaseFiBiNET):
    """FiBiNET regressor for tabular data.

    $network with
    one output. Training runs through a skorch net (``net_``).

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
        Width ``d`` of every field embedding. ``"auto"``: 32, wider than the
        classifier's 8 (with ``embedding_l2=1.0`` it lifted the held-out R^2
        of the flight delay benchmark from 0.17 to 0.22, see the performance
        chapter), narrower for tables of more than 22 fields:
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
        Add the first-order (linear-regression) part. Its weights start at 0
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
    embedding_l2 : float, default=1.0
        $embedding_l2 The classifier's default is 0.03; on flight delays (plane and
        flight ids) 1.0 with ``embedding_dim=32`` took R^2 from 0.168 to 0.225.
        The rows it pulls towards 0 would pull the mean prediction down on
        short fits; the intercept centred after training (see Notes)
        restores it.
    batch_size : int, default=512
        $batch_size
    max_epochs : int, default=20
        $max_epochs
    early_stopping : "auto" or bool, default="auto"
        $early_stopping
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping (a random,
        non-stratified split).
    n_iter_no_change : int, default=1
        $n_iter_no_change
    tol : float, default=1e-4
        $tol
    loss : {"squared_error", "absolute_error", "poisson"}, \
            default="squared_error"
        The training loss, weighted by ``sample_weight``. For
        ``"squared_error"`` and ``"absolute_error"`` the target is standardised
        in ``fit`` (its weighted mean and standard deviation are learned, and
        ``predict`` restores them), so its scale does not matter. ``"poisson"``
        (counts, rates, amounts) needs ``y >= 0`` with a positive sum; the
        network's output is the log of the mean, relative to the weighted mean
        of ``y``, and ``predict`` returns the mean.
    device : str, default="cpu"
        $device
    callbacks : list of skorch callbacks or None, default=None
        $callbacks
    random_state : int, RandomState instance or None, default=None
        $random_state
    verbose : int, default=0
        0 prints nothing; 1 prints a table row per epoch (training loss,
        validation loss when early stopping holds data out, time);
        2 adds a progress bar within each epoch (notebook-aware).
    variant : {"fibinet", "fibinet++"}, default="fibinet"
        $variant
    distributed : bool, default=False
        $distributed
    checkpoint_dir : str, path-like or None, default=None
        $checkpoint_dir
    target_stats : {"auto", "all"} or None, default=None
        $target_stats
        Measured (docs/performance.md, 3 seeds): on the flights table R^2
        0.220 -> 0.186 (``"all"``; ``"auto"`` picks the same two ID columns,
        16-19 rows per value, of its 60,000 rows), hence off by default.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        $precision

    Attributes
    ----------
    n_features_in_ : int
        $n_features_in_
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        $feature_names_in_
    n_iter_ : int
        $n_iter_
    target_offset_ : float
        Weighted mean of ``y`` subtracted before training (0.0 for
        ``"poisson"``).
    target_scale_ : float
        Factor ``y`` is divided by before training: its weighted standard
        deviation (1.0 for a constant ``y``), or for ``"poisson"`` its weighted
        mean.
    feature_importances_ : ndarray of shape (`n_features_in_`,)
        Field ablation importance: how much the training loss (on the
        standardised target; for ``"poisson"``, the Poisson deviance) rises
        when a column's field is replaced by its reference, measured at the end
        of ``fit`` on the rows early stopping held out (without early stopping,
        on the training rows), at most 20,000 of them; clipped at 0 and
        divided by the sum, or all 0 if no field raises the loss. See
        :class:`FiBiNETClassifier` and :meth:`explain`.
    senet_weights_ : ndarray of shape (`n_features_in_`,)
        Mean SENET excitation weight of each field over all rows passed to
        ``fit``: the gate's values (:meth:`field_weights` per row), not a
        measure of importance.
    explain_base_value_ : float
        The prediction with every field replaced by its reference (for
        ``"poisson"``, its log): what :meth:`explain`'s contributions add up
        from.
    encoder_ : FieldEncoder
        $encoder_
    net_ : skorch.NeuralNet
        $net_

    See Also
    --------
    FiBiNETClassifier : The classifier on the same network.

    Notes
    -----
    After training, ``fit`` centres the intercept: it shifts the network's
    output bias so that on the validation rows (the training rows without
    early stopping) the weighted mean residual is 0 (``"squared_error"``), the
    weighted median residual is 0 (``"absolute_error"``) or the predicted
    total equals the observed one (``"poisson"``), the equations a converged
    intercept solves. ``partial_fit`` does not, nor does a fit streamed from a
    :class:`ParquetSource` without early stopping (it holds no rows to centre
    on).

    Examples
    --------
    >>> import numpy as np
    >>> from sk_fibinet import FiBiNETRegressor
    >>> from sk_fibinet.datasets import load_adult
    >>> X, _ = load_adult(return_X_y=True, as_frame=True)
    >>> y = X.pop("hours_per_week")
    >>> reg = FiBiNETRegressor(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> reg.predict(X.head(2)).shape  # doctest: +SKIP
    (2,)
    """

    _AUTO_EMBEDDING_DIM = 32  # see embedding_dim

    _parameter_constraints: dict = {
        **BaseFiBiNET._parameter_constraints,
        "loss": [StrOptions(set(LOSSES))],
    }

    def __init__(
        self,
        *,
        loss="squared_error",
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
        embedding_l2=1.0,
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
        self.loss = loss

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch on a chunk, continuing where the last call stopped.

        The first call on an unfitted estimator learns the encoding (the
        vocabularies of categorical columns without ``hash_buckets``, the
        numeric bins) and the target scaling from this chunk and builds the
        network. Later calls, and calls after ``fit``, keep all of it, the
        optimizer state and the random streams, and train one more epoch.
        ``fit`` starts over.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            $chunk_X
        y : array-like of shape (n_samples,)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            $chunk_sample_weight

        Returns
        -------
        self : object
            The estimator, trained one more epoch.

        Notes
        -----
        One call is one pass over the chunk in shuffled mini-batches of
        ``batch_size``; nothing is held out and ``max_epochs``,
        ``early_stopping``, ``validation_fraction``, ``n_iter_no_change`` and
        ``tol`` are not used. ``target_offset_`` and ``target_scale_`` come from
        the first chunk (or from ``fit``), so that chunk should be a fair sample
        of the targets. ``checkpoint_dir`` is not used and ``distributed=True``
        is refused. See :meth:`FiBiNETClassifier.partial_fit` for what the
        first call fixes and what later chunks can change.
        """
        source = ChunkSource(X, y, sample_weight=sample_weight)
        return train(self, source, continue_net=hasattr(self, "net_"))

    def explain(self, X):
        """Contribution of every column to each row's prediction.

        Shapley values over the fields, as :meth:`FiBiNETClassifier.explain`
        computes them: the value of a set of fields is the prediction with the
        other fields replaced by their references (mean embedding, mean
        first-order weight, crossed weights averaged over the replaced field's
        training codes). In the units of ``y`` for ``"squared_error"`` and
        ``"absolute_error"``::

            explain(X).sum(axis=1) + explain_base_value_ == predict(X)

        For ``"poisson"`` on the log scale of the predicted mean, where the
        network is additive in its output (``exp`` of a sum of contributions is
        a product of factors ``exp(contribution)``)::

            explain(X).sum(axis=1) + explain_base_value_ == np.log(predict(X))

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        contributions : DataFrame of shape (n_samples, n_features)
            One column per input column, indexed like ``X`` (a RangeIndex for
            arrays).
        """
        check_is_fitted(self)
        return self._explain(X, 0)

    def predict(self, X):
        """Predict regression targets.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted values, in the units of ``y`` (for ``"poisson"``, the
            predicted mean).
        """
        check_is_fitted(self)
        z = self._forward(X)[:, 0].detach().to("cpu", torch.float64).numpy()
        if self.loss == "poisson":
            return self.target_scale_ * np.exp(z)  # (n,)
        return self.target_offset_ + self.target_scale_ * z  # (n,)
