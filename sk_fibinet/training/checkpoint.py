"""Checkpoints that let a killed fit resume where it stopped.

With ``checkpoint_dir`` set, ``fit`` writes one file per fit into the directory,
named after a fingerprint of the estimator class, its parameters (all but
``verbose``, ``device``, ``callbacks``, ``distributed`` and ``checkpoint_dir``)
and the encoded training data. A fit that finds its file resumes from it; a fit
with other data or parameters has another fingerprint, writes another file and
leaves the first one alone. (A fit streamed from Parquet is recognised by
its source's metadata instead of its encoded rows: ``_stream_checkpoint``.)

The file is written after every epoch (and, for fits that ask for it, every
``every_n_batches`` training batches) to a temporary name and moved over the
previous one with ``os.replace``, so a fit killed at any moment leaves the last
complete checkpoint. It is a ``torch.save`` archive of tensors and plain Python
values only, read back with ``torch.load(weights_only=True)`` as
``load_model`` does: network weights, optimizer state, history, early stopping
state and the seed (which fixes the validation split, the shuffling, the initial
weights and the dropout masks of every batch: no generator state is stored).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from numbers import Integral
from pathlib import Path

import torch
from skorch.callbacks import Callback
from skorch.history import History

from .._serialization import _check_torch_safe, _history_to_json, _plain

FORMAT_NAME = "sk_fibinet.checkpoint"
FORMAT_VERSION = 1
# Parameters that do not change what is trained.
_NOT_FINGERPRINTED = ("verbose", "device", "callbacks", "distributed", "checkpoint_dir")
# Callback attributes that carry over from epoch to epoch (skorch's EarlyStopping,
# and the best score of its scoring callbacks).
_CALLBACK_STATE = (
    "misses_",
    "dynamic_threshold_",
    "best_epoch_",
    "best_model_weights_",
    "best_score_",
)


def _plain_params(model) -> dict:
    """The fingerprinted parameters as plain values (``repr`` where not plain)."""

    params = model.get_params(deep=False)
    out = {}
    for name in sorted(params):
        if name in _NOT_FINGERPRINTED:
            continue
        value = params[name]
        if name == "random_state":  # a RandomState: the seed drawn is stored
            value = int(value) if isinstance(value, Integral) else None
        try:
            out[name] = _plain(value, name)
        except ValueError:
            out[name] = repr(value)
    return out


def fingerprint(model, codes: torch.Tensor, target: torch.Tensor) -> str:
    """Hex digest of the estimator class, its parameters and the encoded data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(model).__name__.encode())
    digest.update(repr(_plain_params(model)).encode())
    for tensor in (codes, target):
        tensor = tensor.contiguous()
        digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.numpy().data)
    return digest.hexdigest()


def _load(path: Path) -> dict:

    _check_torch_safe()
    try:
        with warnings.catch_warnings():  # a pickle is refused below anyway
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT_NAME:
            raise ValueError(f"format is {state.get('format')!r}")
    except Exception as exc:
        raise ValueError(
            f"The checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc)[:200]}); delete it to train from the start."
        ) from exc
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"The checkpoint {str(path)!r} has format version "
            f"{state.get('format_version')!r}; this sk_fibinet reads version "
            f"{FORMAT_VERSION}. Delete it to train from the start."
        )
    return state


