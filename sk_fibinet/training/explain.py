"""Explanations: field ablation importances and Shapley contributions of fields.

Both rest on one primitive of the networks, ``forward_replaced(x, replaced,
references)``: the output with chosen fields replaced by a per-field reference
(the frequency-weighted mean of the field's trained embedding vectors, and
likewise for the first-order and crossed weights; see
``FiBiNET.field_references``). Everything here speaks tensors and numpy; the
estimators (``estimators/inspection.py``) turn the results into scikit-learn
attributes and DataFrames.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .net import _PREDICT_BATCH_SIZE, _BatchIterator, _CodesDataset, _eval_mode

# Exact Shapley values (every coalition, 2^F network evaluations per row) up to
# this many fields; above it, antithetic permutation sampling.
EXACT_MAX_FIELDS = 10
# Default number of permutations sampled above EXACT_MAX_FIELDS (half of them
# the reverses of the other half): (F - 1) evaluations per permutation and row.
N_PERMUTATIONS = 64
# Rows held at once as (rows, coalitions) network outputs: bounds the memory
# of an explanation whatever the number of rows.
_VALUES_PER_BLOCK = 1 << 16

# Importance rows: ablation costs (F + 1) forward passes over them, so
# rows <= _IMPORTANCE_COST * epochs * training rows / (F + 1) bounds their cost
# by a share of the fit (0.5 gave 11 % on fit_time.py's workload, 100k rows x
# 40 columns, 2 epochs, and about 30 % of a one-epoch 30k-row fit at the
# throughput benchmark's shape; 0.15 still ranks the 6 signal columns of
# benchmarks/importance.py first on every seed). Short fits of wide data get
# _IMPORTANCE_MIN_ROWS anyway (a larger share of a fit of seconds);
# _IMPORTANCE_MAX_ROWS caps long ones.
_IMPORTANCE_COST = 0.15
_IMPORTANCE_MIN_ROWS = 250
_IMPORTANCE_MAX_ROWS = 20_000


def importance_rows(n_available: int, n_train: int, n_epochs: int, n_fields: int):
    """How many rows the ablation importances are measured on."""
    budget = int(_IMPORTANCE_COST * n_epochs * n_train / (n_fields + 1))
    budget = max(_IMPORTANCE_MIN_ROWS, budget)
    return min(n_available, _IMPORTANCE_MAX_ROWS, budget)


class Replacer:
    """A fitted network's outputs with fields replaced by their references.

    Parameters
    ----------
    module : FiBiNET or FiBiNetPP
        The trained network.
    counts : Tensor of shape (n_codes,)
        Training frequency of every code (:func:`code_counts`).
    device : torch.device
        Where the network lives.
    """

    def __init__(self, module, counts: torch.Tensor, device):
        self.module = module
        self.device = torch.device(device)
        with _eval_mode(module):
            self.references = module.field_references(counts.to(self.device))

    def __call__(self, codes: torch.Tensor, replaced: torch.Tensor) -> torch.Tensor:
        """Outputs ``(batch, n_outputs)`` float64 on the CPU of ``codes``
        ``(batch, F)`` with ``replaced`` ``(batch, F)`` or ``(F,)`` fields
        replaced, in evaluation mode (no dropout, BatchNorm's running stats)."""
        with _eval_mode(self.module), torch.inference_mode():
            z = self.module.forward_replaced(
                codes.to(self.device), replaced.to(self.device), self.references
            )  # (batch, n_outputs)
        return z.to("cpu", torch.float64)

    def base(self, n_fields: int) -> torch.Tensor:
        """The output with every field replaced, ``(n_outputs,)`` float64: one
        constant, whatever the codes."""
        codes = torch.zeros(1, n_fields, dtype=torch.long)  # (1, F)
        return self(codes, torch.ones(n_fields, dtype=torch.bool))[0]  # (n_out,)


@torch.no_grad()
def ablation_losses(
    replacer: Replacer,
    dataset: _CodesDataset,
    row_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[float, np.ndarray]:
    """Weighted mean loss on ``dataset`` as is and with each field replaced.

    Parameters
    ----------
    replacer : Replacer
    dataset : _CodesDataset
        Codes and ``(n, 2)`` targets (target, weight).
    row_loss : callable
        ``row_loss(outputs (batch, n_outputs), target (batch, 2))`` -> weighted
        loss per row ``(batch,)``.

    Returns
    -------
    base : float
        Mean loss with nothing replaced.
    losses : ndarray of shape (n_fields,)
        Mean loss with field ``j`` (alone) replaced, for every ``j``.
    """
    n_fields = dataset.codes.shape[1]
    total = torch.zeros(n_fields + 1, dtype=torch.float64)  # (F + 1,)
    weight = 0.0
    masks = torch.eye(n_fields + 1, n_fields, dtype=torch.bool)  # (F + 1, F)
    masks = masks.roll(1, dims=0)  # row 0 replaces nothing, row j + 1 field j
    for codes, target in _BatchIterator(dataset, _PREDICT_BATCH_SIZE, None):
        target = target.to(torch.float64)  # (batch, 2)
        for k, mask in enumerate(masks):
            total[k] += row_loss(replacer(codes, mask), target).sum()
        weight += float(target[:, 1].sum())
    mean = (total / max(weight, 1e-300)).numpy()  # (F + 1,)
    return float(mean[0]), mean[1:]


def normalised_importances(base: float, losses: np.ndarray) -> np.ndarray:
    """Loss rises clipped at 0 and divided by their sum (all 0 if none rises)."""
    rise = np.clip(losses - base, 0.0, None)  # (F,)
    total = rise.sum()
    return rise / total if total > 0 else np.zeros_like(rise)


def coalitions(n_fields: int, n_permutations: int, seed: int | None):
    """Coalitions to evaluate and the weights that turn their values into
    Shapley values.

    Returns
    -------
    kept : bool ndarray of shape (n_coalitions, F)
        Which fields each coalition keeps (the others are replaced).
    weights : float64 ndarray of shape (n_coalitions, F)
        ``phi = values @ weights`` for ``values`` ``(n_rows, n_coalitions)``.
        Every column of ``weights`` sums to 0 but for +1 on the coalition of
        all fields and -1 on the empty one, so ``phi.sum(1)`` telescopes to
        ``f(x) - f(reference)`` exactly.
    """
    if n_fields <= EXACT_MAX_FIELDS:
        # every subset S; phi_i = sum_S |S|! (F - |S| - 1)! / F! (v(S+i) - v(S))
        bits = np.arange(1 << n_fields)[:, None] >> np.arange(n_fields)  # (2^F, F)
        kept = (bits & 1).astype(bool)  # (2^F, F)
        size = kept.sum(axis=1)  # (2^F,)
        fact = [math.factorial(k) for k in range(n_fields + 1)]
        w = np.array(
            [
                fact[s] * fact[n_fields - s - 1] / fact[n_fields] if s < n_fields else 0
                for s in range(n_fields + 1)
            ]
        )  # w[s]: weight of a coalition of size s without i
        with_i = w[np.maximum(size - 1, 0)][:, None]  # (2^F, 1): S = T + i
        weights = np.where(kept, with_i, -w[size][:, None])  # (2^F, F)
        return kept, weights
    # antithetic permutation sampling: each permutation and its reverse
    rng = np.random.default_rng(seed)
    half = max(1, n_permutations // 2)
    perms = np.array([rng.permutation(n_fields) for _ in range(half)])  # (M/2, F)
    perms = np.concatenate([perms, perms[:, ::-1]])  # (M, F)
    n_perm = len(perms)
    position = np.argsort(perms, axis=1)  # (M, F): where each field comes
    # prefixes: after k steps of permutation m, the first k fields are kept
    steps = np.arange(n_fields + 1)[None, :, None]  # (1, F + 1, 1)
    prefixes = position[:, None, :] < steps  # (M, F + 1, F)
    kept, index = np.unique(
        prefixes.reshape(-1, n_fields), axis=0, return_inverse=True
    )  # (U, F), (M (F + 1),)
    index = index.reshape(n_perm, n_fields + 1)  # (M, F + 1)
    weights = np.zeros((len(kept), n_fields))  # (U, F)
    rows = np.arange(n_fields)  # step k adds field perms[m, k]
    for m in range(n_perm):
        np.add.at(weights, (index[m, rows + 1], perms[m]), 1.0 / n_perm)
        np.add.at(weights, (index[m, rows], perms[m]), -1.0 / n_perm)
    return kept, weights


@torch.no_grad()
def shapley_values(
    replacer: Replacer,
    codes: torch.Tensor,
    output: int,
    kept: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """Shapley values of every field for output column ``output``.

    The value of a coalition ``S`` for a row is the network output with the
    fields outside ``S`` replaced by their references (:class:`Replacer`).

    Parameters
    ----------
    replacer : Replacer
    codes : Tensor of shape (n, F)
    output : int
        Column of the network output.
    kept, weights : ndarray
        From :func:`coalitions`.

    Returns
    -------
    phi : ndarray of shape (n, F)
        float64; ``phi.sum(1) == f(x) - f(reference)`` up to rounding.
    """
    n, n_fields = codes.shape
    n_coal = kept.shape[0]
    replaced = torch.from_numpy(~kept)  # (U, F)
    w = torch.from_numpy(weights)  # (U, F)
    phi = np.empty((n, n_fields))
    block = max(1, _VALUES_PER_BLOCK // n_coal)  # rows per block
    for start in range(0, n, block):
        rows = codes[start : start + block]  # (b, F)
        b = rows.shape[0]
        flat_codes = rows.repeat_interleave(n_coal, dim=0)  # (b U, F)
        flat_mask = replaced.repeat(b, 1)  # (b U, F)
        values = torch.empty(b * n_coal, dtype=torch.float64)  # (b U,)
        for s in range(0, b * n_coal, _PREDICT_BATCH_SIZE):
            chunk = slice(s, s + _PREDICT_BATCH_SIZE)
            z = replacer(flat_codes[chunk], flat_mask[chunk])  # (chunk, n_out)
            values[chunk] = z[:, output]  # (chunk,)
        phi[start : start + b] = (values.view(b, n_coal) @ w).numpy()  # (b, F)
    return phi
