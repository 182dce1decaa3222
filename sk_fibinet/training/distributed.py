"""Data-parallel training over a ``torch.distributed`` process group (torchrun).

Every process is given the same data and fits the encoder, the validation split
and the seed identically; each takes its own share of every training batch (from
a ``ParquetSource``, each reads its own row groups: see
:class:`~sk_fibinet.data.stream_batches._StreamBatches`). After
each backward pass the gradients are summed over the processes (dense ones with
one all-reduce, the sparse embedding gradients by gathering their rows, which
works on gloo and NCCL alike), so every process applies the same update and the
weights stay identical. Validation runs on the whole validation split in every
process, and the scores of process 0 are handed to all before early stopping, so
every process stops after the same epoch.

Nothing here is pickled: :class:`Processes` lives on the skorch net during one
fit only.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from skorch.callbacks import Callback, ProgressBar

from .net import _BatchIterator, _silent

# The variables torchrun sets that init_process_group("env://") reads.
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Epoch scores handed from process 0 to the others before early stopping.
_EPOCH_SCORES = (
    "train_loss",
    "valid_loss",
    "valid_loss_calibrated",
    "valid_temperature",
    "valid_auc",
)


def _dist():
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError(
            "distributed=True needs torch.distributed, which this PyTorch build "
            "does not include."
        )
    return dist


def start(distributed: bool, device: torch.device):
    """The process group to train over, and the device of this process.

    Returns ``(None, device)`` without ``distributed`` or in a group of one
    process. Without an initialised default group, one is started from the
    variables torchrun sets (``env://``): NCCL for CUDA devices, gloo otherwise.
    On CUDA, ``device="cuda"`` (no index) becomes ``cuda:LOCAL_RANK``.
    """
    if not distributed:
        return None, device
    dist = _dist()
    if device.type == "cuda" and device.index is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if not dist.is_initialized():
        missing = [v for v in _TORCHRUN_VARIABLES if v not in os.environ]
        if missing:
            raise ValueError(
                "distributed=True needs a torch.distributed process group: launch "
                "the script with torchrun (e.g. `torchrun --nproc-per-node 2 "
                "train.py`), which sets the environment variables "
                f"{list(_TORCHRUN_VARIABLES)} (missing here: {missing}), or call "
                "torch.distributed.init_process_group() before fit."
            )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    world_size = dist.get_world_size()
    if world_size == 1:
        return None, device
    backend = str(dist.get_backend()).lower()
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(
            f"The process group uses NCCL, which needs device='cuda'; got "
            f"device={str(device)!r}. Use a gloo process group on CPUs."
        )
    # gloo reduces host tensors; NCCL reduces tensors on the process's GPU
    comm_device = device if backend == "nccl" else torch.device("cpu")
    return Processes(dist.get_rank(), world_size, comm_device), device


class Processes:
    """The processes of one data-parallel fit: rank, size and collectives."""

    #: How the sparse embedding gradients are summed: ``"gather"`` the touched
    #: rows of every process (default), or ``"dense"``: densify, all-reduce with
    #: the dense gradients, and sparsify again (kept to measure the difference,
    #: see benchmarks/ddp_scaling.py).
    sparse_mode = "gather"

    def __init__(self, rank: int, world_size: int, comm_device: torch.device):
        self.rank = rank
        self.world_size = world_size
        self.comm_device = comm_device
        self._warned = False

    def __reduce__(self):
        raise TypeError(
            "The process group of a distributed fit cannot be pickled; it is "
            "removed from the net when fit ends."
        )

    # ---------------------------------------------------------- collectives
    def _to_comm(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.comm_device)

    def broadcast_(self, tensor: torch.Tensor) -> None:
        """Overwrite ``tensor`` in place with process 0's."""
        buffer = self._to_comm(tensor.detach())
        _dist().broadcast(buffer, src=0)
        if buffer is not tensor:
            tensor.data.copy_(buffer)

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(world_size, *tensor.shape)``: every process's ``tensor``, by rank."""
        tensor = self._to_comm(tensor.contiguous())
        out = torch.empty(
            (self.world_size * tensor.shape[0], *tensor.shape[1:]),
            dtype=tensor.dtype,
            device=tensor.device,
        )  # (world_size * n, ...): the tensors one after the other
        dist = _dist()
        # all_gather_into_tensor was renamed all_gather_single in torch 2.13
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather(out, tensor)
        return out.view(self.world_size, *tensor.shape)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of every process's ``tensor``, on the host."""
        out = self._to_comm(tensor.clone())
        _dist().all_reduce(out)
        return out.cpu()

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``(n_r, ...)`` rows one after the other, by rank,
        on the host; ``n_r`` may differ between processes."""
        counts = self.all_gather(torch.tensor([tensor.shape[0]])).reshape(-1).cpu()
        longest = int(counts.max())
        if longest == 0:  # no process has a row
            return tensor.cpu()
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))  # (longest, ...)
        padded[: tensor.shape[0]] = tensor
        everyone = self.all_gather(padded).cpu()  # (world_size, longest, ...)
        return torch.cat([everyone[r, : counts[r]] for r in range(self.world_size)])

    def broadcast_seed(self, seed: int) -> int:
        """Process 0's seed (``random_state=None`` draws one per process)."""
        value = torch.tensor([seed], dtype=torch.int64)
        self.broadcast_(value)
        return int(value[0])

    def check_same(self, fingerprint: str) -> None:
        """Raise on every process unless all were given the same data and params."""
        mine = torch.tensor(list(bytes.fromhex(fingerprint)), dtype=torch.uint8)
        everyone = self.all_gather(mine).cpu()  # (world_size, n_bytes)
        differ = [
            r
            for r in range(self.world_size)
            if not torch.equal(everyone[r], everyone[0])
        ]
        if differ:
            raise ValueError(
                f"distributed fit: process(es) {differ} were given other data or "
                "parameters than process 0. Every process must call fit with the "
                "same X, y, sample_weight and estimator parameters (each trains on "
                "its own share of the rows)."
            )

    def broadcast_float(self, value: float) -> float:
        out = torch.tensor([float(value)], dtype=torch.float64)
        self.broadcast_(out)
        return float(out[0])

    # -------------------------------------------------------------- training
    def shard(self, dataset, batch_size: int, seed: int) -> _BatchIterator:
        return _ShardedBatchIterator(
            dataset, batch_size, seed, rank=self.rank, world_size=self.world_size
        )

    @torch.no_grad()
    def reduce_gradients(
        self, module: torch.nn.Module, loss: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """Turn each process's gradient into the gradient of the whole batch.

        Every process holds the mean loss of its ``n_rows`` rows and its
        gradient. The row-weighted sum over processes, divided by the total
        number of rows, is the gradient of the mean loss over the whole batch,
        as one process would compute it. Returns that batch loss.
        """
        dist = _dist()
        sparse_ids = {
            id(m.weight)
            for m in module.modules()
            if isinstance(m, torch.nn.Embedding) and m.sparse
        }
        params = [p for p in module.parameters() if p.requires_grad]
        sparse = [p for p in params if id(p) in sparse_ids]
        dense = [p for p in params if id(p) not in sparse_ids]
        densified = []
        if self.sparse_mode == "dense":
            densified, sparse = sparse, []
            for p in densified:
                if p.grad is not None:
                    p.grad = p.grad.to_dense()  # (rows, width)
            dense = dense + densified
        for p in dense:  # a parameter this batch did not reach: zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        loss = loss.detach().float().reshape(())  # ()
        tail = torch.stack([loss, torch.ones((), device=loss.device)])  # (2,)
        flat = torch.cat(
            [self._to_comm(p.grad.reshape(-1)).float() for p in dense]
            + [self._to_comm(tail)]
        )  # (n_dense + 2,): gradients, loss, 1
        flat *= n_rows  # means over this process's rows -> sums; 1 -> row count
        dist.all_reduce(flat)
        total_rows = flat[-1].clone()  # () rows of the whole batch
        flat /= total_rows
        start = 0
        for p in dense:
            n = p.numel()
            p.grad.copy_(flat[start : start + n].view_as(p.grad))
            start += n
        for p in densified:  # back to the rows that have a gradient, for lazy Adam
            p.grad = p.grad.to_sparse(1)  # (rows, width), sparse by row
        for p in sparse:
            grad = self._gather_sparse(p.grad, p.shape, n_rows, float(total_rows))
            p.grad = grad.to(p.device)  # (rows, width) sparse
        return flat[-2].to(loss.device)  # () mean loss of the whole batch

    def _gather_sparse(
        self, grad, shape, n_rows: int, total_rows: float
    ) -> torch.Tensor:
        """Sum a sparse ``(rows, width)`` gradient over the processes.

        NCCL has no sparse all-reduce, so the touched rows and their values are
        gathered (padded to the largest count) and summed by ``coalesce``.
        """
        if grad is None:  # no row of this process's share reached the table
            grad = torch.sparse_coo_tensor(
                torch.empty(1, 0, dtype=torch.int64),
                torch.empty(0, *shape[1:]),
                shape,
                check_invariants=False,
            )
        grad = grad.coalesce()
        index = self._to_comm(grad.indices()[0])  # (nnz,)
        values = self._to_comm(grad.values()) * n_rows  # (nnz, width)
        counts = self.all_gather(torch.tensor([index.numel()])).reshape(-1).cpu()
        longest = int(counts.max())
        padded_index = index.new_zeros(longest)  # (longest,)
        padded_index[: index.numel()] = index
        padded_values = values.new_zeros((longest, *values.shape[1:]))
        padded_values[: index.numel()] = values
        all_index = self.all_gather(padded_index)  # (world_size, longest)
        all_values = self.all_gather(padded_values)  # (world_size, longest, width)
        keep = torch.arange(longest) < counts[:, None]  # (world_size, longest)
        keep = keep.to(all_index.device)
        summed = torch.sparse_coo_tensor(
            all_index[keep][None],
            all_values[keep] / total_rows,
            shape,
            check_invariants=False,  # indices come from valid gradients
        )  # (rows, width), duplicate rows summed below
        return summed.coalesce()

    def broadcast_float_buffers(self, module: torch.nn.Module) -> None:
        """Running statistics (BatchNorm) from process 0, as DDP does."""
        for buffer in module.buffers():
            if buffer.is_floating_point():
                self.broadcast_(buffer)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        for tensor in list(module.parameters()) + list(module.buffers()):
            self.broadcast_(tensor)

    def check_in_sync(self, module: torch.nn.Module) -> None:
        """Re-synchronise from process 0 if the weights have drifted apart.

        Summed gradients and identical updates keep the weights bit-identical;
        a device whose kernels are not deterministic could break that, and a
        checksum per epoch catches it.
        """
        total = torch.stack(
            [p.detach().double().sum() for p in module.parameters()]
        ).sum()  # ()
        everyone = self.all_gather(total.reshape(1)).cpu()  # (world_size, 1)
        if torch.equal(everyone, everyone[:1].expand_as(everyone)):
            return
        if not self._warned:
            warnings.warn(
                "distributed fit: the weights of the processes drifted apart "
                "(non-deterministic kernels?); they are reset to process 0's after "
                "every epoch where this happens.",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned = True
        self.broadcast_module(module)


class _ShardedBatchIterator(_BatchIterator):
    """Each process's share of every batch the one-process iterator would yield.

    Batches are drawn from the permutation one process would use; process
    ``rank`` takes rows ``rank, rank + world_size, ...`` of each. A last batch
    with fewer rows than processes joins the one before it, so every process
    has rows in every step.
    """

    def __init__(self, dataset, batch_size, seed, *, rank, world_size):
        super().__init__(dataset, batch_size, seed)
        self.rank = rank
        self.world_size = world_size

    def _starts(self, n: int) -> list[int]:
        starts = list(range(0, n, self.batch_size))
        if len(starts) > 1 and n - starts[-1] < self.world_size:
            starts.pop()
        return starts + [n]

    def __len__(self) -> int:
        return len(self._starts(len(self.dataset))) - 1

    def __iter__(self):
        codes, target = self.dataset.codes, self.dataset.target
        n = codes.shape[0]
        generator = torch.Generator().manual_seed(self.seed + self.n_passes)
        self.n_passes += 1
        order = torch.randperm(n, generator=generator)  # (n,)
        starts = self._starts(n)[self.skip :]
        self.skip = 0
        for start, stop in zip(starts[:-1], starts[1:], strict=True):
            idx = order[start:stop][self.rank :: self.world_size]  # (share,)
            yield codes[idx], target[idx]


class _SyncProcesses(Callback):
    """Keep the processes of a distributed fit in step (see the module docstring).

    Reads the :class:`Processes` from ``net.processes_`` at every call, so the
    callback itself holds no process-group state and stays picklable.
    """

    def on_train_begin(self, net, **kwargs):
        processes = getattr(net, "processes_", None)
        if processes is not None:
            processes.broadcast_module(net.module_)

    def on_batch_end(self, net, training=None, **kwargs):
        processes = getattr(net, "processes_", None)
        if processes is not None and training:
            processes.broadcast_float_buffers(net.module_)

    def on_epoch_end(self, net, **kwargs):
        processes = getattr(net, "processes_", None)
        if processes is None:
            return
        row = net.history[-1]
        values = torch.tensor(
            [float(row.get(key, np.nan)) for key in _EPOCH_SCORES],
            dtype=torch.float64,
        )  # (n_scores,)
        processes.broadcast_(values)
        for key, value in zip(_EPOCH_SCORES, values.tolist(), strict=True):
            if key in row:
                net.history.record(key, value)
        processes.check_in_sync(net.module_)


def add_callbacks(callbacks: list, processes: Processes) -> list:
    """``callbacks`` for one process of a distributed fit.

    :class:`_SyncProcesses` goes before early stopping; processes other than
    0 print nothing (no progress bar, silent sinks).
    """
    names = [item[0] if isinstance(item, tuple) else None for item in callbacks]
    at = names.index("early_stopping") if "early_stopping" in names else len(names)
    callbacks = (
        callbacks[:at] + [("distributed_sync", _SyncProcesses())] + callbacks[at:]
    )
    if processes.rank == 0:
        return callbacks
    quiet = []
    for item in callbacks:
        cb = item[1] if isinstance(item, tuple) else item
        if isinstance(cb, ProgressBar):
            continue
        if hasattr(cb, "sink"):
            cb.sink = _silent
        quiet.append(item)
    return quiet


def attach(net, processes: Processes | None) -> None:
    """Hand ``net`` the processes it trains with (None: one process)."""
    net.processes_ = processes
    if processes is not None and processes.rank > 0:
        net.verbose = 0


def detach(net) -> None:
    """After fit: drop the process group (so ``net`` pickles) and fit-only callbacks.

    The synchronising and checkpoint callbacks belong to the fit that added
    them; a later ``net.partial_fit`` must not overwrite that fit's checkpoint.
    """
    if hasattr(net, "processes_"):
        del net.processes_
    fit_only = ("distributed_sync", "checkpoint")
    if isinstance(net.callbacks, list):
        net.callbacks = [
            item
            for item in net.callbacks
            if not (isinstance(item, tuple) and item[0] in fit_only)
        ]
    if hasattr(net, "callbacks_"):
        net.callbacks_ = [(n, cb) for n, cb in net.callbacks_ if n not in fit_only]
