"""What the fitted estimators ask their network about rows.

Rows encoded as in ``fit`` and the network's raw outputs (in memory or from a
:class:`ParquetSource`), the SENET field weights, the strength of every pair of
fields, the ablation importances learned at the end of a fit and the Shapley
contributions of :meth:`explain`, each summed back into the input columns
where target statistics added fields. The classifier and the regressor turn
the raw outputs into predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..data.features import with_statistics
from ..data.parquet import ParquetSource
from ..data.stream_predict import forward_source, predict_to_parquet
from ..training.explain import (
    N_PERMUTATIONS,
    Replacer,
    ablation_losses,
    coalitions,
    importance_rows,
    normalised_importances,
    shapley_values,
)
from ..training.net import _BatchIterator, _CodesDataset, _eval_mode, _row_losses

# Rows per chunk for field weights and interaction strengths, which build
# (chunk, pairs, hidden) tensors: 400 MB at 1,024 rows, 40 fields, 128 hidden.
_INSPECT_BATCH_SIZE = 1024


class InspectionMixin:
    """Prediction internals, inspection and explanations of
    :class:`~.base.BaseFiBiNET`."""

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
        pair's statistic half for each of its two columns, a derived field
        (a crossed triple) a third for each of its three fields' columns."""
        statistics = getattr(self, "target_stats_", None)
        encoder = self.encoder_
        crosses = encoder._crosses()
        if statistics is None and not crosses:
            return values
        names = list(encoder.column_names_)
        n_statistics = 0 if statistics is None else len(statistics.feature_names_)
        n_inputs = len(names) - n_statistics
        fold = np.zeros((len(names), n_inputs))  # (columns' fields, n_features)
        fold[np.arange(n_inputs), np.arange(n_inputs)] = 1.0
        for j in range(n_inputs, len(names)):
            sources = statistics.sources_[names[j]]
            for source in sources:
                fold[j, names.index(source)] += 1.0 / len(sources)
        derived = np.zeros((len(crosses), n_inputs))  # (T, n_features)
        for t, fields in enumerate(crosses):
            for f in fields:  # a statistic's field passes on to its columns
                derived[t] += fold[f] / len(fields)
        return values @ np.concatenate([fold, derived])  # (..., n_features)

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
        """Names of the fields: the columns', then the derived fields'."""
        return self.encoder_.field_names()

    def _replacer(self) -> Replacer:
        """The network with fields replaceable by their references."""
        if not hasattr(self, "_code_counts"):
            raise AttributeError(
                "This model has no code frequencies to build field references "
                "from (saved by an sk_fibinet version without explanations); "
                "refit it to use explain()."
            )
        return Replacer(self.net_.module_, self._code_counts, self.net_.device)

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
        phi = self._to_columns(phi)  # (n, n_features)
        columns = self._column_names()[: phi.shape[1]]  # the input columns
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
        weights : DataFrame of shape (n_samples, n_fields)
            One column per field (the input columns, then any target
            statistics and derived fields, ``encoder_.field_names()``),
            indexed like ``X`` (a RangeIndex for arrays).
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
        strengths : DataFrame of shape (n_fields, n_fields)
            Symmetric, indexed and labelled by field (``encoder_.field_names()``:
            the input columns, then any target statistics and derived fields);
            the diagonal is 0.
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
