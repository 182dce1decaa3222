"""How training cost grows with fields, embedding size, bilinear type and rows.

Part 1 trains the FiBiNET module (DNN 400-400-400, batch 1024, lazy Adam for
the embeddings + fused AdamW, the same as the estimator) for a few batches per
configuration and prints training rows/s with the forward FLOPs per row split
into the DNN and the bilinear part. Part 2 fits ``FiBiNETClassifier`` on 100k
and 1M Criteo-shaped rows in fresh processes, stopping after 20 batches
(peak memory does not grow with more batches), and prints peak RSS::

    python benchmarks/scaling.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from criteo_like import make_criteo_like  # noqa: E402

from sk_fibinet import tune_malloc  # noqa: E402
from sk_fibinet.nn.fibinet import FiBiNET  # noqa: E402
from sk_fibinet.nn.optim import SparseDenseAdamW, sparse_dense_groups  # noqa: E402

HIDDEN = (400, 400, 400)


def forward_flops(n_fields: int, d: int, bilinear_type: str) -> tuple[float, float]:
    """(DNN, bilinear) multiply-add FLOPs x 2 of one forward pass per row."""
    n_pairs = n_fields * (n_fields - 1) // 2
    widths = [2 * n_pairs * d, *HIDDEN, 1]
    dnn = 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    matrices = {"all": n_fields, "each": n_fields - 1, "interaction": n_pairs}
    bilinear = 2 * 2 * matrices[bilinear_type] * d * d + 2 * 2 * n_pairs * d
    return dnn, bilinear


def train_rows_per_s(n_fields, d, bilinear_type, batches=8, batch=1024, vocab=1000):
    torch.manual_seed(0)
    module = FiBiNET(
        cardinalities=[vocab] * n_fields,
        d_embedding=d,
        bilinear_type=bilinear_type,
        d_hidden=HIDDEN,
        sparse=True,
    )
    opt = SparseDenseAdamW(
        sparse_dense_groups(module, FiBiNET.SPARSE_PARAMETERS),
        fused=True,
    )
    x = torch.randint(0, vocab, ((batches + 2) * batch, n_fields))
    y = torch.randint(0, 2, ((batches + 2) * batch,)).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step(i):
        xb, yb = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss_fn(module(xb)[:, 0], yb).backward()
        opt.step()

    for i in range(2):
        step(i)
    start = time.perf_counter()
    for i in range(2, batches + 2):
        step(i)
    return batches * batch / (time.perf_counter() - start)


def memory_worker(n_rows: int) -> dict:
    from skorch.callbacks import Callback

    from sk_fibinet import FiBiNETClassifier

    class StopAfter(Callback):
        def __init__(self, n):
            self.n = n

        def on_batch_end(self, net, training=None, **kwargs):
            if training and len(net.history[-1]["batches"]) >= self.n:
                raise KeyboardInterrupt

    torch.set_num_threads(2)
    X, y = make_criteo_like(n_rows=n_rows, random_state=0)
    data_mb = X.memory_usage(deep=True).sum() / 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clf = FiBiNETClassifier(
        embedding_dim=16,
        hidden_layer_sizes=HIDDEN,
        batch_size=1024,
        early_stopping=False,
        max_epochs=1,
        callbacks=[StopAfter(20)],
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n_rows": n_rows,
        "data_mb": data_mb,
        "rss_after_data_mb": before,
        "peak_rss_mb": peak,
        "seconds_20_batches": seconds,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-rows", default="100000,1000000")
    p.add_argument("--worker-rows", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker_rows:
        print(json.dumps(memory_worker(args.worker_rows)))
        return
    torch.set_num_threads(args.threads)
    tune_malloc()
    configs = [(f, 16, "interaction") for f in (10, 20, 39, 80)]
    configs += [(39, d, "interaction") for d in (8, 32)]
    configs += [(39, 16, t) for t in ("all", "each")]
    print(
        "| fields | d | bilinear | train rows/s | DNN MFLOP/row | bilinear MFLOP/row |"
    )
    print("|---|---|---|---|---|---|")
    for n_fields, d, kind in configs:
        batches = 4 if n_fields >= 80 else 8
        rate = train_rows_per_s(n_fields, d, kind, batches=batches)
        dnn, bil = forward_flops(n_fields, d, kind)
        print(
            f"| {n_fields} | {d} | {kind} | {rate:,.0f} | {dnn / 1e6:.1f} | "
            f"{bil / 1e6:.2f} |",
            flush=True,
        )
    print("\n| rows | DataFrame MB | peak RSS MB (fit, 20 batches) |")
    print("|---|---|---|")
    for n_rows in (int(r) for r in args.memory_rows.split(",")):
        cmd = [sys.executable, __file__, "--worker-rows", str(n_rows)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {n_rows:,} | {r['data_mb']:,.0f} | {r['peak_rss_mb']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
