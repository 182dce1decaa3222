"""Training / prediction throughput of FiBiNETClassifier, a bare loop and DeepCTR-Torch.

Reference workload (the defaults): Criteo-shaped data with 39 fields (26
categoricals with vocabularies up to 1e5, 13 numerics binned to 64 values, so
741 field pairs), embedding 16, bilinear ``interaction`` with separate weights,
DNN (400, 400, 400), Adam, batch 1024, 2 threads, one epoch; no crossed pairs
in the linear part (``--max-cross-cells 0``: DeepCTR-Torch has none), pass
``--max-cross-cells 2000`` to time the estimator's default. A second row of
the estimator keeps its defaults apart from that shape (validation split and
calibrated stopping, crossed pairs, dropout, the importances at the end of
fit), so the extras show their cost beside the bare loop of the same network.

Every implementation runs in its own subprocess (so peak RSS is its own), the
implementations alternate, and the table reports medians over ``--repeats``::

    python benchmarks/throughput.py                     # ours twice + bare loop
    bash benchmarks/setup_deepctr_venv.sh               # once, for DeepCTR-Torch
    python benchmarks/throughput.py --deepctr           # and DeepCTR-Torch

Columns: train rows/s (one epoch, encoding excluded), predict rows/s,
encode rows/s (DataFrame -> field codes, fit + transform), peak RSS of the
process, and the fraction of the arithmetic limit (training FLOPs per row x
rows/s / measured fp32 matmul peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from criteo_like import encode_codes, make_criteo_like  # noqa: E402

DEEPCTR_PYTHON = HERE / ".venv-deepctr" / "bin" / "python"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hidden(args) -> tuple[int, ...]:
    return tuple(int(h) for h in args.hidden.split(","))


def _data(args):
    return make_criteo_like(
        n_rows=args.n_rows,
        n_categorical=args.n_categorical,
        n_numeric=args.n_numeric,
        max_vocabulary=args.max_vocabulary,
        random_state=args.seed,
    )


def worker_ours(args, defaults: bool = False) -> dict:
    """FiBiNETClassifier.fit / predict_proba on the DataFrame: matched to the
    bare loop (no dropout, no early stopping, no crossed pairs unless asked),
    or with ``defaults`` the estimator's defaults apart from the workload's
    shape (embedding, bilinear type, DNN, batch, one epoch), so that the
    extras (validation split and calibration, crossed pairs, dropout, the
    importances at the end of fit) show their cost."""
    import torch

    from sk_fibinet import FiBiNETClassifier
    from sk_fibinet.preprocessing.encoding import FieldEncoder

    torch.set_num_threads(args.threads)
    if args.malloc_tuning:
        from sk_fibinet import tune_malloc

        tune_malloc()
    X, y = _data(args)
    cat = [c for c in X.columns if c.startswith("C")]
    start = time.perf_counter()
    FieldEncoder(categorical_features=cat, n_bins=64).fit(X).transform(X)
    encode_s = time.perf_counter() - start
    shape = dict(
        categorical_features=cat,
        n_bins=64,
        embedding_dim=args.embedding_dim,
        bilinear_type=args.bilinear_type,
        hidden_layer_sizes=_hidden(args),
        batch_size=args.batch_size,
        max_epochs=1,
        variant=args.variant,
        precision=args.precision,
        random_state=0,
    )
    matched = dict(
        dropout=0.0,
        early_stopping=False,
        learning_rate=1e-3,
        max_cross_cells=args.max_cross_cells,
    )
    clf = FiBiNETClassifier(**shape, **({} if defaults else matched))
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    clf.predict_proba(X)
    predict_s = time.perf_counter() - start
    train_s = fit_s - encode_s  # fit encodes once, exactly as timed above
    return {
        "impl": "FiBiNETClassifier"
        + ("" if args.variant == "fibinet" else f" ({args.variant})")
        + (", defaults end to end" if defaults else ""),
        "train_rows_per_s": args.n_rows / train_s,
        "fit_rows_per_s": args.n_rows / fit_s,
        "predict_rows_per_s": args.n_rows / predict_s,
        "encode_rows_per_s": args.n_rows / encode_s,
        "encode_share_of_epoch": encode_s / fit_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_bare(args) -> dict:
    """A plain PyTorch loop over the same module on pre-built tensors."""
    import torch

    from sk_fibinet import tune_malloc
    from sk_fibinet.nn.fibinet import FiBiNET
    from sk_fibinet.nn.optim import SparseDenseAdamW, sparse_dense_groups
    from sk_fibinet.nn.precision import first_layer_dtype

    torch.set_num_threads(args.threads)
    if args.malloc_tuning:
        tune_malloc()
    X, y = _data(args)
    codes, vocab = encode_codes(X)
    codes = torch.from_numpy(codes)  # (n, F)
    target = torch.from_numpy(np.asarray(y, dtype=np.float32))  # (n,)
    torch.manual_seed(0)
    start = time.perf_counter()  # like fit: building the module counts
    module = FiBiNET(
        cardinalities=vocab,
        d_embedding=args.embedding_dim,
        bilinear_type=args.bilinear_type,
        d_hidden=_hidden(args),
        max_cross_cells=args.max_cross_cells,
        sparse=True,
        first_layer_dtype=first_layer_dtype(args.precision, "cpu"),
    )
    optimizer = SparseDenseAdamW(
        sparse_dense_groups(module, FiBiNET.SPARSE_PARAMETERS),
        lr=1e-3,
        fused=True,
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    module.train()
    order = torch.randperm(len(codes))
    for i in range(0, len(codes), args.batch_size):
        idx = order[i : i + args.batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(codes[idx])[:, 0], target[idx])
        loss.backward()
        optimizer.step()
    train_s = time.perf_counter() - start
    module.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(codes), 1024):  # the estimator's predict chunk
            module(codes[i : i + 1024])
    predict_s = time.perf_counter() - start
    return {
        "impl": "bare PyTorch loop",
        "train_rows_per_s": args.n_rows / train_s,
        "predict_rows_per_s": args.n_rows / predict_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_deepctr(args, codes_path: Path) -> dict:
    cmd = [
        str(DEEPCTR_PYTHON),
        str(HERE / "deepctr_fibinet.py"),
        "--codes",
        str(codes_path),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--epochs",
        "1",
        "--embedding-dim",
        str(args.embedding_dim),
        "--hidden",
        args.hidden,
        "--bilinear-type",
        args.bilinear_type,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["impl"] = "DeepCTR-Torch 0.3.0"
    return result


def flops_per_trained_row(args) -> float:
    """Multiply-adds x 2 of one forward pass, x 3 for forward + backward."""
    n_fields = args.n_categorical + args.n_numeric
    n_pairs = n_fields * (n_fields - 1) // 2
    d = args.embedding_dim
    widths = [2 * n_pairs * d, *_hidden(args), 1]
    dnn = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    bilinear = 2 * n_pairs * d * d  # both branches, "interaction"
    return 3 * 2 * (dnn + bilinear)


def matmul_peak_gflops(threads: int, dtype=None) -> float:
    """Best GFLOP/s of a (1024, 8192) @ (8192, 1024) matmul (float32 by default)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 8192), torch.randn(8192, 1024)
    if dtype is not None:
        a, b = a.to(dtype), b.to(dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        seconds = (time.perf_counter() - start) / 5
        best = max(best, 2 * 1024 * 8192 * 1024 / seconds / 1e9)
    return best


def _run_worker(impl: str, argv: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, *argv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-rows", type=int, default=50_000)
    p.add_argument("--n-categorical", type=int, default=26)
    p.add_argument("--n-numeric", type=int, default=13)
    p.add_argument("--max-vocabulary", type=int, default=100_000)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--bilinear-type", default="interaction")
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument(
        "--max-cross-cells",
        type=int,
        default=0,
        help="crossed pairs in the linear part (0: none, as in DeepCTR-Torch)",
    )
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument(
        "--variant",
        default="fibinet",
        choices=["fibinet", "fibinet++"],
        help="the estimator's network (the bare loop and DeepCTR-Torch: FiBiNET)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="the estimator's precision parameter (the bare loop follows it)",
    )
    p.add_argument(
        "--no-malloc-tuning",
        dest="malloc_tuning",
        action="store_false",
        help="leave glibc's thresholds alone (sk_fibinet.tune_malloc is opt-in)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deepctr", action="store_true", help="also run DeepCTR-Torch")
    p.add_argument("--json", type=Path, help="write the raw results here")
    p.add_argument(
        "--worker",
        choices=["ours", "defaults", "bare", "deepctr"],
        help=argparse.SUPPRESS,
    )
    p.add_argument("--codes", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker == "ours":
        print(json.dumps(worker_ours(args)))
        return
    if args.worker == "defaults":
        print(json.dumps(worker_ours(args, defaults=True)))
        return
    if args.worker == "bare":
        print(json.dumps(worker_bare(args)))
        return

    impls = ["ours", "defaults", "bare"]
    if args.deepctr:
        if not DEEPCTR_PYTHON.exists():
            sys.exit("run `bash benchmarks/setup_deepctr_venv.sh` first")
        impls.append("deepctr")
    worker_argv = [a for a in argv if a not in ("--deepctr",)]
    if args.json:
        i = worker_argv.index("--json")
        del worker_argv[i : i + 2]
    results: dict[str, list[dict]] = {impl: [] for impl in impls}
    with tempfile.TemporaryDirectory() as tmp:
        codes_path = Path(tmp) / "codes.npz"
        if args.deepctr:
            X, y = _data(args)
            codes, vocab = encode_codes(X)
            np.savez(codes_path, codes=codes, y=np.asarray(y), vocab=np.asarray(vocab))
            del X, y, codes
        for repeat in range(args.repeats):
            for impl in impls:
                if impl == "deepctr":
                    r = worker_deepctr(args, codes_path)
                else:
                    r = _run_worker(impl, worker_argv)
                results[impl].append(r)
                print(
                    f"# run {repeat + 1}/{args.repeats} {r['impl']}: "
                    f"train {r['train_rows_per_s']:,.0f} rows/s, "
                    f"predict {r['predict_rows_per_s']:,.0f} rows/s",
                    file=sys.stderr,
                )
    peak = matmul_peak_gflops(args.threads)
    flops = flops_per_trained_row(args)

    def med(impl, key):
        values = [r[key] for r in results[impl] if key in r]
        return statistics.median(values) if values else float("nan")

    from sk_fibinet.nn.precision import first_layer_dtype

    low = first_layer_dtype(args.precision, "cpu")
    layer = "float32" if low is None else str(low).removeprefix("torch.")
    print(
        f"\n{args.n_rows:,} rows, {args.n_categorical + args.n_numeric} fields, "
        f"d={args.embedding_dim}, {args.bilinear_type}, DNN {args.hidden}, "
        f"batch {args.batch_size}, {args.threads} threads, "
        f"max_cross_cells {args.max_cross_cells}, precision={args.precision!r} "
        f"(first layer {layer}; DeepCTR-Torch float32), "
        f"medians of {args.repeats} alternating runs\n"
    )
    print(
        "| implementation | train rows/s | predict rows/s | encode rows/s "
        "| peak RSS MB | train, % of arithmetic limit |"
    )
    print("|---|---|---|---|---|---|")
    for impl in impls:
        name = results[impl][0]["impl"]
        train = med(impl, "train_rows_per_s")
        encode = med(impl, "encode_rows_per_s")
        print(
            f"| {name} | {train:,.0f} | {med(impl, 'predict_rows_per_s'):,.0f} | "
            + (f"{encode:,.0f}" if encode == encode else "-")
            + f" | {med(impl, 'peak_rss_mb'):,.0f} | "
            f"{100 * train * flops / (peak * 1e9):.0f}% |"
        )
    print(
        f"\nTraining FLOPs per row {flops / 1e6:.1f} M; measured fp32 matmul peak "
        f"{peak:.0f} GFLOP/s -> arithmetic limit {peak * 1e9 / flops:,.0f} rows/s."
    )
    if low is not None:
        print(
            f"Measured {layer} matmul peak {matmul_peak_gflops(args.threads, low):.0f}"
            " GFLOP/s (the first layer's matmuls; the limit above is float32's)."
        )
    ours = results["ours"]
    share = statistics.median(r["encode_share_of_epoch"] for r in ours)
    print(f"Encoding share of one epoch (fit): {100 * share:.1f}%.")
    ratio = med("ours", "train_rows_per_s") / med("bare", "train_rows_per_s")
    print(f"Estimator / bare loop, training: {ratio:.2f}x.")
    ratio = med("defaults", "train_rows_per_s") / med("ours", "train_rows_per_s")
    print(f"Estimator with its defaults / matched, training: {ratio:.2f}x.")
    if args.deepctr:
        for impl, name in [("ours", "matched"), ("defaults", "with its defaults")]:
            for key, label in [
                ("train_rows_per_s", "train"),
                ("predict_rows_per_s", "predict"),
            ]:
                ratio = med(impl, key) / med("deepctr", key)
                print(f"Estimator ({name}) / DeepCTR-Torch, {label}: {ratio:.2f}x.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
