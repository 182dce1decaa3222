"""The skorch side: the net subclass, dataset, batch iterator, callbacks.

Everything here speaks tensors; the estimators in ``estimators/base.py``,
``estimators/classifier.py`` and ``estimators/regressor.py`` translate
scikit-learn's API into it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from skorch import NeuralNet
from skorch.callbacks import Callback

from ..nn.layers import Dropout

# Rows per prediction chunk. The pair products are computed a cache-sized block
# at a time whatever the chunk, so larger chunks only amortise per-chunk costs:
# predict_proba on 20k Criteo-shaped rows, default network, ran at 47.7k /
# 51.5k / 50.7k rows/s with chunks of 1,024 / 2,048 / 4,096 (medians of 5).
_PREDICT_BATCH_SIZE = 2048


class _CodesDataset(torch.utils.data.Dataset):
    """Pre-encoded field codes (and targets) held as whole tensors."""

    def __init__(self, codes: torch.Tensor, target: torch.Tensor | None = None):
        self.codes = codes  # (n, F) int64
        self.target = target  # (n, 2) float32: target (class index), weight

    def __len__(self) -> int:
        return self.codes.shape[0]

    def __getitem__(self, i):
        y = None if self.target is None else self.target[i]
        return self.codes[i], y


class _BatchIterator:
    """Yield whole batches by slicing tensors, never row by row."""

    def __init__(self, dataset: _CodesDataset, batch_size: int, seed: int | None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed  # None: keep the order
        # skorch asks for the training iterator once per fit and iterates it
        # once per epoch: each pass draws the next permutation.
        self.n_passes = 0
        # batches the next pass leaves out (a fit resumed mid-epoch, _checkpoint)
        self.skip = 0

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        codes, target = self.dataset.codes, self.dataset.target
        n = codes.shape[0]
        if self.seed is None:
            for start in range(0, n, self.batch_size):
                stop = start + self.batch_size
                yield codes[start:stop], None if target is None else target[start:stop]
            return
        generator = torch.Generator().manual_seed(self.seed + self.n_passes)
        self.n_passes += 1
        order = torch.randperm(n, generator=generator)  # (n,)
        skip, self.skip = self.skip, 0
        for start in range(skip * self.batch_size, n, self.batch_size):
            idx = order[start : start + self.batch_size]  # (batch,)
            yield codes[idx], None if target is None else target[idx]


class _ToCuda:
    """Batches of another iterator copied to a CUDA device asynchronously.

    Each batch is pinned (page-locked) on the host and copied with
    ``non_blocking=True``, so the copy of the next batch overlaps the GPU work
    of the previous one; skorch's own move to the device is then a no-op.
    """

    def __init__(self, iterator, device: torch.device):
        self.iterator = iterator
        self.device = device

    def __len__(self) -> int:
        return len(self.iterator)

    def __iter__(self):
        for batch in self.iterator:
            yield tuple(
                None if t is None else t.pin_memory().to(self.device, non_blocking=True)
                for t in batch
            )


def _derived_seed(*entropy: int) -> int:
    """A 63-bit seed derived from ``entropy`` (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2)
    return int(state[0]) << 31 ^ int(state[1])


