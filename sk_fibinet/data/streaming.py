"""Fit and predict from Parquet data that need not fit in memory.

A :class:`ParquetSource` names Parquet files (or a ``pyarrow.dataset.Dataset``)
and the target column. ``fit`` on a source makes two kinds of passes over it,
each reading one batch of rows at a time:

* the first pass learns the encoding: exact category counts per categorical
  column (summed batch by batch, then turned into vocabularies by the same
  :class:`~sk_fibinet.preprocessing.encoding.FieldEncoder` rules as in
  memory), the numeric
  values of a bounded, seeded sample of rows (``bin_sample_rows``, as
  HistGradientBoosting bins from a 200k-row sample) for the bin edges, and the
  summaries of the targets the estimator needs (classes, target scale);
* every epoch then reads the row groups in a fresh seeded order, encodes each
  batch to field codes and feeds the training rows to skorch through a bounded
  shuffle buffer.

With ``target_stats="auto"`` (see ``_target_stats``) the statistics are
those of an in-memory fit on the same rows, at the cost of one or two more
passes that read only the columns they need, made when the first pass chose
some columns:

* the columns are chosen by ``select_columns`` on the first pass's category
  counts of the training rows (all counts minus those of the held-out rows,
  which the first pass also counts);
* with two or more chosen columns, a pass over those columns sketches their
  pairs (``PairSketch``, training rows only) and the pairs are chosen;
* a pass over the chosen columns and the target accumulates
  ``TargetStatistics.update`` over the training rows (the held-out ones left
  out), each row at its position in the source, the position the validation
  hash reads (so, without a hold-out, the folds of an in-memory fit). The
  first pass cannot do it: the columns, and the targets' encoding the
  statistics average, are known only at its end. The same pass keeps the bin
  sample's rows of those columns; their statistics (out-of-fold for a
  training row, of the training rows for a held-out one) give the bin edges
  of the statistic columns, as the in-memory encoder bins the out-of-fold
  values of its rows (the same values when the sample holds every row).

In every epoch a training row then gets its out-of-fold statistics and a
held-out row those of the training rows, computed batch by batch; memory
grows with the distinct values of the chosen columns (times the folds), not
with the rows.

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
from sklearn.utils.validation import check_is_fitted, validate_data

from ..preprocessing.encoding import (
    _numeric_values,
    category_counts,
    resolve_categorical_mask,
)
from ..preprocessing.target_stats import (
    PairSketch,
    TargetStatistics,
    candidate_pairs,
    select_columns,
)
from ..training.engine import Encoded
from ..training.net import _CodesDataset
from . import stream_checkpoint as _stream_checkpoint
from .features import make_encoder, with_statistics
from .held_out import add_held_out_rows

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
        self,
        source,
        encoder,
        targets,
        *,
        seed,
        valid_frac,
        keep_frac,
        n_train,
        statistics=None,
    ):
        self.source = source
        self.encoder = encoder
        self.statistics = statistics
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

    def _encode(self, batch, positions, train):
        """Codes ``(n, F)`` and target, weight ``(n, 2)`` of a record batch.

        With target statistics, a training row (``train``) gets its
        out-of-fold statistics and a held-out row those of the training rows.
        """
        frame = batch.to_pandas()
        features = frame[self.source.feature_names]
        statistics = self.statistics
        if statistics is not None:
            values = _statistic_values(statistics, features, positions, train)
            features = with_statistics(features, statistics.feature_names_, values)
        codes = self.encoder.transform(features)  # (n, F)
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
                codes, target = self._encode(batch, positions, train)
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
                    positions = positions[train]
                codes, target = self._encode(
                    batch, positions, np.ones(len(positions), dtype=bool)
                )
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
                self.kept.codes, self.kept.target = codes, target


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
    """The first pass, and the statistics passes: encoder, target summary,
    number of validation rows and target statistics.

    ``statistics``, a :class:`~sk_fibinet.data.stream_checkpoint.StatisticsDigest`
    or None, is fed every statistic learned: the summed category counts, the
    numeric sample, the target summary, the number of validation rows and the
    target statistics (see :func:`_target_statistics`).

    Returns
    -------
    encoder : FieldEncoder
    target_summary : Series
        The summed target summaries (``_targets_from_stats``).
    n_valid : int
    target_stats : TargetStatistics or None
        Updated with the training rows; None when ``target_stats`` adds none.
    held_out : list
        The held-out rows the statistics take in once fitted (see
        :func:`_target_statistics`); empty without statistics.
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
    # categories of the held-out rows: target statistics choose their columns
    # on the training rows' counts (all counts minus these), as in memory
    valid_counts = (
        {name: [] for name in counts}
        if estimator.target_stats is not None and valid_frac > 0
        else None
    )
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
        target_stats.append(estimator._target_summary(y))
        lo, hi = np.searchsorted(sample, [position, position + len(frame)])
        rows = sample[lo:hi] - position
        positions = np.arange(position, position + len(frame))
        is_valid = _uniform_hash(positions, seed) < valid_frac  # (n,)
        for name in counts:
            counts[name].append(category_counts(frame[name]))
            if len(counts[name]) >= _MERGE_EVERY:
                counts[name] = [_merge_counts(counts[name])]
            if valid_counts is not None and is_valid.any():
                valid_counts[name].append(category_counts(frame[name][is_valid]))
                if len(valid_counts[name]) >= _MERGE_EVERY:
                    valid_counts[name] = [_merge_counts(valid_counts[name])]
        for name in values:
            if rows.size:
                values[name].append(_numeric_values(frame[name], name)[rows])
        if len(target_stats) >= _MERGE_EVERY:
            target_stats = [pd.concat(target_stats).groupby(level=0).sum()]
        n_valid += int(is_valid.sum())
    stats = [
        _merge_counts(counts[name]) if name in counts else _concat_values(values[name])
        for name in names
    ]
    if statistics is not None:
        stats = [statistics.update(stat) for stat in stats]
    target_stats = pd.concat(target_stats).groupby(level=0).sum()
    if statistics is not None:
        statistics.update(target_stats)
        statistics.update(np.array([n_valid]))
    te, held_out = None, []
    if estimator.target_stats is not None and n_rows - n_valid > 0:
        train_counts = {}
        for name in counts:
            merged = stats[names.index(name)]
            if valid_counts is not None and valid_counts[name]:
                held = _merge_counts(valid_counts[name])
                merged = merged.sub(held.reindex(merged.index, fill_value=0))
            train_counts[name] = merged
        te, te_values, held_out = _target_statistics(
            estimator,
            source,
            train_counts,
            seed=seed,
            valid_frac=valid_frac,
            n_train=n_rows - n_valid,
            targets=estimator._targets_from_stats(target_stats),
            sample=sample,
        )
        if te is not None:
            names = [*names, *te.feature_names_]
            mask = np.concatenate([mask, np.zeros(te_values.shape[1], dtype=bool)])
            stats += list(te_values.T)  # (n_sample,) per statistic column
            if statistics is not None:
                statistics.update(np.array(te.feature_names_))
                for array in te.digest_arrays():
                    statistics.update(array)
                statistics.update(te_values)
    n_statistics = 0 if te is None else len(te.feature_names_)
    encoder = make_encoder(estimator, is_frame=True, n_statistics=n_statistics)
    encoder._fit_stats(names, mask, stats)
    return encoder, target_stats, n_valid, te, held_out


