"""Fits run in a child process by test_distributed.py, test_checkpoint.py and
test_stream_checkpoint.py (see kill_at_stall).

``python tests/_fit_worker.py ddp OUT_DIR`` is one process of a data-parallel fit
(started with torchrun's environment variables); ``python tests/_fit_worker.py
checkpoint DIR`` fits with ``checkpoint_dir=DIR`` and stalls in epoch 3 so the
test can kill it there; ``python tests/_fit_worker.py stream DIR`` does the same
for a fit streamed from ``DIR/train.parquet``, stalling within epoch 2 after a
checkpoint written within that epoch; ``python tests/_fit_worker.py ddp_stream
DIR`` is one process of a data-parallel fit streamed from ``DIR/train.parquet``;
``ddp_triples OUT_DIR`` one process of a data-parallel fit with a derived field.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from skorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FAST, make_mixed  # noqa: E402

from sk_fibinet import FiBiNETClassifier  # noqa: E402

DDP_ROWS, TEST_ROWS = 2400, 2000
CHECKPOINT_PARAMS = dict(FAST, max_epochs=6, n_iter_no_change=3)
CHECKPOINT_ROWS = 1500
STALL_EPOCH = 3
STREAM_PARAMS = dict(FAST, max_epochs=3, n_iter_no_change=3)
STREAM_SOURCE = dict(
    target="target", batch_size=100, shuffle_buffer=300, checkpoint_every_n_batches=3
)
STREAM_STALL = (2, 8)  # epoch, batch: after the checkpoint of batch 6


def ddp(out: Path) -> None:
    X, y = make_mixed(DDP_ROWS, seed=0)
    X_test, _ = make_mixed(TEST_ROWS, seed=1)
    clf = FiBiNETClassifier(
        **FAST, distributed=True, verbose=1, checkpoint_dir=out / "checkpoints"
    ).fit(X, y)
    rank = dist.get_rank()
    blob = pickle.dumps(clf)  # while the process group is still up
    torch.save(
        {
            "proba": torch.from_numpy(clf.predict_proba(X_test)[:, 1]),
            "state": clf.net_.module_.state_dict(),
            "temperature": clf.temperature_,
            "n_iter": clf.n_iter_,
            "history": [
                {k: v for k, v in row.items() if k not in ("batches", "dur")}
                for row in clf.net_.history
            ],
        },
        out / f"rank{rank}.pt",
    )
    (out / f"rank{rank}.pkl").write_bytes(blob)
    dist.destroy_process_group()


# Shared by test_checkpoint.py and test_stream_checkpoint.py


def checkpoint_file(directory: Path) -> Path:
    (path,) = directory.glob("fit-*.pt")
    return path


def kill_at_stall(mode: str, directory: Path) -> None:
    """Run this worker's ``mode`` ("checkpoint" or "stream") on ``directory`` in
    a child process, SIGKILL it once it has written ``directory / "stalled"``
    (within 120 s) and check that the kill is what ended it."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), mode, str(directory)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not (directory / "stalled").exists():
            assert child.poll() is None, child.communicate()[0].decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the stall"
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


class Fail(Callback):
    """Raise in training batch ``batch`` of epoch ``epoch``: an interrupted fit."""

    def __init__(self, epoch, batch):
        self.epoch = epoch
        self.batch = batch

    def on_batch_end(self, net, training=None, **kwargs):
        if training and len(net.history) == self.epoch:
            if len(net.history[-1, "batches"]) == self.batch:
                raise RuntimeError("interrupted")


class CountBatches(Callback):
    def initialize(self):
        self.n_batches = 0
        return self

    def on_batch_end(self, net, training=None, **kwargs):
        self.n_batches += bool(training)


class _StallInEpoch(Callback):
    """Announce, then sleep in training batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, marker: Path, batch: int = 2):
        self.epoch = epoch
        self.marker = marker
        self.batch = batch

    def on_batch_end(self, net, training=None, **kwargs):
        if training and len(net.history) == self.epoch:
            if len(net.history[-1, "batches"]) == self.batch:
                self.marker.write_text("stalled")
                time.sleep(600)


def checkpoint(directory: Path) -> None:
    X, y = make_mixed(CHECKPOINT_ROWS, seed=0)
    stall = _StallInEpoch(STALL_EPOCH, directory / "stalled")
    FiBiNETClassifier(
        **CHECKPOINT_PARAMS, checkpoint_dir=directory, callbacks=[("stall", stall)]
    ).fit(X, y)


def stream(directory: Path) -> None:
    from sk_fibinet import ParquetSource

    epoch, batch = STREAM_STALL
    stall = _StallInEpoch(epoch, directory / "stalled", batch=batch)
    FiBiNETClassifier(
        **STREAM_PARAMS,
        checkpoint_dir=directory / "checkpoints",
        callbacks=[("stall", stall)],
    ).fit(ParquetSource(directory / "train.parquet", **STREAM_SOURCE))


def ddp_stream(directory: Path) -> None:
    """One process of a data-parallel fit streamed from ``DIR/train.parquet``."""
    from sk_fibinet import ParquetSource

    X_test, _ = make_mixed(TEST_ROWS, seed=1)
    source = ParquetSource(
        directory / "train.parquet", target="target", batch_size=100, shuffle_buffer=300
    )
    reads = []  # the row groups of every pass read in a drawn order (the epochs)
    read_all = source._batches

    def recording(columns, order=None):
        if order is not None:
            reads.append(list(order))
        return read_all(columns, order)

    source._batches = recording
    clf = FiBiNETClassifier(
        **STREAM_PARAMS,
        distributed=True,
        verbose=1,
        checkpoint_dir=directory / "checkpoints",
    ).fit(source)
    rank = dist.get_rank()
    torch.save(
        {
            "proba": torch.from_numpy(clf.predict_proba(X_test)[:, 1]),
            "state": clf.net_.module_.state_dict(),
            "n_iter": clf.n_iter_,
            "history": [
                {k: v for k, v in row.items() if k not in ("batches", "dur")}
                for row in clf.net_.history
            ],
            "reads": reads,
            "n_units": len(source._units()),
            "importances": torch.from_numpy(clf.feature_importances_),
        },
        directory / f"stream_rank{rank}.pt",
    )
    dist.destroy_process_group()


def ddp_triples(out: Path) -> None:
    """One process of a data-parallel fit that derives a crossed triple (the
    evidence asked from 1,000 rows, so a small table will do)."""
    from test_cross_triples import make_parity

    import sk_fibinet.preprocessing.cross_evidence as cross_evidence

    cross_evidence.MIN_ROWS = 1000
    X, y, _, _ = make_parity()
    clf = FiBiNETClassifier(**dict(FAST, max_epochs=2), distributed=True).fit(X, y)
    torch.save(
        {
            "crosses": [list(t) for t in clf.encoder_.crosses_],
            "proba": torch.from_numpy(clf.predict_proba(X)[:, 1]),
        },
        out / f"triples_rank{dist.get_rank()}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    workers = {
        "ddp": ddp,
        "ddp_triples": ddp_triples,
        "ddp_stream": ddp_stream,
        "checkpoint": checkpoint,
        "stream": stream,
    }
    workers[sys.argv[1]](Path(sys.argv[2]))