class _FiBiNETNet(NeuralNet):
    """skorch net fed with pre-encoded tensors, with a weighted loss.

    The target tensor carries the target (a class index, or a scaled regression
    target) and the sample weight per row, so weights reach the loss without
    touching the module's signature. ``task`` names the loss (see
    :data:`TASKS`).

    A fit never draws from torch's global generator (fits in threads do not
    disturb each other): the module is built with its own generator seeded
    from ``shuffle_seed``, and every training step hands the module's
    :class:`~._network.Dropout` layers a generator seeded from (``shuffle_seed``,
    epoch, batch[, process rank]), so a fit resumed mid-epoch or continued by
    ``partial_fit`` draws the masks the uninterrupted fit would have, without
    storing generator states.
    """

    def __init__(
        self,
        *args,
        shuffle_seed=0,
        predict_batch_size=_PREDICT_BATCH_SIZE,
        task="log_loss",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.shuffle_seed = shuffle_seed
        self.predict_batch_size = predict_batch_size
        self.task = task

    def notify(self, method_name, **cb_kwargs):
        # skorch calls PrintLog last, so an EarlyStopping that stops training
        # (by raising KeyboardInterrupt in on_epoch_end) used to swallow the
        # printed row of the epoch it stopped after: run every callback, then stop.
        if method_name != "on_epoch_end":
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        stop = None
        for _, cb in self.callbacks_:
            try:
                getattr(cb, method_name)(self, **cb_kwargs)
            except KeyboardInterrupt as exc:
                stop = exc
        if stop is not None:
            raise stop

    def initialize_module(self):
        # skorch's own, but the module draws its initial weights from a
        # generator of this fit's seed rather than torch's global one
        kwargs = self.get_params_for("module")
        generator = torch.Generator().manual_seed(_derived_seed(self.shuffle_seed))
        self.module_ = self.initialized_instance(
            self.module, {**kwargs, "generator": generator}
        )
        return self

    def _seed_dropout(self) -> None:
        """Give the module's dropout layers the generator of this training step."""
        layers = [m for m in self.module_.modules() if isinstance(m, Dropout)]
        if not layers:
            return
        epoch = len(self.history)
        batch = len(self.history[-1, "batches"]) if epoch else 0
        entropy = [self.shuffle_seed, epoch, batch]
        processes = getattr(self, "processes_", None)
        if processes is not None:  # each process draws its own masks
            entropy.append(processes.rank)
        device = next(self.module_.parameters()).device
        generator = torch.Generator(device=device)
        generator.manual_seed(_derived_seed(*entropy))
        for layer in layers:
            layer.generator = generator

    def train_step_single(self, batch, **fit_params):
        self._seed_dropout()
        processes = getattr(self, "processes_", None)
        if processes is None:
            return super().train_step_single(batch, **fit_params)
        # data-parallel: gradients and loss summed over the processes' shares
        step = super().train_step_single(batch, **fit_params)
        step["loss"] = processes.reduce_gradients(
            self.module_, step["loss"], len(batch[0])
        )
        return step

    def evaluation_step(self, batch, training=False):
        # Prediction under inference_mode rather than skorch's no_grad: the
        # blocked pair products are many small ops, and inference mode skips
        # their autograd bookkeeping (version counters, view tracking).
        if training:
            return super().evaluation_step(batch, training=True)
        self.check_is_fitted()
        with torch.inference_mode():
            self._set_training(False)
            return self.infer(batch[0])

    def get_dataset(self, X, y=None):
        if isinstance(X, torch.utils.data.Dataset):  # codes, or streamed rows
            return X
        return _CodesDataset(torch.as_tensor(X, dtype=torch.int64))

    def get_iterator(self, dataset, training=False):
        if training:
            # Called once per fit (skorch's fit_loop builds the iterator before
            # the epoch loop): the iterator itself moves to a fresh, reproducible
            # permutation on every pass, starting after the epochs already run
            # (a warm start continues the sequence).
            seed = self.shuffle_seed + len(self.history)
            processes = getattr(self, "processes_", None)  # a distributed fit
            if isinstance(dataset, torch.utils.data.IterableDataset):
                # stream_batches.py; a distributed fit: this process's share
                iterator = dataset.batches(self.batch_size, seed, processes)
            elif processes is None:
                iterator = _BatchIterator(dataset, self.batch_size, seed)
            else:
                iterator = processes.shard(dataset, self.batch_size, seed)
            iterator.skip = self.__dict__.pop("resume_batches_", 0)
        else:
            iterator = _BatchIterator(dataset, self.predict_batch_size, None)
        device = torch.device(self.device)
        return _ToCuda(iterator, device) if device.type == "cuda" else iterator

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = y_true.to(y_pred.device)  # (batch, 2)
        label, weight = y_true[:, 0], y_true[:, 1]  # (batch,), (batch,)
        return (_row_losses(y_pred, label, self.task) * weight).mean()


# The losses the net can train: the classifier's log loss, the regressor's.
TASKS = ("log_loss", "squared_error", "absolute_error", "poisson")


def _row_losses(
    logits: torch.Tensor, label: torch.Tensor, task: str = "log_loss"
) -> torch.Tensor:
    """Unreduced loss per row.

    ``"log_loss"``: sigmoid for one logit, softmax otherwise. The regression
    losses read the single output column: ``"squared_error"`` and
    ``"absolute_error"`` compare it with the target, ``"poisson"`` takes it as
    the log of the mean and returns the negative log-likelihood without its
    constant term, ``exp(z) - y z``.
    """
    if task != "log_loss":
        z = logits[:, 0]  # (n,)
        label = label.to(z.dtype)  # (n,)
        if task == "squared_error":
            return (z - label).square()  # (n,)
        if task == "absolute_error":
            return (z - label).abs()  # (n,)
        if task == "poisson":
            return torch.nn.functional.poisson_nll_loss(
                z, label, log_input=True, full=False, reduction="none"
            )  # (n,)
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    if logits.shape[1] == 1:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, 0], label.to(logits.dtype), reduction="none"
        )  # (n,)
    return torch.nn.functional.cross_entropy(
        logits, label.long(), reduction="none"
    )  # (n,)


