"""Prediction from a :class:`~sk_fibinet.data.parquet.ParquetSource`.

The network's output for every row, batch by batch (:func:`forward_source`),
or the predictions written to a Parquet file (:func:`predict_to_parquet`);
memory stays bounded by the source's batch.
"""

from __future__ import annotations

import os

import torch
from sklearn.utils.validation import check_is_fitted

from .parquet import _import_pyarrow


def _check_source_columns(estimator, source, extra=()) -> list[str]:
    """The feature columns of a fitted estimator, checked against the source."""
    check_is_fitted(estimator)
    if not hasattr(estimator, "feature_names_in_"):
        raise ValueError(
            "The estimator was fitted without column names (on an array), so it "
            "cannot pick its columns from a ParquetSource; pass a DataFrame."
        )
    features = [str(c) for c in estimator.feature_names_in_]
    missing = [c for c in [*features, *extra] if c not in source.column_names]
    if missing:
        raise ValueError(
            f"The Parquet source lacks the columns {missing}; it has "
            f"{source.column_names}."
        )
    return features


def forward_source(estimator, source) -> torch.Tensor:
    """The network's raw output for every row of a source, batch by batch."""
    features = _check_source_columns(estimator, source)
    outputs = [
        estimator._forward(batch.to_pandas())  # (batch, n_outputs)
        for _, batch in source._batches(features)
    ]
    if not outputs:
        return torch.empty(0, estimator._n_outputs())  # (0, n_outputs)
    return torch.cat(outputs)  # (n, n_outputs)


def predict_to_parquet(estimator, source, path, *, method="predict", columns=None):
    """Write ``method``'s output for every row of ``source`` to ``path``."""
    pa, _, pq = _import_pyarrow()
    if method not in ("predict", "predict_proba") or not hasattr(estimator, method):
        raise ValueError(
            f"method must be 'predict' or (for a classifier) 'predict_proba', got "
            f"{method!r}."
        )
    columns = [] if columns is None else [str(c) for c in columns]
    features = _check_source_columns(estimator, source, extra=columns)
    read = [*features, *[c for c in columns if c not in features]]

    def table_of(batch):
        out = getattr(estimator, method)(batch.to_pandas()[features])
        arrays = {c: batch.column(c) for c in columns}
        if method == "predict":
            arrays["prediction"] = pa.array(out)
        else:
            for k, c in enumerate(estimator.classes_):
                arrays[f"proba_{c}"] = pa.array(out[:, k])
        return pa.table(arrays)

    path = os.fspath(path)
    writer = None
    try:
        for _, batch in source._batches(read):
            table = table_of(batch)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is None:  # no rows: an empty file with the right columns
            empty = pa.RecordBatch.from_pandas(
                source._empty_frame(read), preserve_index=False
            )
            pq.write_table(table_of(empty), path)
    finally:
        if writer is not None:
            writer.close()
    return path
