"""What target_stats="auto" costs a fit streamed from Parquet.

Writes a Parquet file (``--n-rows``, 200,000 by default) with a user ID, an
item ID mostly fixed by the user (so the user x item pair is chosen), a small
categorical column and two numbers, and prints, with and without statistics,
the rows/s of

* the encoding passes (the first pass, plus the pair-sketch and accumulation
  passes over the chosen columns when ``target_stats="auto"``);
* one epoch's reading and encoding without training (each batch's training
  rows get out-of-fold statistics, the held-out rows those of the training
  rows).

Best of ``--repeat`` runs; the machine's other load makes single runs noisy.

::

    python benchmarks/stream_target_stats.py --n-rows 200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sk_fibinet import FiBiNETClassifier, ParquetSource  # noqa: E402
from sk_fibinet.data.stream_batches import _StreamDataset  # noqa: E402
from sk_fibinet.data.stream_passes import _learn_encoding  # noqa: E402


def _write(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    user = rng.integers(0, 5000, n)
    item = (user * 7 + rng.integers(0, 3, n)) % 9000
    frame = pd.DataFrame(
        {
            "user": [f"u{u}" for u in user],
            "item": [f"i{v}" for v in item],
            "c": rng.choice(list("abcdef"), n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "target": (rng.random(n) < 0.3).astype(int),
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=20_000)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.n_rows
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        _write(path, n)
        source = ParquetSource(path, target="target")
        print("| target_stats | statistics | encoding passes | epoch read+encode |")
        print("|---|---|---|---|")
        for target_stats in (None, "auto"):
            clf = FiBiNETClassifier(target_stats=target_stats)
            out = {}

            def encode(clf=clf, out=out):
                out["r"] = _learn_encoding(clf, source, seed=1, valid_frac=0.1)

            t_encode = _best(encode, args.repeat)
            encoder, summary, n_valid, statistics = out["r"][:4]
            stream = _StreamDataset(
                source,
                encoder,
                clf._targets_from_stats(summary),
                seed=1,
                valid_frac=0.1,
                keep_frac=0.5,
                n_train=n - n_valid,
                statistics=statistics,
            )
            stream.scan()  # the first epoch also keeps rows; time a later one

            def epoch(stream=stream):
                for _ in stream.chunks(torch.Generator().manual_seed(2)):
                    pass

            t_epoch = _best(epoch, args.repeat)
            names = "none" if statistics is None else statistics.feature_names_
            print(
                f"| {target_stats!r} | {names} | {n / t_encode:,.0f} rows/s | "
                f"{n / t_epoch:,.0f} rows/s |"
            )


if __name__ == "__main__":
    main()
