"""The epochs of a fit on a :class:`~sk_fibinet.data.parquet.ParquetSource`.

Every epoch reads the row groups in a fresh seeded order, encodes each batch
to field codes and feeds the training rows to skorch through a bounded shuffle
buffer (``_ShuffleBuffer``). A training row gets its out-of-fold target
statistics and a held-out row those of the training rows, computed batch by
batch.

The held-out rows (:mod:`sk_fibinet.data.held_out`) are encoded once, during
the first epoch, and kept in memory (at most about ``max_validation_rows``),
together with a sample of all rows of the same size for
``feature_importances_``.

A fit resumed from a checkpoint written within an epoch reads and shuffles the
interrupted epoch's rows again, dropping the batches already trained (see
``_StreamBatches``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..training.net import _CodesDataset
from .features import with_statistics
from .held_out import _statistic_values, _uniform_hash
from .parquet import _import_pyarrow


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
