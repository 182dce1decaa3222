"""Time DeepCTR-Torch 0.3.0's FiBiNET on pre-encoded field codes.

Run with the interpreter of the environment made by ``setup_deepctr_venv.sh``::

    benchmarks/.venv-deepctr/bin/python benchmarks/deepctr_fibinet.py \\
        --codes codes.npz --batch-size 1024 --threads 2

``codes.npz`` holds ``codes`` (int64, one column per field), ``y`` and ``vocab``
(the vocabulary size of each field), as written by ``criteo_like.py``. Every
field becomes a ``SparseFeat`` used by both the linear and the deep part, which
is how DeepCTR-Torch's own examples set up FiBiNET.

One training run (``model.fit``, ``--epochs`` epochs, no validation, silent) and
one prediction pass (``model.predict``) are timed separately; the script prints a
single JSON line on stdout and sends everything the library prints to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

IMPL = "deepctr-torch 0.3.0"


def import_deepctr():
    """Import ``deepctr_torch`` without its start-up version check.

    Importing the package normally starts a thread that queries the package
    index for a newer release. Its ``utils`` module is loaded first here, with
    ``check_version`` replaced by a no-op, so the package's ``__init__`` picks up
    the patched module and never touches the network.

    Returns
    -------
    module
        The imported ``deepctr_torch`` package.
    """
    if "deepctr_torch" not in sys.modules:
        spec = importlib.util.find_spec("deepctr_torch")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "deepctr_torch is not installed; run benchmarks/setup_deepctr_venv.sh"
                " and use benchmarks/.venv-deepctr/bin/python."
            )
        utils_path = Path(spec.submodule_search_locations[0]) / "utils.py"
        utils_spec = importlib.util.spec_from_file_location(
            "deepctr_torch.utils", utils_path
        )
        utils = importlib.util.module_from_spec(utils_spec)
        utils_spec.loader.exec_module(utils)
        utils.check_version = lambda version: None
        sys.modules["deepctr_torch.utils"] = utils
    import deepctr_torch

    return deepctr_torch


def _hidden_units(text):
    """Parse ``"400,400,400"`` into ``(400, 400, 400)``."""
    try:
        units = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return units


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Time DeepCTR-Torch 0.3.0 FiBiNET training and prediction."
    )
    parser.add_argument(
        "--codes",
        type=Path,
        required=True,
        help=".npz file with 'codes' (int64, n x F), 'y' and 'vocab'",
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--hidden", type=_hidden_units, default=(400, 400, 400))
    parser.add_argument(
        "--bilinear-type",
        choices=("interaction", "each", "all"),
        default="interaction",
    )
    parser.add_argument("--seed", type=int, default=1024)
    return parser.parse_args(argv)


def load_codes(path):
    """Load and check the field codes, labels and vocabulary sizes."""
    with np.load(path) as data:
        codes = np.asarray(data["codes"], dtype=np.int64)
        y = np.asarray(data["y"], dtype=np.int64)
        vocab = [int(v) for v in data["vocab"]]
    if codes.ndim != 2 or codes.shape[1] != len(vocab) or len(y) != len(codes):
        raise ValueError(
            f"inconsistent shapes: codes {codes.shape}, y {y.shape}, "
            f"{len(vocab)} vocabulary sizes"
        )
    if codes.size and (codes.min() < 0 or (codes >= np.asarray(vocab)).any()):
        raise ValueError("codes must lie in [0, vocab) for every field")
    if max(vocab, default=0) > 2**24:
        # fit and predict cast the inputs to float32, exact only up to 2**24.
        raise ValueError("vocabulary sizes above 2**24 are not exact in float32")
    return codes, y, vocab


def main(argv=None):
    """Run the benchmark and print one JSON line."""
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import_deepctr()
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import FiBiNET

    codes, y, vocab = load_codes(args.codes)
    n_rows = len(codes)
    names = [f"f{j}" for j in range(len(vocab))]
    columns = [
        SparseFeat(name, vocabulary_size=size, embedding_dim=args.embedding_dim)
        for name, size in zip(names, vocab, strict=True)
    ]
    x = {name: codes[:, j] for j, name in enumerate(names)}

    # The library prints progress information; keep stdout for the result.
    with contextlib.redirect_stdout(sys.stderr):
        model = FiBiNET(
            columns,
            columns,
            bilinear_type=args.bilinear_type,
            dnn_hidden_units=args.hidden,
            task="binary",
            seed=args.seed,
            device="cpu",
        )
        model.compile("adam", "binary_crossentropy")

        start = time.perf_counter()
        history = model.fit(
            x,
            y,
            batch_size=args.batch_size,
            epochs=args.epochs,
            verbose=0,
            shuffle=True,
        )
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        proba = model.predict(x, batch_size=args.batch_size)
        predict_seconds = time.perf_counter() - start

    if proba.shape[0] != n_rows or not np.isfinite(proba).all():
        raise RuntimeError("prediction returned unexpected values")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "impl": IMPL,
        "train_rows_per_s": n_rows * args.epochs / train_seconds,
        "predict_rows_per_s": n_rows / predict_seconds,
        "peak_rss_mb": peak_rss_mb,
        "train_seconds": train_seconds,
        "predict_seconds": predict_seconds,
        "n_rows": n_rows,
        "n_fields": len(vocab),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "train_loss": float(history.history["loss"][-1]),
        "torch": torch.__version__,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
