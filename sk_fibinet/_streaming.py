"""Fit and predict from Parquet data that need not fit in memory.

A :class:`ParquetSource` names Parquet files (or a ``pyarrow.dataset.Dataset``)
and the target column. ``fit`` on a source makes two kinds of passes over it,
each reading one batch of rows at a time:

* the first pass learns the encoding: exact category counts per categorical
  column (summed batch by batch, then turned into vocabularies by the same
  :class:`~sk_fibinet._encoding.FieldEncoder` rules as in memory), the numeric
  values of a bounded, seeded sample of rows (``bin_sample_rows``, as
  HistGradientBoosting bins from a 200k-row sample) for the bin edges, and the
  summaries of the targets the estimator needs (classes, target scale);
* every epoch then reads the row groups in a fresh seeded order, encodes each
  batch to field codes and feeds the training rows to skorch through a bounded
  shuffle buffer.

The validation rows are chosen by a seeded hash of the row position, so the
same rows are held out in every epoch; they are encoded once, during the first
epoch, and kept in memory (at most about ``max_validation_rows``), together
with a sample of all rows of the same size for ``feature_importances_``.

With ``checkpoint_dir`` the fit saves every ``checkpoint_every_n_batches``
training batches and every epoch, and resumes from the last save: the first
pass runs again with the seed of the checkpoint, and the interrupted epoch
reads and shuffles its rows again, dropping the batches already trained (see
``_StreamBatches``); how the source is recognised is in ``_stream_checkpoint``.

pyarrow is imported only here, and only when a source is used.

Over 500 lines because a streamed fit is one data path (the source, the first
pass, the shuffle buffer, the epochs, the held-out rows and streamed
prediction) whose parts share their bookkeeping; the checkpoint fingerprint
lives apart, in ``_stream_checkpoint``.
"""

from __future__ import annotations

import os
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.callbacks import ProgressBar
from skorch.helper import predefined_split

from . import _distributed, _stream_checkpoint
from ._encoding import (
    FieldEncoder,
    _numeric_values,
    category_counts,
    resolve_categorical_mask,
)
from ._skorch import _CodesDataset, _StopOnNonFinite

# Category counts of this many batches are summed at once (summing each batch
# into the running totals re-hashes the whole vocabulary every time).
_MERGE_EVERY = 16


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


