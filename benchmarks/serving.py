"""Serving latency: the exported ONNX graph in onnxruntime against ``predict_proba``.

Criteo-shaped data (26 categorical + 13 numeric columns, vocabularies up to
1e5, from ``criteo_like.make_criteo_like``), ``FiBiNETClassifier()`` with its
defaults except ``max_epochs`` (``--epochs``, 1: latency does not depend on
how well it is trained), exported with ``sk_fibinet.to_onnx`` and scored by one
``onnxruntime.InferenceSession`` (``intra_op_num_threads`` = ``--threads``,
torch gets as many)::

    python benchmarks/serving.py
    python benchmarks/serving.py --variant fibinet++

Rows of the table:

* single row, p50 / p99 over ``--single`` requests: for onnxruntime the time
  from a dict of Python values (what a service decodes from a request) to the
  probabilities, building the ``(1, 1)`` input arrays included; for
  ``predict_proba`` from a one-row DataFrame prepared in advance (its
  construction, another ~0.5 ms, not counted);
* 64-row batch, median over ``--batches`` calls, from prepared inputs;
* 10k-row batch throughput (rows/s), median over 5 calls, from prepared inputs.

The largest absolute difference between the two probabilities on the 10k rows
is printed as well.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from criteo_like import make_criteo_like  # noqa: E402
from throughput import matmul_peak_gflops  # noqa: E402

from sk_fibinet import (  # noqa: E402
    FiBiNETClassifier,
    load_model,
    onnx_inputs,
    save_model,
    to_onnx,
)


def _host() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    names = [
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith("Model name")
    ]
    return names[0] if names else "unknown"


def _times(fn, n: int) -> np.ndarray:
    """Seconds of ``n`` calls of ``fn(i)``, after 5 warm-up calls."""
    for i in range(5):
        fn(i)
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - start
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-rows", type=int, default=50_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variant", default="fibinet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="save_model file: read it if it exists, else fit and write it",
    )
    args = parser.parse_args(argv)

    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    X, y = make_criteo_like(n_rows=args.n_rows, random_state=args.seed)
    test, _ = make_criteo_like(n_rows=10_000, random_state=args.seed + 1)
    start = time.perf_counter()
    if args.model is not None and args.model.exists():
        clf = load_model(args.model)
    else:
        clf = FiBiNETClassifier(
            max_epochs=args.epochs, variant=args.variant, random_state=0
        ).fit(X, y)
        if args.model is not None:
            save_model(clf, args.model)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    model = to_onnx(clf)
    export_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    feed = onnx_inputs(clf, test)  # name -> (10k, 1)
    # requests as a service receives them: Python values, "" for missing text
    rows = [{k: v[i, 0] for k, v in feed.items()} for i in range(args.single + 5)]
    kinds = {k: (object if v.dtype == object else np.float64) for k, v in feed.items()}

    def onnx_one(i):
        row = rows[i]
        one = {k: np.array([[row[k]]], dtype=t) for k, t in kinds.items()}
        return session.run(["output_probability"], one)[0]

    frames = [test.iloc[[i]] for i in range(args.single + 5)]

    def torch_one(i):
        return clf.predict_proba(frames[i])

    batches = [slice(64 * i % 9_900, 64 * i % 9_900 + 64) for i in range(200)]
    feeds64 = [{k: v[s] for k, v in feed.items()} for s in batches]
    frames64 = [test.iloc[s] for s in batches]

    results = {}
    for name, one, batch, full in (
        (
            "onnxruntime",
            onnx_one,
            lambda i: session.run(["output_probability"], feeds64[i]),
            lambda i: session.run(["output_probability"], feed),
        ),
        (
            "predict_proba",
            torch_one,
            lambda i: clf.predict_proba(frames64[i]),
            lambda i: clf.predict_proba(test),
        ),
    ):
        single = _times(one, args.single)
        b64 = _times(batch, min(args.batches, len(batches) - 5))
        big = _times(full, 5)
        results[name] = (
            np.percentile(single, 50) * 1e3,
            np.percentile(single, 99) * 1e3,
            np.median(b64) * 1e3,
            len(test) / np.median(big),
        )

    diff = np.abs(
        session.run(["output_probability"], feed)[0] - clf.predict_proba(test)
    ).max()
    print(
        f"host: {_host()}, fp32 matmul peak {matmul_peak_gflops(args.threads):.0f} "
        f"GFLOP/s; torch {torch.__version__}; onnxruntime {ort.__version__}; "
        f"{args.threads} threads"
    )
    print(
        f"FiBiNETClassifier(max_epochs={args.epochs}, variant={args.variant!r}) on "
        f"{args.n_rows} Criteo-shaped rows: fit (or load) {fit_s:.1f} s, to_onnx "
        f"{export_s:.2f} s, graph {len(model.SerializeToString()) / 2**20:.1f} MiB, "
        f"max |p_onnx - p_torch| on 10k rows {diff:.1e}"
    )
    print()
    header = ("", "1 row p50 ms", "1 row p99 ms", "64 rows ms", "10k rows/s")
    print(f"{header[0]:<15}" + "".join(f"{h:>14}" for h in header[1:]))
    for name, (p50, p99, b64, rate) in results.items():
        print(f"{name:<15}{p50:>14.3f}{p99:>14.3f}{b64:>14.3f}{rate:>14,.0f}")
    o, t = results["onnxruntime"], results["predict_proba"]
    print(
        f"{'speed-up':<15}{t[0] / o[0]:>13.1f}x{t[1] / o[1]:>13.1f}x"
        f"{t[2] / o[2]:>13.1f}x{o[3] / t[3]:>13.1f}x"
    )


if __name__ == "__main__":
    main()