def _training_frames(source, columns, *, seed: int, valid_frac: float):
    """``(frame, positions, is_train)`` of every record batch, in source order."""
    for position, batch in source._batches(list(columns)):
        frame = batch.to_pandas()
        positions = np.arange(position, position + len(frame))  # (n,)
        yield frame, positions, _uniform_hash(positions, seed) >= valid_frac


def _target_statistics(
    estimator, source, train_counts, *, seed, valid_frac, n_train, targets, sample
):
    """Choose and accumulate the target statistics of a streamed fit.

    The rule is :func:`~sk_fibinet.data.features.plan_statistics`'s, on the training
    rows (the held-out rows left out): the columns from the first pass's
    training counts; then, with two or more columns, one pass over those
    columns only to sketch their pairs (:class:`PairSketch`); then one pass over
    the chosen columns and the target to accumulate the statistics of the
    training rows (positions: each row's position in the source, the one the
    validation hash reads). The second pass also keeps the bin sample's rows,
    whose statistics (out-of-fold for a training row, of the training rows for
    a held-out one) are returned for the encoder's bins.

    Returns
    -------
    statistics : TargetStatistics or None
    values : ndarray of shape (n_sample, n_statistics) or None
    held : list of (DataFrame, ndarray, ndarray, ndarray)
        The held-out rows of the chosen columns with their target, weight and
        positions (at most ``max_validation_rows``), for
        :func:`~sk_fibinet.data.held_out.add_held_out_rows` once fitted.
    """
    if not train_counts:
        return None, None, []
    columns, _ = select_columns(train_counts, n_train)
    pairs = candidate_pairs(columns)
    summary = None
    if pairs:
        sketch = PairSketch(pairs)
        for frame, _, train in _training_frames(
            source, columns, seed=seed, valid_frac=valid_frac
        ):
            sketch.update(frame[train] if not train.all() else frame)
        summary = sketch.summary()
    columns, pairs = select_columns(train_counts, n_train, summary)
    if not columns and not pairs:
        return None, None, []
    statistics = TargetStatistics(columns, pairs, seed=seed)
    members = list(dict.fromkeys([*columns, *(c for p in pairs for c in p)]))
    kept, held = [], []
    for frame, positions, train in _training_frames(
        source, [*members, source.target], seed=seed, valid_frac=valid_frac
    ):
        if not len(frame):
            continue
        target, weight = targets(frame[source.target].to_numpy())
        rows = frame[members]
        if train.any():
            statistics.update(
                rows[train],
                estimator._statistics_target(target[train]),
                weight=weight[train],
                positions=positions[train],
            )
        if not train.all():  # at most max_validation_rows rows in all
            held.append(
                (
                    rows[~train],
                    estimator._statistics_target(target[~train]),
                    weight[~train],
                    positions[~train],
                )
            )
        lo, hi = np.searchsorted(sample, [positions[0], positions[-1] + 1])
        if hi > lo:
            at = sample[lo:hi] - positions[0]
            kept.append((rows.iloc[at], positions[at], train[at]))
    statistics.rows_seen_ = source.n_rows  # positions of a later partial_fit
    frame = pd.concat([f for f, _, _ in kept], ignore_index=True)
    positions = np.concatenate([p for _, p, _ in kept])  # (n_sample,)
    train = np.concatenate([t for _, _, t in kept])  # (n_sample,)
    values = _statistic_values(statistics, frame, positions, train)  # (n_sample, k)
    return statistics, values, held


