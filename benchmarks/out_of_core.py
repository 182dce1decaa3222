"""Streaming fit from Parquet against the in-memory fit: peak RSS, rows/s, AUC.

Writes Criteo-shaped Parquet files (26 categorical columns as dictionary
strings, 13 numeric count columns, vocabularies up to 1e5) chunk by chunk, so
the writer itself holds one chunk at a time, then fits
``FiBiNETClassifier(max_epochs=1)`` with otherwise default parameters:

* streamed from a :class:`sk_fibinet.ParquetSource` on every ``--n-rows`` size,
* in memory (the Parquet file read into a DataFrame) on ``--in-memory-rows``,

each in a fresh subprocess whose own peak RSS (``ru_maxrss``) is reported, and
scores every model on the same held-out rows. rows/s is rows of the training
file over the whole ``fit`` (first pass, epoch, validation, calibration).
Targets: peak RSS at the largest size <= 1.25x that at the smallest and under
2 GB; streamed rows/s >= 0.85x in-memory; AUC equal within noise::

    python benchmarks/out_of_core.py                       # 1M and 10M rows
    python benchmarks/out_of_core.py --n-rows 100000 300000 --in-memory-rows 100000

The data lives in a temporary folder under ``--tmp`` (default /tmp) and is
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo_like import (  # noqa: E402
    _POSITIVE_RATE,
    _heavy_tailed_counts,
    _intercept_for_rate,
    _label_signal,
    _vocabulary_sizes,
)

N_CATEGORICAL, N_NUMERIC, MAX_VOCABULARY = 26, 13, 100_000


class CriteoLikeStream:
    """Criteo-shaped rows drawn chunk by chunk from one fixed table structure.

    ``make_criteo_like`` draws the structure (vocabularies, frequencies, label
    effects) and the rows from one generator, so two calls never share a
    structure. This draws the structure once, the same way, and each chunk's
    rows from their own seeded generator; the label terms come from
    ``criteo_like._label_signal`` with the same effect tables for every chunk.
    """

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.vocabularies = _vocabulary_sizes(N_CATEGORICAL, MAX_VOCABULARY, rng)
        self.exponents = rng.uniform(0.9, 1.3, size=N_CATEGORICAL)
        sparse = rng.random(N_CATEGORICAL) < 0.25
        self.missing = np.where(
            sparse,
            rng.uniform(0.1, 0.45, size=N_CATEGORICAL),
            rng.uniform(0.0, 0.05, size=N_CATEGORICAL),
        )
        self.cdfs, self.codes_of_rank, self.categories = [], [], []
        for j, v in enumerate(self.vocabularies):
            weights = np.arange(1, v + 1, dtype=np.float64) ** -self.exponents[j]
            cdf = np.cumsum(weights)
            self.cdfs.append(cdf / cdf[-1])
            self.codes_of_rank.append(rng.permutation(int(v)))
            ids = rng.choice(2**32, size=int(v), replace=False)
            self.categories.append(pd.Index([f"{i:08x}" for i in ids], dtype="str"))
        # numeric columns: criteo_like's recipe on a long draw, kept as quantiles
        self.numeric_draws = [_heavy_tailed_counts(200_000, rng) for _ in range(13)]
        self.intercept = None

    def chunk(self, index, n_rows):
        """Rows of chunk ``index``: a DataFrame and the 0/1 label."""
        rng = np.random.default_rng([self.seed, index])
        codes = np.empty((n_rows, N_CATEGORICAL), dtype=np.int64)
        for j in range(N_CATEGORICAL):
            ranks = np.searchsorted(self.cdfs[j], rng.random(n_rows), side="right")
            np.minimum(ranks, self.vocabularies[j] - 1, out=ranks)
            codes[:, j] = self.codes_of_rank[j][ranks]
            codes[rng.random(n_rows) < self.missing[j], j] = -1
        numerics = np.column_stack(
            [rng.choice(draw, size=n_rows) for draw in self.numeric_draws]
        )
        effects = np.random.default_rng(self.seed + 1)  # same tables every chunk
        signal = _label_signal(codes, self.vocabularies, numerics, effects)
        if self.intercept is None:
            self.intercept = _intercept_for_rate(signal, _POSITIVE_RATE)
        p = 1.0 / (1.0 + np.exp(-(signal + self.intercept)))
        y = (rng.random(n_rows) < p).astype(np.int64)
        columns = {
            f"C{j + 1}": pd.Categorical.from_codes(codes[:, j], self.categories[j])
            for j in range(N_CATEGORICAL)
        }
        columns.update({f"I{j + 1}": numerics[:, j] for j in range(N_NUMERIC)})
        return pd.DataFrame(columns), y


def write_parquet(stream, path, n_rows, *, first_chunk, chunk_rows, row_group_rows):
    """Write ``n_rows`` rows to one Parquet file, one chunk in memory at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for k, start in enumerate(range(0, n_rows, chunk_rows)):
        X, y = stream.chunk(first_chunk + k, min(chunk_rows, n_rows - start))
        table = pa.Table.from_pandas(X.assign(click=y), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=row_group_rows)
    writer.close()