class _ValidScore(Callback):
    """Record validation ROC AUC and the calibrated log loss after every epoch.

    Uses the logits of skorch's own validation pass, so the validation rows are
    not run through the network a second time. ``valid_auc`` is the ROC AUC
    (binary) or the one-vs-rest macro AUC; ``valid_loss_calibrated`` is the
    weighted log loss after dividing the logits by the temperature that
    minimises it (``valid_temperature``), the probabilities the estimator
    would return had training stopped at this epoch. A network that keeps
    ranking better while it grows over-confident lowers the calibrated loss
    while the raw ``valid_loss`` rises; early stopping watches the former.
    """

    def __init__(self, calibrate: bool = True):
        self.calibrate = calibrate

    def on_epoch_begin(self, net, **kwargs):
        self.logits_, self.targets_ = [], []

    def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
        if not training and y_pred is not None:
            # kept on the device: one copy to the host per epoch, not per batch
            self.logits_.append(y_pred.detach())  # (batch, n_outputs)
            self.targets_.append(batch[1])  # (batch, 2): class index, weight

    def on_epoch_end(self, net, **kwargs):
        if not self.logits_:
            return
        logits = torch.cat(self.logits_).cpu()  # (n_valid, n_outputs)
        target = torch.cat(self.targets_).cpu()  # (n_valid, 2)
        self.logits_, self.targets_ = [], []
        if self.calibrate:
            temperature, loss = _fit_temperature(logits, target, return_loss=True)
            net.history.record("valid_temperature", temperature)
            net.history.record("valid_loss_calibrated", loss)
        y = target[:, 0].long().numpy()
        proba = _logits_to_proba(logits)
        n_classes = proba.shape[1]
        if np.unique(y).size < 2:
            return
        if n_classes == 2:
            score = roc_auc_score(y, proba[:, 1])
        elif np.unique(y).size == n_classes:
            score = roc_auc_score(y, proba, multi_class="ovr")
        else:
            return
        net.history.record("valid_auc", float(score))


class _StopOnNonFinite(Callback):
    """Stop at once with advice when the training loss becomes NaN or inf.

    Reads the batch loss skorch has already recorded as a Python float, so the
    check adds no device synchronisation of its own.
    """

    def on_batch_end(self, net, training=None, **kwargs):
        if not training:
            return
        loss = net.history[-1, "batches", -1].get("train_loss")
        if loss is not None and not math.isfinite(loss):
            check = (
                "sample_weight / class_weight"
                if net.task == "log_loss"
                else "sample_weight and the target"
            )
            raise FloatingPointError(
                "Training diverged: the loss became "
                f"{loss} at epoch {len(net.history)}. Lower learning_rate, "
                f"raise weight_decay, or check {check} for extreme values."
            )


@contextmanager
def _eval_mode(module: torch.nn.Module):
    """Evaluation mode for the block, the previous mode restored after it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _silent(*args, **kwargs):
    """A picklable sink that prints nothing."""


def _logits_to_proba(logits: torch.Tensor) -> np.ndarray:
    """Logits (n, 1) or (n, K) to float64 probabilities (n, 2) or (n, K)."""
    logits = logits.detach().to("cpu", torch.float64)  # (n, n_outputs)
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])  # (n,)
        return torch.stack([1.0 - p1, p1], dim=1).numpy()  # (n, 2)
    return torch.softmax(logits, dim=1).numpy()  # (n, K)


def _fit_temperature(
    logits: torch.Tensor, target: torch.Tensor, return_loss: bool = False
):
    """Temperature minimising the weighted log loss of ``logits / T``.

    With ``return_loss``, also return that minimum loss (the loss at ``T = 1``
    when no temperature improves on it).
    """
    from scipy.optimize import minimize_scalar

    z = logits.detach().to("cpu", torch.float64)  # (n, n_outputs)
    label, weight = target[:, 0].double(), target[:, 1].double()  # (n,), (n,)

    def loss(log_t: float) -> float:
        losses = _row_losses(z / np.exp(log_t), label)  # (n,)
        return float((losses * weight).sum() / weight.sum())

    result = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded")
    plain = loss(0.0)
    if not np.isfinite(result.fun) or result.fun > plain:
        temperature, best = 1.0, plain
    else:
        temperature, best = float(np.exp(result.x)), float(result.fun)
    return (temperature, best) if return_loss else temperature