def open_checkpoint(
    model, directory, fingerprint: str, seed: int, processes=None, every_n_batches=None
):
    """The checkpoint callback of a fit, loaded with the state to resume, if any.

    Under a distributed fit every process reads the file, so ``directory`` must
    be one they share; they check that they found the same checkpoint.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fit-{fingerprint[:24]}.pt"
    state = _load(path) if path.exists() else None
    if state is not None and state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"The checkpoint {str(path)!r} belongs to another fit (its fingerprint "
            "differs in more than the part in its name); delete it."
        )
    if processes is not None:
        found = (
            [-1, -1] if state is None else [state["epochs_done"], state["batches_done"]]
        )
        everyone = processes.all_gather(torch.tensor(found)).cpu()  # (world_size, 2)
        if not torch.equal(everyone, everyone[:1].expand_as(everyone)):
            raise ValueError(
                f"The processes of a distributed fit found different checkpoints in "
                f"{str(directory)!r} (epochs, batches done, -1: none, by rank: "
                f"{everyone.tolist()}); checkpoint_dir must be a directory that "
                "every process reads, such as a shared file system."
            )
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "estimator": type(model).__name__,
        "params": _plain_params(model),
        "seed": int(seed) if state is None else int(state["seed"]),
    }
    return _Checkpoint(
        path,
        header,
        state=state,
        write=processes is None or processes.rank == 0,
        every_n_batches=every_n_batches,
    )


def _atomic_save(payload: dict, path: Path) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old or the new file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _callback_state(net) -> dict:
    out = {}
    for name, cb in net.callbacks_:
        state = {}
        for attr in _CALLBACK_STATE:
            value = getattr(cb, attr, None)
            if value is None:
                continue
            if isinstance(value, dict):  # best_model_weights_: a state dict
                state[attr] = {k: v.detach().to("cpu") for k, v in value.items()}
            else:
                state[attr] = value.item() if hasattr(value, "item") else value
        if state:
            out[name] = state
    return out


class _Checkpoint(Callback):
    """Write the training state after every epoch; resume from it at train begin.

    Parameters
    ----------
    path : Path
        The checkpoint file.
    header : dict
        Plain values identifying the fit (fingerprint, parameters, seed).
    state : dict or None
        A checkpoint read from ``path``, to resume from.
    write : bool
        Whether this process writes (process 0 of a distributed fit).
    every_n_batches : int or None
        Also write after every ``every_n_batches`` training batches. A fit
        resumed from such a checkpoint continues the epoch after the batches it
        holds: the training iterator is told how many batches to leave out
        through ``net.resume_batches_``, which ``_FiBiNETNet.get_iterator`` hands
        to the iterator's ``skip``; a streaming iterator that honours ``skip``
        (drops that many batches of its first pass, drawing them the same way)
        resumes exactly as the in-memory one does.
    """

    def __init__(self, path, header, *, state=None, write=True, every_n_batches=None):
        self.path = path
        self.header = header
        self.state = state
        self.write = write
        self.every_n_batches = every_n_batches

    def __getstate__(self):
        return {**self.__dict__, "state": None}

    # ----------------------------------------------------------------- save
    def _finished(self, net) -> bool:
        if len(net.history) >= self.max_epochs_:
            return True
        return any(  # early stopping has raised its stop
            getattr(cb, "misses_", 0) >= getattr(cb, "patience", float("inf"))
            for _, cb in net.callbacks_
        )

    def _save(self, net, *, batches_done=0, finished=False) -> None:
        if not self.write:
            return

        epochs_done = len(net.history) - (1 if batches_done else 0)
        payload = {
            **self.header,
            "epochs_done": epochs_done,
            "batches_done": batches_done,
            "finished": bool(finished),
            "module": {k: v.detach() for k, v in net.module_.state_dict().items()},
            "optimizer": net.optimizer_.state_dict(),
            "history": _history_to_json(net.history),
            "callbacks": _callback_state(net),
            # no generator state: the net seeds its generators from (seed,
            # epoch, batch); kept None for readers of format version 1
            "rng": None,
        }
        _atomic_save(payload, self.path)

    # --------------------------------------------------------------- resume
    def on_train_begin(self, net, **kwargs):
        self.max_epochs_ = net.max_epochs
        self.partial_batches_ = None
        self.resumed_finished_ = False
        state, self.state = self.state, None
        if state is None:
            return
        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        rows = json.loads(state["history"])
        if state["batches_done"]:  # mid-epoch: the epoch restarts after them
            self.partial_batches_ = rows.pop()["batches"]
            net.resume_batches_ = int(state["batches_done"])
        net.history = History(rows)
        saved = state["callbacks"]
        for name, cb in net.callbacks_:
            for attr, value in saved.get(name, {}).items():
                setattr(cb, attr, value)
        if state["finished"]:
            self.resumed_finished_ = True
            net.max_epochs = 0
        else:
            net.max_epochs = max(self.max_epochs_ - int(state["epochs_done"]), 0)

    def on_epoch_begin(self, net, **kwargs):
        batches, self.partial_batches_ = self.partial_batches_, None
        for batch in batches or ():
            net.history.new_batch()
            for key, value in batch.items():
                net.history.record_batch(key, value)

    # ----------------------------------------------------------------- save
    def on_batch_end(self, net, training=None, **kwargs):
        if not training or not self.every_n_batches:
            return
        done = len(net.history[-1, "batches"])
        if done % self.every_n_batches == 0:
            self._save(net, batches_done=done)

    def on_epoch_end(self, net, **kwargs):
        self._save(net, finished=self._finished(net))

    def on_train_end(self, net, **kwargs):
        net.max_epochs = self.max_epochs_
        # after early stopping has restored the best weights; not after an
        # interruption (KeyboardInterrupt), which leaves the last checkpoint
        if self._finished(net) and not self.resumed_finished_:
            self._save(net, finished=True)
