"""Milliseconds per lazy-Adam step of one embedding table, by table size.

A batch of 1,024 rows over 32 hashed columns gives 32,768 gradient entries on
~20k distinct rows. The step merges the duplicate rows, then updates the
touched rows' moments and weights. The old merge marks a mask the size of the
table every step (``method="mask"``); the new one chooses per step between
that mask and sorting the entries (``torch.unique``, ``method="sort"``) by the
table size against the number of entries. ``coalesce()`` is timed for
comparison::

    OMP_NUM_THREADS=1 python benchmarks/optim_step.py
    OMP_NUM_THREADS=1 python benchmarks/optim_step.py --rows 100000 1000000

Columns: table rows, merge only (mask / sort / coalesce), then the whole
optimizer step with the old merge and the new one (medians of ``--repeats``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout

import sk_fibinet.nn.optim as optim  # noqa: E402


def _grad(n_rows, n_entries, n_distinct, width, generator):
    pool = torch.randperm(n_rows, generator=generator)[:n_distinct]  # (k,)
    pick = torch.randint(0, n_distinct, (n_entries,), generator=generator)  # (n,)
    index = pool[pick]  # (n,)
    values = torch.randn(n_entries, width, generator=generator)  # (n, width)
    return torch.sparse_coo_tensor(
        index[None], values, (n_rows, width), check_invariants=False
    )


def _median_ms(fn, repeats):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[100_000, 1_000_000, 32_000_000]
    )
    parser.add_argument("--entries", type=int, default=32_768)
    parser.add_argument("--distinct", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    print(
        f"{args.entries} entries on {args.distinct} distinct rows, width "
        f"{args.width}, {torch.get_num_threads()} thread(s), "
        f"median of {args.repeats}"
    )
    header = ("rows", "mask", "sort", "coalesce", "step old", "step new")
    print("".join(f"{h:>12}" for h in header) + "   (ms)")
    for n_rows in args.rows:
        grad = _grad(n_rows, args.entries, args.distinct, args.width, generator)
        row = _time_table(grad, args.width, args.repeats)
        print(f"{n_rows:>12,}" + "".join(f"{t:>12.2f}" for t in row))


def _time_table(grad, width, repeats):
    """Merge (mask, sort, coalesce) and whole-step (old, new) times in ms."""
    mask = _median_ms(lambda: optim._merged_rows(grad, "mask"), repeats)
    sort = _median_ms(lambda: optim._merged_rows(grad, "sort"), repeats)
    coalesce = _median_ms(grad.coalesce, repeats)
    table = torch.nn.Parameter(torch.zeros(grad.shape[0], width))
    opt = optim.SparseDenseAdamW([{"params": [table], "sparse": True}])
    table.grad = grad
    opt.step()  # allocates the moments

    def step():
        table.grad = grad
        opt.step()

    new = _median_ms(step, repeats)
    merged_rows = optim._merged_rows
    optim._merged_rows = lambda g: merged_rows(g, "mask")  # the old merge
    try:
        old = _median_ms(step, repeats)
    finally:
        optim._merged_rows = merged_rows
    return mask, sort, coalesce, old, new


if __name__ == "__main__":
    main()