def _uniform_hash(positions: np.ndarray, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) for every row position.

    SplitMix64 of the position mixed with the seed: the same (position, seed)
    gives the same number in any order and on any machine.
    """
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53  # (n,)


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


class _ShuffleBuffer:
    """Mixes rows in a buffer of at most ``capacity`` rows and yields batches.

    When the buffer is full it is permuted and about half of it leaves as
    batches; the rest stays to be mixed with the rows that come next.
    """

    def __init__(self, capacity: int, batch_size: int, generator: torch.Generator):
        self.capacity = capacity
        self.batch_size = batch_size
        self.generator = generator
        self.chunks: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n_rows = 0
        self.peak = 0  # the most rows held at once

    def push(self, codes: torch.Tensor, target: torch.Tensor):
        start = 0
        while start < codes.shape[0]:
            take = min(self.capacity - self.n_rows, codes.shape[0] - start)
            stop = start + take
            self.chunks.append((codes[start:stop], target[start:stop]))
            self.n_rows += take
            self.peak = max(self.peak, self.n_rows)
            start = stop
            if self.n_rows == self.capacity:
                half = (self.capacity // 2) // self.batch_size * self.batch_size
                yield from self._emit(max(half, self.batch_size))

    def drain(self):
        yield from self._emit(self.n_rows)

    def _emit(self, n_out: int):
        if not self.chunks:
            return
        codes = torch.cat([c for c, _ in self.chunks])  # (n, F)
        target = torch.cat([t for _, t in self.chunks])  # (n, 2)
        order = torch.randperm(codes.shape[0], generator=self.generator)  # (n,)
        rest = order[n_out:]  # (n - n_out,)
        self.chunks = [(codes[rest], target[rest])] if rest.numel() else []
        self.n_rows = int(rest.numel())
        for start in range(0, n_out, self.batch_size):
            idx = order[start : min(start + self.batch_size, n_out)]  # (batch,)
            yield codes[idx], target[idx]


class _StreamDataset(torch.utils.data.IterableDataset):
    """The training rows of a source, encoded batch by batch.

    skorch's net asks it for its batches (``batches``) once per fit and
    iterates them once per epoch. The first pass also fills ``valid`` (the
    held-out rows), ``kept`` (a sample of all rows) and ``code_counts``.
    """

    def __init__(
        self, source, encoder, targets, *, seed, valid_frac, keep_frac, n_train
    ):
        self.source = source
        self.encoder = encoder
        self.targets = targets
        self.seed = seed
        self.valid_frac = valid_frac
        self.keep_frac = keep_frac
        self.n_train = n_train
        n_fields = len(encoder.cardinalities_)
        self.valid = _CodesDataset(
            torch.empty(0, n_fields, dtype=torch.int64), torch.empty(0, 2)
        )
        self.kept = _CodesDataset(
            torch.empty(0, n_fields, dtype=torch.int64), torch.empty(0, 2)
        )
        self.code_counts = None  # (R,) codes of the training rows, after a pass
        self.max_buffered_rows = 0

    def __len__(self) -> int:
        return self.n_train

    def __iter__(self):
        return iter(self.batches(self.source.batch_size, self.seed))

    def batches(self, batch_size: int, seed: int):
        return _StreamBatches(self, batch_size, seed)

    def _encode(self, batch):
        """Codes ``(n, F)`` and target, weight ``(n, 2)`` of a record batch."""
        frame = batch.to_pandas()
        codes = self.encoder.transform(frame[self.source.feature_names])  # (n, F)
        target, weight = self.targets(frame[self.source.target].to_numpy())
        target_weight = np.column_stack([target, weight]).astype(np.float32)  # (n, 2)
        return torch.from_numpy(codes), torch.from_numpy(target_weight)

    def scan(self) -> None:
        """Read the source once without training, if no pass has run yet.

        A fit restored from a finished checkpoint trains no epoch, so this pass
        collects what the first epoch would have: ``valid``, ``kept`` and
        ``code_counts``.
        """
        if self.code_counts is None:
            for _ in self.chunks(torch.Generator().manual_seed(self.seed)):
                pass

    def chunks(self, generator: torch.Generator):
        """Encoded training rows, record batch by record batch, in a fresh order."""
        pa, _, _ = _import_pyarrow()
        first = self.code_counts is None
        if first:
            cardinalities = np.asarray(self.encoder.cardinalities_)
            offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]])  # (F,)
            counts = np.zeros(int(cardinalities.sum()), dtype=np.int64)  # (R,)
            kept = []
        columns = [*self.source.feature_names, self.source.target]
        n_units = len(self.source._units())
        order = torch.randperm(n_units, generator=generator).tolist()
        for position, batch in self.source._batches(columns, order):
            positions = np.arange(position, position + batch.num_rows)  # (n,)
            u = _uniform_hash(positions, self.seed)  # (n,)
            train = u >= self.valid_frac  # (n,)
            if first:
                codes, target = self._encode(batch)
                keep = u < self.keep_frac
                if keep.any():
                    keep_t = torch.from_numpy(keep)
                    kept.append((positions[keep], codes[keep_t], target[keep_t]))
                train_t = torch.from_numpy(train)
                codes, target = codes[train_t], target[train_t]
                counts += np.bincount(
                    (codes.numpy() + offsets).ravel(), minlength=counts.size
                )
            else:
                if not train.all():
                    batch = batch.filter(pa.array(train))
                codes, target = self._encode(batch)
            if codes.shape[0]:
                yield codes, target
        if first:  # a whole pass ran: keep what it saw, in the source's order
            self.code_counts = torch.from_numpy(counts)
            if kept:
                positions = np.concatenate([p for p, _, _ in kept])
                order_kept = torch.from_numpy(np.argsort(positions, kind="stable"))
                codes = torch.cat([c for _, c, _ in kept])[order_kept]  # (k, F)
                target = torch.cat([t for _, _, t in kept])[order_kept]  # (k, 2)
                u = _uniform_hash(np.sort(positions), self.seed)  # (k,)
                is_valid = torch.from_numpy(u < self.valid_frac)  # (k,)
                self.valid.codes = codes[is_valid]
                self.valid.target = target[is_valid]
                self.kept = _CodesDataset(codes, target)


class _StreamBatches:
    """Training batches of a ``_StreamDataset``, reshuffled on every pass.

    ``skip`` batches of the next pass are drawn but not yielded: a fit resumed
    from a checkpoint written within an epoch (``_checkpoint``) reads and
    shuffles the rows of the batches it already trained on, so the generator
    and the shuffle buffer reach the same state, and continues with the batch
    after them.
    """

    def __init__(self, stream: _StreamDataset, batch_size: int, seed: int):
        self.stream = stream
        self.batch_size = batch_size
        self.seed = seed
        self.n_passes = 0
        self.skip = 0

    def __len__(self) -> int:
        return -(-self.stream.n_train // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.n_passes)
        self.n_passes += 1
        buffer = _ShuffleBuffer(
            self.stream.source.shuffle_buffer, self.batch_size, generator
        )
        skip, self.skip = self.skip, 0
        for batch in self._drawn(buffer, generator):
            if skip:
                skip -= 1
                continue
            yield batch
        self.stream.max_buffered_rows = max(self.stream.max_buffered_rows, buffer.peak)

    def _drawn(self, buffer: _ShuffleBuffer, generator: torch.Generator):
        for codes, target in self.stream.chunks(generator):
            yield from buffer.push(codes, target)
        yield from buffer.drain()


def _merge_counts(counts: list[pd.Series]) -> pd.Series:
    """Sum category counts, first appearances first."""
    if len(counts) == 1:
        return counts[0]
    return pd.concat(counts).groupby(level=0, sort=False).sum()


def _learn_encoding(
    estimator, source, *, seed: int, valid_frac: float, statistics=None
):
    """The first pass: encoder, target summary and number of validation rows.

    ``statistics``, a :class:`~sk_fibinet._stream_checkpoint.StatisticsDigest`
    or None, is fed every statistic learned: the summed category counts, the
    numeric sample, the target summary and the number of validation rows.
    """
    names = list(source.feature_names)
    empty = source._empty_frame(names)
    mask = resolve_categorical_mask(
        estimator.categorical_features, names, list(empty.dtypes), True
    )
    for name, is_cat in zip(names, mask, strict=True):
        if not is_cat:
            _numeric_values(empty[name], name)  # a clear error for text columns
    n_rows = source.n_rows
    if n_rows <= source.bin_sample_rows:
        sample = np.arange(n_rows)
    else:
        sample = np.sort(
            np.random.default_rng(seed).choice(
                n_rows, size=source.bin_sample_rows, replace=False
            )
        )
    counts = {name: [] for name, c in zip(names, mask, strict=True) if c}
    values = {name: [] for name, c in zip(names, mask, strict=True) if not c}
    target_stats = []
    n_valid = 0
    target = source.target
    for position, batch in source._batches([*names, target]):
        if batch.column(target).null_count:
            raise ValueError(
                f"The target column {target!r} has missing values; drop those "
                "rows or fill them."
            )
        frame = batch.to_pandas()
        y = estimator._validate_y(frame[target].to_numpy())
        target_stats.append(estimator._target_stats(y))
        lo, hi = np.searchsorted(sample, [position, position + len(frame)])
        rows = sample[lo:hi] - position
        for name in counts:
            counts[name].append(category_counts(frame[name]))
            if len(counts[name]) >= _MERGE_EVERY:
                counts[name] = [_merge_counts(counts[name])]
        for name in values:
            if rows.size:
                values[name].append(_numeric_values(frame[name], name)[rows])
        if len(target_stats) >= _MERGE_EVERY:
            target_stats = [pd.concat(target_stats).groupby(level=0).sum()]
        positions = np.arange(position, position + len(frame))
        n_valid += int((_uniform_hash(positions, seed) < valid_frac).sum())
    stats = (
        _merge_counts(counts[name]) if name in counts else _concat_values(values[name])
        for name in names
    )
    if statistics is not None:
        stats = map(statistics.update, stats)
    encoder = FieldEncoder(
        categorical_features=estimator.categorical_features,
        min_frequency=estimator.min_frequency,
        n_bins=estimator.n_bins,
    )._fit_stats(names, mask, stats)
    target_stats = pd.concat(target_stats).groupby(level=0).sum()
    if statistics is not None:
        statistics.update(target_stats)
        statistics.update(np.array([n_valid]))
    return encoder, target_stats, n_valid


def _concat_values(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(values) if values else np.empty(0)


def fit_source(
    estimator, source, y, sample_weight, *, device, hidden, min_rows_per_cell
):
    """``fit`` on a :class:`ParquetSource`: the streamed counterpart of ``fit``.

    Same structure as the in-memory fit (encoder, targets, validation split,
    callbacks, net, training, calibration, importances) with the rows read
    from the source; returns the fitted estimator.
    """
    if y is not None:
        raise ValueError(
            "y must be None when X is a ParquetSource: the target is the "
            "source's target column, ParquetSource(..., target='name')."
        )
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported with a ParquetSource.")
    if source.target is None:
        raise ValueError(
            "To fit on a ParquetSource, name its target column: "
            "ParquetSource(data, target='name')."
        )
    if getattr(estimator, "distributed", False):
        raise ValueError(
            "distributed=True is not supported with a ParquetSource yet; fit a "
            "DataFrame, or leave it at its default."
        )
    if source.shuffle_buffer < estimator.batch_size:
        raise ValueError(
            f"The source's shuffle_buffer={source.shuffle_buffer} is smaller than "
            f"batch_size={estimator.batch_size}; raise shuffle_buffer."
        )
    n_rows = source.n_rows
    if n_rows == 0:
        raise ValueError("The Parquet source has 0 rows; at least 1 is required.")
    rng = check_random_state(estimator.random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    validate_data(
        estimator,
        source._empty_frame(source.feature_names),
        reset=True,
        skip_check_array=True,
    )  # n_features_in_, feature_names_in_

    early = estimator.early_stopping
    if early == "auto":
        early = n_rows >= 1_000
    keep_frac = min(1.0, source.max_validation_rows / n_rows)
    valid_frac = min(estimator.validation_fraction, keep_frac) if early else 0.0
    checkpoint = statistics = None
    if getattr(estimator, "checkpoint_dir", None) is not None:
        checkpoint = _stream_checkpoint.open_source_checkpoint(estimator, source, seed)
        seed = checkpoint.header["seed"]  # a resumed fit keeps its split and sample
        statistics = _stream_checkpoint.StatisticsDigest()
    encoder, target_stats, n_valid = _learn_encoding(
        estimator, source, seed=seed, valid_frac=valid_frac, statistics=statistics
    )
    if checkpoint is not None:
        _stream_checkpoint.check_statistics(checkpoint, statistics.hexdigest())
    estimator.encoder_ = encoder
    targets = estimator._targets_from_stats(target_stats)
    if early and (n_valid < 1 or n_rows - n_valid < 1):
        raise ValueError(
            f"validation_fraction={estimator.validation_fraction} leaves no "
            f"training or validation data for {n_rows} samples; use "
            "early_stopping=False."
        )
    stream = _StreamDataset(
        source,
        encoder,
        targets,
        seed=seed,
        valid_frac=valid_frac,
        keep_frac=keep_frac,
        n_train=n_rows - n_valid,
    )
    callbacks = list(estimator.callbacks or [])
    train_split = None
    valid_ds = None
    if early:
        valid_ds = stream.valid  # filled during the first epoch's training pass
        train_split = predefined_split(valid_ds)
        callbacks += estimator._monitor_callbacks()
    callbacks.append(("stop_on_non_finite", _StopOnNonFinite()))
    if estimator.verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar(postfix_keys=["train_loss"])))
    if checkpoint is not None:  # last: it saves what the others have updated
        callbacks.append(("checkpoint", checkpoint))

    cross_cells = 0
    if estimator.linear and estimator.variant == "fibinet":
        cross_cells = min(
            estimator.max_cross_cells, stream.n_train // min_rows_per_cell
        )
    if estimator.embedding_l2:
        # embedding_l2 divides by each code's training count: one read-only
        # pass (encoding runs some 40x faster than training) counts them first
        stream.scan()
    estimator.net_ = estimator._build_net(
        encoder=encoder,
        hidden=hidden,
        n_outputs=estimator._n_outputs(),
        cross_cells=cross_cells,
        device=device,
        train_split=train_split,
        callbacks=callbacks,
        seed=seed,
        code_counts=stream.code_counts,
    )
    try:  # the net draws from its own generators, seeded from seed
        estimator.net_.fit(stream, None)
    finally:
        _distributed.detach(estimator.net_)  # a later partial_fit writes no checkpoint
    if checkpoint is not None and checkpoint.resumed_finished_:
        stream.scan()  # no epoch ran: read the rows the first epoch would have
    estimator.n_iter_ = len(estimator.net_.history)
    estimator.net_.module_.fill_untrained_rows(counts=stream.code_counts)
    estimator._after_training(valid_ds)
    estimator.senet_weights_ = estimator._field_weights(stream.kept, mean=True)
    # importances on the held-out rows, or on the sample of all rows without them
    estimator._learn_explanations(stream.kept, valid_ds, seed, stream.code_counts)
    return estimator


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
