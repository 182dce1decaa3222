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

# Row positions hashed at once when counting each row group's training rows.
_HASH_BLOCK = 1 << 20


class _ShuffleBuffer:
    """Mixes rows in a buffer of at most ``capacity`` rows and yields batches.

    When the buffer is full it is permuted and about half of it leaves as
    batches; the rest stays to be mixed with the rows that come next. Batches
    have ``batch_size`` rows (the last of a pass fewer), or the sizes listed in
    ``sizes``, in order, which must add up to the rows pushed (one process's
    share of every step of a distributed fit; each is at most ``capacity``).
    """

    def __init__(
        self,
        capacity: int,
        batch_size: int,
        generator: torch.Generator,
        sizes: list[int] | None = None,
    ):
        self.capacity = capacity
        self.batch_size = batch_size
        self.generator = generator
        self.sizes = None if sizes is None else list(sizes)
        self.sized_for = None if sizes is None else sum(self.sizes)
        self.pushed = 0
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
            self.pushed += take
            self.peak = max(self.peak, self.n_rows)
            start = stop
            if self.n_rows == self.capacity:
                yield from self._emit(self._half())

    def drain(self):
        if self.sizes is None:
            full, rest = divmod(self.n_rows, self.batch_size)
            sizes = [self.batch_size] * full + ([rest] if rest else [])
        else:
            sizes, self.sizes = self.sizes, []
            if self.pushed != self.sized_for:
                raise RuntimeError(
                    f"the pass gave the shuffle buffer {self.pushed} rows, but its "
                    f"batches were sized for {self.sized_for}."
                )
        yield from self._emit(sizes)

    def _half(self) -> list[int]:
        """The sizes of the batches that leave a full buffer: about half of it."""
        half = self.capacity // 2
        if self.sizes is None:
            return [self.batch_size] * max(1, half // self.batch_size)
        taken, total = 0, 0
        while taken < len(self.sizes) and (
            taken == 0 or total + self.sizes[taken] <= half
        ):
            total += self.sizes[taken]
            taken += 1
        if taken == 0:
            raise RuntimeError(
                f"the pass gave the shuffle buffer more rows than its batches "
                f"were sized for ({self.sized_for})."
            )
        out, self.sizes = self.sizes[:taken], self.sizes[taken:]
        return out

    def _emit(self, sizes: list[int]):
        if not self.chunks:
            return
        n_out = sum(sizes)
        codes = torch.cat([c for c, _ in self.chunks])  # (n, F)
        target = torch.cat([t for _, t in self.chunks])  # (n, 2)
        order = torch.randperm(codes.shape[0], generator=self.generator)  # (n,)
        rest = order[n_out:]  # (n - n_out,)
        self.chunks = [(codes[rest], target[rest])] if rest.numel() else []
        self.n_rows = int(rest.numel())
        start = 0
        for size in sizes:
            idx = order[start : start + size]  # (size,)
            start += size
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

    def batches(self, batch_size: int, seed: int, processes=None):
        """The training batches of every epoch; with ``processes`` (a
        distributed fit), this process's share of each (see ``_StreamBatches``)."""
        return _StreamBatches(self, batch_size, seed, processes)

    def unit_train_rows(self) -> np.ndarray:
        """``(n_units,)`` training rows (not held out) of each row group."""
        if getattr(self, "_unit_train_rows", None) is None:
            counts = []
            position = 0
            for _, n in self.source._units():
                kept = 0
                for start in range(position, position + n, _HASH_BLOCK):
                    stop = min(start + _HASH_BLOCK, position + n)
                    u = _uniform_hash(np.arange(start, stop), self.seed)  # (block,)
                    kept += int((u >= self.valid_frac).sum())
                counts.append(kept)
                position += n
            self._unit_train_rows = np.asarray(counts, dtype=np.int64)
        return self._unit_train_rows

    def _encode(self, batch, positions, train):
        """Codes ``(n, F)`` and target, weight ``(n, 2)`` of a record batch."""
        return self.encode_frame(batch.to_pandas(), positions, train)

    def encode_frame(self, frame, positions, train):
        """Codes ``(n, F)`` and target, weight ``(n, 2)`` of a frame of the
        source's rows (input columns and target).

        With target statistics, a training row (``train``) gets its
        out-of-fold statistics and a held-out row those of the training rows.
        """
        features = frame[self.source.feature_names]
        statistics = self.statistics
        if statistics is not None:
            values = _statistic_values(statistics, features, positions, train)
            features = with_statistics(features, statistics.feature_names_, values)
        codes = self.encoder.transform(features)  # (n, F)
        target, weight = self.targets(frame[self.source.target].to_numpy())
        target_weight = np.column_stack([target, weight]).astype(np.float32)  # (n, 2)
        return torch.from_numpy(codes), torch.from_numpy(target_weight)

    def scan(self, processes=None) -> None:
        """Read the source once without training, if no pass has run yet.

        It collects what the first epoch would have: ``valid``, ``kept`` and
        ``code_counts`` (for ``embedding_l2`` before training, or for a fit
        restored from a finished checkpoint, which trains no epoch). With
        ``processes`` (a distributed fit) process ``rank`` reads row groups
        ``rank, rank + world_size, ...`` and what they saw is gathered.
        """
        if self.code_counts is not None:
            return
        share = None
        if processes is not None:
            units = range(len(self.source._units()))
            share = (processes, list(units[processes.rank :: processes.world_size]))
        for _ in self.chunks(torch.Generator().manual_seed(self.seed), share):
            pass

    def chunks(self, generator: torch.Generator, share=None):
        """Encoded training rows, record batch by record batch, in a fresh order.

        ``share``: ``(processes, units)`` when this process reads only the row
        groups ``units`` (drawn in that order) of a distributed fit; what the
        first pass collects (held-out rows, the sample, the code counts) is
        then gathered from every process.
        """
        pa, _, _ = _import_pyarrow()
        first = self.code_counts is None
        if first:
            cardinalities = np.asarray(self.encoder.cardinalities_)
            offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]])  # (F,)
            counts = np.zeros(int(cardinalities.sum()), dtype=np.int64)  # (R,)
            kept = []
        columns = [*self.source.feature_names, self.source.target]
        if share is None:
            n_units = len(self.source._units())
            order = torch.randperm(n_units, generator=generator).tolist()
        else:
            order = share[1]
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
            n_fields = len(self.encoder.cardinalities_)
            positions = [np.empty(0, np.int64)] + [p for p, _, _ in kept]
            positions = np.concatenate(positions)  # (k,)
            codes = torch.cat(
                [torch.empty(0, n_fields, dtype=torch.int64)] + [c for _, c, _ in kept]
            )  # (k, F)
            target = torch.cat([torch.empty(0, 2)] + [t for _, _, t in kept])  # (k, 2)
            counts = torch.from_numpy(counts)  # (R,)
            if share is not None:  # every process read its own row groups
                processes = share[0]
                counts = processes.sum(counts)  # (R,)
                positions = processes.gather_rows(torch.from_numpy(positions)).numpy()
                codes = processes.gather_rows(codes)  # (k over processes, F)
                target = processes.gather_rows(target)  # (k over processes, 2)
            self.code_counts = counts
            if positions.size:
                order_kept = torch.from_numpy(np.argsort(positions, kind="stable"))
                codes = codes[order_kept]  # (k, F)
                target = target[order_kept]  # (k, 2)
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

    With ``processes`` (a distributed fit) every process yields its share of
    each of the ``len(self)`` steps of a pass. Every process draws the same
    order of the row groups and deals them out (``_deal``): each reads and
    encodes only its own, and splits its training rows into one share per
    step, so the shares of a step add up to about ``batch_size`` rows. Where
    some process would get fewer training rows than there are steps (fewer
    row groups than processes, or very uneven ones), every process reads every
    row group in that pass and takes rows ``rank, rank + world_size, ...`` of
    each one-process batch (``_every_row_group``).
    """

    #: Deal out the row groups (default); False: every process reads every row
    #: group (kept to measure the difference, see benchmarks/ddp_scaling.py).
    deal_row_groups = True

    def __init__(self, stream: _StreamDataset, batch_size: int, seed: int, processes):
        self.stream = stream
        self.batch_size = batch_size
        self.seed = seed
        self.processes = processes
        self.n_passes = 0
        self.skip = 0

    def __len__(self) -> int:
        return -(-self.stream.n_train // self.batch_size)

    def __iter__(self):
        pass_seed = self.seed + self.n_passes
        generator = torch.Generator().manual_seed(pass_seed)
        self.n_passes += 1
        skip, self.skip = self.skip, 0
        capacity = self.stream.source.shuffle_buffer
        share = None
        if self.processes is not None and self.deal_row_groups:
            share = self._deal(pass_seed)
        if share is None:
            buffer = _ShuffleBuffer(capacity, self.batch_size, generator)
            batches = self._drawn(buffer, generator)
            if self.processes is not None:
                batches = _every_row_group(
                    batches, self.processes.rank, self.processes.world_size
                )
        else:
            units, sizes = share
            buffer = _ShuffleBuffer(capacity, self.batch_size, generator, sizes)
            batches = self._drawn(buffer, generator, (self.processes, units))
        for batch in batches:
            if skip:
                skip -= 1
                continue
            yield batch
        self.stream.max_buffered_rows = max(self.stream.max_buffered_rows, buffer.peak)

    def _deal(self, pass_seed: int):
        """This process's row groups (in drawing order) and the size of its
        share of every step, or None where some process would get fewer
        training rows than there are steps.

        The row groups are drawn in the order a one-process pass would read
        them; each goes to the process with the fewest training rows so far
        (the lowest rank on a tie), so every process computes the same deal.
        """
        rank, world_size = self.processes.rank, self.processes.world_size
        train_rows = self.stream.unit_train_rows()  # (n_units,)
        generator = torch.Generator().manual_seed(pass_seed)
        order = torch.randperm(len(train_rows), generator=generator).tolist()
        loads = np.zeros(world_size, dtype=np.int64)  # (world_size,)
        mine = []
        for unit in order:
            owner = int(np.argmin(loads))
            loads[owner] += train_rows[unit]
            if owner == rank:
                mine.append(unit)
        n_steps = len(self)
        if loads.min() < n_steps or loads.sum() != self.stream.n_train:
            return None
        n_mine = int(loads[rank])
        sizes = [n_mine // n_steps + (i < n_mine % n_steps) for i in range(n_steps)]
        return mine, sizes

    def _drawn(self, buffer: _ShuffleBuffer, generator: torch.Generator, share=None):
        for codes, target in self.stream.chunks(generator, share):
            yield from buffer.push(codes, target)
        yield from buffer.drain()


def _every_row_group(batches, rank: int, world_size: int):
    """Rows ``rank, rank + world_size, ...`` of each one-process batch.

    Every process streams every row group with the same seed, so all of them
    draw the same batches; a batch with fewer rows than processes (only the
    last of a pass can be one) joins the batch before it, so every process
    has rows in every step.
    """
    step = slice(rank, None, world_size)
    pending = None
    for codes, target in batches:  # (batch, F), (batch, 2)
        if pending is not None and codes.shape[0] < world_size:
            pending = (
                torch.cat([pending[0], codes]),  # (batch + tail, F)
                torch.cat([pending[1], target]),  # (batch + tail, 2)
            )
            continue
        if pending is not None:
            yield pending[0][step], pending[1][step]  # (share, F), (share, 2)
        pending = codes, target
    if pending is not None:
        yield pending[0][step], pending[1][step]  # (share, F), (share, 2)
