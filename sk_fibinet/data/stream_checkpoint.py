"""Checkpoints of fits streamed from a :class:`~sk_fibinet.ParquetSource`.

The checkpoint itself is the in-memory one (:mod:`sk_fibinet.training.checkpoint`):
one file per fit, written after every epoch and every
``source.checkpoint_every_n_batches`` training batches, resumed at the batch
after the last one it holds. What differs is how a streamed fit is recognised,
since hashing the encoded rows, as an in-memory fit does, would take a pass
over the data of its own. Two checks, neither reading any row twice:

* **The file name** comes from what is known before any row is read: the
  estimator class and its parameters (as in memory), the source's settings
  (feature columns, target, ``batch_size``, ``shuffle_buffer``,
  ``bin_sample_rows``, ``max_validation_rows``), its schema, and its Parquet
  metadata: every row group, in the source's order, with its number of rows,
  its size and each column chunk's compressed size, null count, minimum and
  maximum. File paths and modification times are left out, so a copied or
  moved dataset resumes. It must be known first because the checkpoint holds
  the seed (drawn anew under ``random_state=None``), and the seed picks the
  rows the first pass samples for the numeric bins and holds out.
* **The statistics of the first pass.** The first pass (the vocabulary count)
  is run again on resume, with the checkpoint's seed. A digest of everything
  it learns (the summed category counts in order of first appearance, the
  sampled numeric values, the target summary, the number of held-out rows,
  and the target statistics with their sums and the sample's values) is
  stored in the checkpoint; a resumed fit whose first pass gives another digest
  has other data behind the same metadata, and is refused.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..training import checkpoint as _checkpoint

# The header key of the first-pass digest.
_STATISTICS = "source_statistics"


def _update(digest, *values) -> None:
    for value in values:
        digest.update(repr(value).encode())
        digest.update(b"\0")


def source_fingerprint(model, source) -> str:
    """Hex digest of the estimator, its parameters and the source's metadata.

    Reads the Parquet footers only (which listing the row groups reads
    anyway), no rows.
    """
    import pyarrow.dataset as ds  # present: the source is built on it

    digest = hashlib.blake2b(digest_size=16)
    _update(
        digest,
        "stream",
        type(model).__name__,
        _checkpoint._plain_params(model),
        list(source.feature_names),
        source.target,
        source.batch_size,
        source.shuffle_buffer,
        source.bin_sample_rows,
        source.max_validation_rows,
        source.dataset.schema.to_string(show_schema_metadata=False),
    )
    for unit, n_rows in source._units():
        _update(digest, n_rows)
        if not isinstance(unit, ds.ParquetFileFragment):
            continue
        (group,) = unit.row_groups
        meta = unit.metadata.row_group(group.id)
        _update(digest, meta.total_byte_size)
        for j in range(meta.num_columns):
            column = meta.column(j)
            stats = column.statistics
            _update(digest, column.path_in_schema, column.total_compressed_size)
            if stats is not None:
                _update(digest, stats.null_count)
                if stats.has_min_max:
                    _update(digest, stats.min, stats.max)
    return digest.hexdigest()


class StatisticsDigest:
    """Hash of the statistics of a first pass, fed one statistic at a time.

    :meth:`update` returns its argument, so it can sit in a pipeline
    (``map(digest.update, stats)``).
    """

    def __init__(self):
        self._digest = hashlib.blake2b(digest_size=16)

    def update(self, stat):
        """Add a Series (counts, a target summary) or an array (numeric values)."""
        if isinstance(stat, pd.Series):
            _update(self._digest, "series", str(stat.index.dtype), len(stat))
            hashed = pd.util.hash_pandas_object(stat, index=True)  # (n,) uint64
            self._digest.update(hashed.to_numpy().tobytes())
        else:
            values = np.ascontiguousarray(stat)
            _update(self._digest, "array", values.dtype.str, values.shape)
            self._digest.update(values.tobytes())
        return stat

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def open_source_checkpoint(model, source, seed: int, processes=None):
    """The checkpoint callback of a streamed fit, with the state to resume, if
    any (in a distributed fit, written by process 0 only)."""
    return _checkpoint.open_checkpoint(
        model,
        model.checkpoint_dir,
        source_fingerprint(model, source),
        seed,
        processes,
        every_n_batches=source.checkpoint_every_n_batches,
    )


def check_statistics(checkpoint, statistics: str) -> None:
    """Refuse a checkpoint written for other data; record the digest in it."""
    state = checkpoint.state
    if state is not None and state.get(_STATISTICS) != statistics:
        raise ValueError(
            f"The checkpoint {str(checkpoint.path)!r} was written for a Parquet "
            "source with the same layout but other contents (the first pass "
            "counted other categories, numeric values or targets); delete it to "
            "train from the start."
        )
    checkpoint.header[_STATISTICS] = statistics
