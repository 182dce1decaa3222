"""Training rows/s of a data-parallel fit on 1 and 2 processes (1 thread each).

Every process draws the same Criteo-shaped table (``criteo_like.py``) and fits
``FiBiNETClassifier`` with its defaults for one epoch, no early stopping. The 2-process
runs are started with torchrun on 127.0.0.1 and sum the sparse embedding
gradients by gathering the touched rows (``gather``, the default) or by
densifying them into the dense all-reduce (``dense``)::

    python benchmarks/ddp_scaling.py --n-rows 100000
    python benchmarks/ddp_scaling.py --n-rows 100000 --parquet

With ``--parquet`` the table is written once to a Parquet file (row groups of
``--row-group-size`` rows) and fitted as a ``ParquetSource``: the 2-process
runs deal the row groups out (``dealt``, the default: each process reads and
encodes its own) or read every row group in every process (``every``).

The table gives the time of the training epoch (``dur`` of skorch's history)
and the rows it trained per second, over all processes; "fit" is the whole
``fit`` call (encoding and fingerprinting included, which every process repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def worker(args) -> None:
    import torch
    from criteo_like import make_criteo_like

    from sk_fibinet import FiBiNETClassifier
    from sk_fibinet.training.distributed import Processes

    torch.set_num_threads(1)
    Processes.sparse_mode = args.sparse
    if args.parquet:
        from sk_fibinet import ParquetSource
        from sk_fibinet.data.stream_batches import _StreamBatches

        _StreamBatches.deal_row_groups = args.reading == "dealt"
        X, y = ParquetSource(args.parquet, target="target"), None
    else:
        X, y = make_criteo_like(n_rows=args.n_rows, random_state=0)
    clf = FiBiNETClassifier(
        max_epochs=1,
        early_stopping=False,
        batch_size=args.batch_size,
        distributed=args.world_size > 1,
        random_state=0,
    )
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    if int(os.environ.get("RANK", 0)) == 0:
        row = {"epoch_s": clf.net_.history[-1, "dur"], "fit_s": fit_s}
        Path(args.out).write_text(json.dumps(row))
    if args.world_size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


def run(world_size: int, sparse: str, args, reading: str = "dealt") -> dict:
    out = Path(args.tmp) / f"ddp_{world_size}_{sparse}_{reading}.json"
    command = [
        __file__,
        "--worker",
        "--world-size",
        str(world_size),
        "--sparse",
        sparse,
        "--reading",
        reading,
        *(["--parquet", args.parquet] if args.parquet else []),
        "--n-rows",
        str(args.n_rows),
        "--batch-size",
        str(args.batch_size),
        "--out",
        str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if world_size == 1:
        subprocess.run([sys.executable, *command], check=True, env=env)
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        torchrun = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={world_size}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
        ]
        subprocess.run([*torchrun, *command], check=True, env=env)
    return json.loads(out.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--tmp", default="/tmp")
    parser.add_argument(
        "--parquet",
        nargs="?",
        const="",
        default=None,
        help="fit a ParquetSource (written to --tmp) instead of a DataFrame",
    )
    parser.add_argument("--row-group-size", type=int, default=10_000)
    parser.add_argument("--reading", default="dealt", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--sparse", default="gather", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.parquet is not None:
        from criteo_like import make_criteo_like

        args.parquet = str(Path(args.tmp) / f"ddp_{args.n_rows}.parquet")
        X, y = make_criteo_like(n_rows=args.n_rows, random_state=0)
        X.assign(target=y).to_parquet(args.parquet, row_group_size=args.row_group_size)
        runs = [(1, "-", "-"), (2, "gather", "dealt"), (2, "gather", "every")]
    else:
        runs = [(1, "-", "-"), (2, "gather", "-"), (2, "dense", "-")]
    results = [(w, s, r, run(w, s if w > 1 else "gather", args, r)) for w, s, r in runs]
    base = results[0][3]["epoch_s"]
    source = (
        f"a ParquetSource of {args.row_group_size:,}-row groups"
        if args.parquet
        else "a DataFrame"
    )
    print(
        f"\n{args.n_rows:,} Criteo-shaped rows ({source}), batch "
        f"{args.batch_size}, 1 thread per process"
    )
    print(
        "| processes | sparse sync | row groups read | epoch s | train rows/s "
        "| speed-up | fit s |"
    )
    print("|---|---|---|---|---|---|---|")
    for world_size, sparse, reading, row in results:
        print(
            f"| {world_size} | {sparse} | {reading} | {row['epoch_s']:.1f} "
            f"| {args.n_rows / row['epoch_s']:,.0f} | {base / row['epoch_s']:.2f}x "
            f"| {row['fit_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
