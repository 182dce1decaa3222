"""The Parquet reader: :class:`ParquetSource`, the rows of Parquet files.

A source lists its row groups once (``_units``), in the source's order, and
every pass over it (the statistics passes, the epochs, prediction) reads them
through ``_batches``: one record batch at a time, with the position of its
first row in the source, in the source's order or row group by row group in a
given one. Memory stays bounded by the batch.

pyarrow is imported only when a source is used (``_import_pyarrow``, which
names the extra to install when it is missing).
"""

from __future__ import annotations

import os
from numbers import Integral

import numpy as np
import pandas as pd


def _import_pyarrow():
    """pyarrow, pyarrow.dataset, pyarrow.parquet; or an ImportError naming the extra."""
    try:
        import pyarrow
        import pyarrow.dataset
        import pyarrow.parquet
    except ImportError as exc:
        raise ImportError(
            "Reading and writing Parquet needs pyarrow; install it with "
            "`pip install sk_fibinet[parquet]`."
        ) from exc
    return pyarrow, pyarrow.dataset, pyarrow.parquet


def _check_count(value, name: str, minimum: int = 1) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


class ParquetSource:
    """Rows of Parquet files, read batch by batch, for ``fit`` and ``predict``.

    Pass it to ``fit`` in place of ``X`` (with ``y=None``: the target is a
    column of the source) and to ``predict``, ``predict_proba`` or
    ``predict_to_parquet``. Memory stays bounded by the batch, the shuffle
    buffer, the numeric sample and the validation rows, whatever the number of
    rows (see :doc:`/big_data`).

    Column kinds come from the Parquet schema as from DataFrame dtypes:
    dictionary (pandas ``category``), string and bool columns are categorical
    under ``categorical_features="auto"``. Parquet keeps dictionaries of text
    only: an integer ``category`` column written from pandas reads back as
    integers, so name such columns in ``categorical_features``.

    Parameters
    ----------
    data : str, path-like, list of them, or pyarrow.dataset.Dataset
        A Parquet file, a directory of Parquet files, a list of files, or a
        dataset.
    target : str, default=None
        Name of the target column; needed to fit, ignored when predicting.
    columns : list of str, default=None
        Feature columns; default: every column but ``target``.
    batch_size : int, default=65_536
        Rows read and encoded at a time (a row group larger than this is read
        whole, then cut into batches).
    shuffle_buffer : int, default=100_000
        Rows of the training shuffle buffer; at least the estimator's
        ``batch_size``. Row groups are read in a fresh order every epoch and
        their rows mixed in this buffer.
    bin_sample_rows : int, default=200_000
        Rows (drawn at random, seeded by ``random_state``) whose values give the
        numeric bin edges; all rows when the source has fewer.
    max_validation_rows : int, default=100_000
        At most about this many rows are held out for early stopping and
        calibration: ``validation_fraction`` of the rows, capped. They are kept
        in memory as codes.
    checkpoint_every_n_batches : int or None, default=2_000
        With the estimator's ``checkpoint_dir``, save the training state every
        this many training batches (of the estimator's ``batch_size``) as well
        as after every epoch; None saves after every epoch only. It does not
        change what is trained, so a fit may resume with another value.

    Attributes
    ----------
    dataset : pyarrow.dataset.Dataset
        The dataset read.
    feature_names : list of str
        The feature columns.

    Examples
    --------
    >>> from sk_fibinet import FiBiNETClassifier, ParquetSource
    >>> source = ParquetSource("train/", target="click")  # doctest: +SKIP
    >>> clf = FiBiNETClassifier().fit(source)  # doctest: +SKIP
    >>> clf.predict_proba(ParquetSource("test/"))  # doctest: +SKIP
    """

    def __init__(
        self,
        data,
        *,
        target=None,
        columns=None,
        batch_size=65_536,
        shuffle_buffer=100_000,
        bin_sample_rows=200_000,
        max_validation_rows=100_000,
        checkpoint_every_n_batches=2_000,
    ):
        _, ds, _ = _import_pyarrow()
        if isinstance(data, ds.Dataset):
            dataset = data
        else:
            if isinstance(data, (list, tuple)):
                data = [os.fspath(p) for p in data]
            else:
                data = os.fspath(data)
            dataset = ds.dataset(data, format="parquet")
        names = list(dataset.schema.names)
        if target is not None and target not in names:
            raise ValueError(
                f"target={target!r} is not a column of the Parquet source; its "
                f"columns are {names}."
            )
        if columns is None:
            columns = [c for c in names if c != target]
        else:
            columns = [str(c) for c in columns]
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise ValueError(
                    f"columns {unknown} are not columns of the Parquet source; its "
                    f"columns are {names}."
                )
            if target in columns:
                raise ValueError(f"target={target!r} is also listed in columns.")
        if not columns:
            raise ValueError("The Parquet source has no feature columns.")
        self.dataset = dataset
        self.target = target
        self.feature_names = columns
        self.batch_size = _check_count(batch_size, "batch_size")
        self.shuffle_buffer = _check_count(shuffle_buffer, "shuffle_buffer")
        self.bin_sample_rows = _check_count(bin_sample_rows, "bin_sample_rows")
        self.max_validation_rows = _check_count(
            max_validation_rows, "max_validation_rows"
        )
        if checkpoint_every_n_batches is not None:
            checkpoint_every_n_batches = _check_count(
                checkpoint_every_n_batches, "checkpoint_every_n_batches"
            )
        self.checkpoint_every_n_batches = checkpoint_every_n_batches
        self._pieces = None

    def __repr__(self) -> str:
        return (
            f"ParquetSource({self.n_rows} rows, target={self.target!r}, "
            f"{len(self.feature_names)} feature columns)"
        )

    @property
    def column_names(self) -> list[str]:
        """Every column of the source."""
        return list(self.dataset.schema.names)

    @property
    def n_rows(self) -> int:
        """Number of rows (from the Parquet metadata)."""
        return int(sum(n for _, n in self._units()))

    def _units(self) -> list:
        """``(fragment, n_rows)`` in the source's row order: row groups of each file."""
        if self._pieces is None:
            _, ds, _ = _import_pyarrow()
            pieces = []
            for fragment in self.dataset.get_fragments():
                if isinstance(fragment, ds.ParquetFileFragment):
                    for piece in fragment.split_by_row_group():
                        pieces.append((piece, piece.row_groups[0].num_rows))
                else:
                    pieces.append((fragment, fragment.count_rows()))
            self._pieces = pieces
        return self._pieces

    def _read(self, unit, columns):
        """Record batches of one row group, in order."""
        return unit.to_batches(
            schema=self.dataset.schema,
            columns=list(columns),
            batch_size=self.batch_size,
            batch_readahead=1,
            fragment_readahead=1,
        )

    def _batches(self, columns, order=None):
        """``(first row position, record batch)`` over the source.

        In the source's order, or row group by row group in ``order``.
        """
        units = self._units()
        starts = np.concatenate([[0], np.cumsum([n for _, n in units])])
        for i in range(len(units)) if order is None else order:
            position = int(starts[i])
            for batch in self._read(units[i][0], columns):
                yield position, batch
                position += batch.num_rows

    def _empty_frame(self, columns) -> pd.DataFrame:
        """A 0-row DataFrame with the pandas dtypes of ``columns``."""
        return self.dataset.schema.empty_table().select(list(columns)).to_pandas()