def _statistic_values(statistics, frame, positions, train) -> np.ndarray:
    """``(n, k)`` statistics of ``frame``'s rows: out of fold for a training
    row (``train`` true), of the training rows for a held-out one."""
    values = np.empty((len(frame), len(statistics.feature_names_)))  # (n, k)
    if train.any():
        oof = statistics.out_of_fold(frame[train], positions[train])
        values[train] = oof.to_numpy()
    if not train.all():
        values[~train] = statistics.transform(frame[~train]).to_numpy()
    return values


def _concat_values(values: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(values) if values else np.empty(0)


class StreamSource:
    """A :class:`ParquetSource` as the training engine reads it (``fit(source)``).

    The first pass (``_learn_encoding``) learns the encoder and the targets'
    encoding; the held-out rows are chosen by a seeded hash of the row
    position and filled during the first epoch, with a sample of all rows
    for the explanations (see the module docstring).
    """

    epochs = None  # max_epochs, or until early stopping
    can_hold_out = True

    def __init__(self, source, y=None, sample_weight=None):
        self.source, self.y, self.sample_weight = source, y, sample_weight

    def check(self, model, *, first: bool = True) -> None:
        source = self.source
        if self.y is not None:
            raise ValueError(
                "y must be None when X is a ParquetSource: the target is the "
                "source's target column, ParquetSource(..., target='name')."
            )
        if self.sample_weight is not None:
            raise ValueError("sample_weight is not supported with a ParquetSource.")
        if source.target is None:
            raise ValueError(
                "To fit on a ParquetSource, name its target column: "
                "ParquetSource(data, target='name')."
            )
        if model.distributed:
            raise ValueError(
                "distributed=True is not supported with a ParquetSource yet; fit a "
                "DataFrame, or leave it at its default."
            )
        if source.shuffle_buffer < model.batch_size:
            raise ValueError(
                f"The source's shuffle_buffer={source.shuffle_buffer} is smaller "
                f"than batch_size={model.batch_size}; raise shuffle_buffer."
            )
        self.n_rows = source.n_rows
        if self.n_rows == 0:
            raise ValueError("The Parquet source has 0 rows; at least 1 is required.")
        validate_data(
            model,
            source._empty_frame(source.feature_names),
            reset=True,
            skip_check_array=True,
        )  # n_features_in_, feature_names_in_

    def open_checkpoint(self, model, seed: int, processes):
        self.statistics = None
        if model.checkpoint_dir is None:
            return None
        self.statistics = _stream_checkpoint.StatisticsDigest()
        return _stream_checkpoint.open_source_checkpoint(model, self.source, seed)

    def encode(self, model, *, seed: int, hold_out: bool, checkpoint) -> Encoded:
        source, n_rows = self.source, self.n_rows
        keep_frac = min(1.0, source.max_validation_rows / n_rows)
        valid_frac = min(model.validation_fraction, keep_frac) if hold_out else 0.0
        # the held-out rows join the statistics once fitted (finish)
        encoder, target_summary, n_valid, statistics, self._held_out = _learn_encoding(
            model,
            source,
            seed=seed,
            valid_frac=valid_frac,
            statistics=self.statistics,
        )
        if statistics is not None:  # a clear error for clashing column names
            with_statistics(
                source._empty_frame(source.feature_names),
                statistics.feature_names_,
                np.empty((0, len(statistics.feature_names_))),
            )
        model.target_stats_ = statistics
        if checkpoint is not None:
            _stream_checkpoint.check_statistics(checkpoint, self.statistics.hexdigest())
        targets = model._targets_from_stats(target_summary)
        if hold_out and (n_valid < 1 or n_rows - n_valid < 1):
            _refuse_split(model, n_rows)
        stream = _StreamDataset(
            source,
            encoder,
            targets,
            seed=seed,
            valid_frac=valid_frac,
            keep_frac=keep_frac,
            n_train=n_rows - n_valid,
            statistics=statistics,
        )

        def counts():
            stream.scan()  # one read-only pass, if no epoch has run
            return stream.code_counts

        def after_fit():
            if checkpoint is not None and checkpoint.resumed_finished_:
                stream.scan()  # no epoch ran: read the rows the first would have

        return Encoded(
            encoder=encoder,
            train=stream,
            n_train=stream.n_train,
            valid=stream.valid if hold_out else None,  # filled by the first pass
            kept=stream.kept,  # filled by the first pass
            explain_rows=stream.kept,
            centre_rows=None,
            counts=counts,
            after_fit=after_fit,
            finish=self._add_held_out_statistics,
        )

    def _add_held_out_statistics(self, model) -> None:
        """Give the target statistics the held-out rows' targets as well, as
        :meth:`~sk_fibinet.data.frame_source.FrameSource.encode` does: they
        decided early stopping with statistics of the training rows; prediction
        uses all."""
        held, self._held_out = self._held_out, []
        if held:
            add_held_out_rows(model.target_stats_, held)


def _refuse_split(model, n_rows: int):
    raise ValueError(
        f"validation_fraction={model.validation_fraction} leaves no "
        f"training or validation data for {n_rows} samples; use "
        "early_stopping=False."
    )


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
