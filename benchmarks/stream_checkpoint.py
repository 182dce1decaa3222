"""What checkpoints cost a streamed fit: save time and size, against training.

Writes Criteo-shaped Parquet (``--n-rows``, 100,000 by default), fits
``FiBiNETClassifier(max_epochs=1)`` with otherwise default parameters from a
:class:`sk_fibinet.ParquetSource` with ``checkpoint_dir`` and a save every
``--every`` batches, and prints:

* the median time of a training batch and of a checkpoint save, the file size,
  and the share of the training time that saving every 2,000 batches (the
  default ``checkpoint_every_n_batches``) would take;
* rows/s of the first pass and of reading, encoding and shuffling an epoch
  without training, which is what a resumed fit does for the batches of the
  interrupted epoch it already trained on.

::

    python benchmarks/stream_checkpoint.py --n-rows 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo_like import make_criteo_like  # noqa: E402

from sk_fibinet import FiBiNETClassifier, ParquetSource  # noqa: E402
from sk_fibinet.data.stream_batches import _StreamDataset  # noqa: E402
from sk_fibinet.data.stream_passes import _learn_encoding  # noqa: E402
from sk_fibinet.training import checkpoint as _checkpoint  # noqa: E402


class _BatchTimes(Callback):
    def on_train_begin(self, net, **kwargs):
        self.times, self.last = [], time.perf_counter()

    def on_batch_end(self, net, training=None, **kwargs):
        now = time.perf_counter()
        if training:
            self.times.append(now - self.last)
        self.last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-rows", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp())
    try:
        X, y = make_criteo_like(n_rows=args.n_rows, random_state=0)
        for name in X.columns[: sum(X.dtypes == "category")]:  # text: categorical
            X[name] = X[name].astype(str).astype("category")
        X.assign(click=y).to_parquet(folder / "train.parquet", row_group_size=50_000)
        source = ParquetSource(
            folder / "train.parquet",
            target="click",
            checkpoint_every_n_batches=args.every,
        )

        saves = []
        save = _checkpoint._atomic_save

        def timed_save(payload, path):
            start = time.perf_counter()
            save(payload, path)
            saves.append((time.perf_counter() - start, path.stat().st_size))

        _checkpoint._atomic_save = timed_save
        batches = _BatchTimes()
        clf = FiBiNETClassifier(
            max_epochs=1,
            random_state=0,
            checkpoint_dir=folder / "checkpoints",
            callbacks=[batches],
        )
        clf.fit(source)
        _checkpoint._atomic_save = save
        batch_s = float(np.median(batches.times))  # the median leaves out saves
        save_s = float(np.median([s for s, _ in saves]))
        size_mb = saves[-1][1] / 1e6

        start = time.perf_counter()
        encoder, stats, n_valid, _, _, _ = _learn_encoding(
            clf, source, seed=1, valid_frac=0.1
        )
        first_pass = args.n_rows / (time.perf_counter() - start)
        stream = _StreamDataset(
            source,
            encoder,
            clf._targets_from_stats(stats),
            seed=1,
            valid_frac=0.1,
            keep_frac=0.5,
            n_train=args.n_rows - n_valid,
        )
        start = time.perf_counter()
        for _ in stream.batches(clf.batch_size, 0):
            pass
        replay = args.n_rows / (time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    trained = clf.batch_size / batch_s
    print(f"{args.n_rows:,} Criteo-shaped rows, default network, 1 thread")
    print("| measure | value |")
    print("|---|---|")
    batch_ms = batch_s * 1e3
    print(f"| training batch (median) | {batch_ms:.0f} ms ({trained:,.0f} rows/s) |")
    print(f"| checkpoint save (median of {len(saves)}) | {save_s * 1e3:.0f} ms |")
    print(f"| checkpoint file | {size_mb:.1f} MB |")
    share = save_s / (2_000 * batch_s)
    print(f"| save every 2,000 batches | {share:.3%} of training |")
    print(f"| first pass | {first_pass:,.0f} rows/s |")
    print(f"| replay (read, encode, shuffle) | {replay:,.0f} rows/s |")
    print(f"| replay of half an epoch | {0.5 * trained / replay:.1%} of its training |")


if __name__ == "__main__":
    main()