def child(args):
    """One fit in this (fresh) process; prints a JSON line."""
    import pyarrow.parquet as pq
    from sklearn.metrics import roc_auc_score

    from sk_fibinet import FiBiNETClassifier, ParquetSource

    clf = FiBiNETClassifier(max_epochs=1, random_state=args.seed)
    test = pq.read_table(args.test).to_pandas()
    y_test = test.pop("click").to_numpy()
    start = time.perf_counter()
    if args.child == "stream":
        source = ParquetSource(args.train, target="click")
        n_rows = source.n_rows
        clf.fit(source)
    else:
        frame = pq.read_table(args.train).to_pandas()
        y = frame.pop("click").to_numpy()
        n_rows = len(frame)
        clf.fit(frame, y)
    seconds = time.perf_counter() - start
    auc = roc_auc_score(y_test, clf.predict_proba(test)[:, 1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(rows=n_rows, seconds=seconds, auc=auc, peak_mb=peak)))


def run_child(kind, train, test, seed):
    cmd = [sys.executable, __file__, "--child", kind, "--train", str(train)]
    cmd += ["--test", str(test), "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument(
        "--in-memory-rows", type=int, default=None, help="default: smallest; 0: none"
    )
    p.add_argument("--test-rows", type=int, default=100_000)
    p.add_argument("--chunk-rows", type=int, default=250_000)
    p.add_argument("--row-group-rows", type=int, default=125_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp", default="/tmp")
    p.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--test", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)

    sizes = sorted(args.n_rows)
    memory_rows = sizes[0] if args.in_memory_rows is None else args.in_memory_rows
    folder = Path(tempfile.mkdtemp(prefix="sk_fibinet_ooc_", dir=args.tmp))
    try:
        stream = CriteoLikeStream(args.seed)
        write = dict(chunk_rows=args.chunk_rows, row_group_rows=args.row_group_rows)
        test = folder / "test.parquet"
        start = time.perf_counter()
        write_parquet(stream, test, args.test_rows, first_chunk=10**6, **write)
        files = {}
        for n in sorted({*sizes, memory_rows} - {0}):  # 0: no in-memory fit
            files[n] = folder / f"train_{n}.parquet"
            write_parquet(stream, files[n], n, first_chunk=0, **write)
        print(f"wrote the Parquet files in {time.perf_counter() - start:.0f}s")
        rows = []
        for n in sorted(files):
            kinds = (["memory"] if n == memory_rows else []) + (
                ["stream"] if n in sizes else []
            )
            for kind in kinds:
                r = run_child(kind, files[n], test, args.seed)
                rows.append((kind, r))
                print(
                    f"{kind:>7} {r['rows']:>11,} rows  peak RSS {r['peak_mb']:7.0f} MB"
                    f"  {r['rows'] / r['seconds']:8.0f} rows/s  AUC {r['auc']:.4f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    streamed = [r for k, r in rows if k == "stream"]
    memory = [r for k, r in rows if k == "memory"]
    print("\n| fit | rows | peak RSS (MB) | rows/s | held-out AUC |")
    print("|---|---:|---:|---:|---:|")
    for kind, r in rows:
        print(
            f"| {kind} | {r['rows']:,} | {r['peak_mb']:.0f} | "
            f"{r['rows'] / r['seconds']:.0f} | {r['auc']:.4f} |"
        )
    if len(streamed) >= 2:
        ratio = streamed[-1]["peak_mb"] / streamed[0]["peak_mb"]
        print(
            f"\npeak RSS {streamed[-1]['rows']:,} / {streamed[0]['rows']:,} rows: "
            f"{ratio:.2f}x (target <= 1.25x, and under 2048 MB)"
        )
    same = [r for r in streamed if r["rows"] == memory_rows]
    if memory and same:
        speed = (same[0]["rows"] / same[0]["seconds"]) / (
            memory[0]["rows"] / memory[0]["seconds"]
        )
        print(
            f"streamed / in-memory rows/s at {memory_rows:,} rows: {speed:.2f}x "
            f"(target >= 0.85x); AUC {same[0]['auc']:.4f} vs {memory[0]['auc']:.4f}"
        )


if __name__ == "__main__":
    main()
