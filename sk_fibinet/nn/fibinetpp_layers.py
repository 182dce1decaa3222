"""FiBiNet++'s three layers: feature normalisation, Bi-Linear+ (the low-rank
interaction layer) and SENet+.

Zhang, Zheng & Zhang, "FiBiNet++: Reducing Model Size by Low Rank Feature
Interaction Layer for CTR Prediction", CIKM 2022 (arXiv 2209.05016).
:mod:`sk_fibinet.nn.fibinetpp` composes them into the network.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F_

from .layers import _linear

__all__ = ["LN_EPS", "BilinearPlus", "FeatureNorm", "SENETPlus"]

#: LayerNorm epsilon of the authors' ``SimpleLayerNormalization``.
LN_EPS = 1e-6


class FeatureNorm(nn.Module):
    """Feature normalisation: BatchNorm for categorical fields, LayerNorm for
    numeric ones.

    Categorical fields share one ``BatchNorm1d(d)``: statistics per embedding
    component over the batch and all categorical fields, as the authors' Keras
    ``BatchNormalization(axis=-1)`` on ``(batch, F_cat, d)``. Every numeric field
    is layer-normalised over its ``d`` values with its own scale and shift
    (``(F_num, d)`` each, the authors' unshared ``SimpleLayerNormalization``).
    A training batch with a single value per component (one row, one
    categorical field) is normalised with the running statistics instead of
    failing.

    Parameters
    ----------
    is_numeric : sequence of bool
        Per field, ``True`` for a numeric (binned) field.
    d_embedding : int
        Embedding width ``d``.

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields, d_embedding)``
    - Output: ``(batch, n_fields, d_embedding)``, fields in input order

    Examples
    --------
    >>> norm = FeatureNorm(is_numeric=[False, True, False], d_embedding=4)
    >>> norm(torch.randn(5, 3, 4)).shape
    torch.Size([5, 3, 4])
    """

    def __init__(self, *, is_numeric: Sequence[bool], d_embedding: int):
        super().__init__()
        is_numeric = [bool(v) for v in is_numeric]
        if not is_numeric:
            raise ValueError(f"is_numeric needs >= 1 field, got {is_numeric=}")
        flags = torch.tensor(is_numeric)  # (F,)
        cat = torch.nonzero(~flags).flatten()  # (F_cat,)
        num = torch.nonzero(flags).flatten()  # (F_num,)
        # [categorical; numeric] -> input order
        inverse = torch.argsort(torch.cat([cat, num]))  # (F,)
        self.register_buffer("cat_index", cat, persistent=False)
        self.register_buffer("num_index", num, persistent=False)
        self.register_buffer("inverse", inverse, persistent=False)
        self.bn = nn.BatchNorm1d(d_embedding) if cat.numel() else None
        self.ln_weight = self.ln_bias = None
        if num.numel():
            self.ln_weight = nn.Parameter(torch.ones(num.numel(), d_embedding))
            self.ln_bias = nn.Parameter(torch.zeros(num.numel(), d_embedding))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Normalise ``(batch, F, d)`` embeddings field by field."""
        parts = []
        if self.bn is not None:
            c = e.index_select(1, self.cat_index)  # (batch, F_cat, d)
            ct = c.transpose(1, 2)  # (batch, d, F_cat)
            if self.training and ct.shape[0] * ct.shape[2] == 1:
                # one value per component (a last batch of one row, one
                # categorical field): no batch statistics, use the running ones
                bn = self.bn
                ct = F_.batch_norm(
                    ct, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps
                )  # (1, d, 1)
            else:
                ct = self.bn(ct)  # (batch, d, F_cat)
            parts.append(ct.transpose(1, 2))  # (batch, F_cat, d)
        if self.ln_weight is not None:
            n = e.index_select(1, self.num_index)  # (batch, F_num, d)
            # the width from a parameter, not from n: a constant when traced
            # for ONNX (n.shape[-1:] would follow the batch); the same value
            d = self.ln_weight.shape[-1:]
            n = F_.layer_norm(n, d, eps=LN_EPS)  # (batch, F_num, d)
            parts.append(n * self.ln_weight + self.ln_bias)  # (batch, F_num, d)
        z = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (batch, F, d)
        return z.index_select(1, self.inverse)  # (batch, F, d)

    def normalize_codes(self, v: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        """Normalise one vector per code as :meth:`forward` does in evaluation
        mode: ``v`` ``(n, d)`` of fields ``field`` ``(n,)`` -> ``(n, d)``.

        BatchNorm uses its running statistics, so each vector is normalised on
        its own, as a row is at prediction time.
        """
        n_fields = self.inverse.numel()
        is_num = torch.zeros(n_fields, dtype=torch.bool, device=v.device)  # (F,)
        is_num[self.num_index] = True
        position = torch.full((n_fields,), -1, dtype=torch.long, device=v.device)
        position[self.num_index] = torch.arange(
            self.num_index.numel(), device=v.device
        )  # (F,): index among the numeric fields
        num = is_num[field]  # (n,)
        out = torch.empty_like(v)  # (n, d)
        if self.bn is not None:
            bn = self.bn
            out[~num] = F_.batch_norm(
                v[~num],
                bn.running_mean,
                bn.running_var,
                bn.weight,
                bn.bias,
                training=False,
                eps=bn.eps,
            )  # (n_cat, d)
        if self.ln_weight is not None:
            k = position[field[num]]  # (n_num,)
            z = F_.layer_norm(v[num], v.shape[-1:], eps=LN_EPS)  # (n_num, d)
            out[num] = z * self.ln_weight[k] + self.ln_bias[k]  # (n_num, d)
        return out


class BilinearPlus(nn.Module):
    """Bi-Linear+: shared-matrix inner products of all field pairs, compressed.

    ``p_ij = <v_i W, v_j>`` for every pair ``i < j`` with one shared ``d x d``
    matrix ``W`` gives ``P`` scalars (the authors' ``"all_ip"`` type), computed as
    one batched Gram matrix ``(E W) E^T`` whose upper triangle is read through
    index buffers. A linear layer then maps the ``P`` scalars to ``d_out`` units:
    with ``rank`` it is the low-rank product ``P -> rank -> d_out`` (no
    activation, no bias in between); with ``rank=None`` a single full
    ``P -> d_out`` layer, as the authors' code runs by default
    (``origin_bilinear_dnn_units=[50]``, linear activation).

    Parameters
    ----------
    n_fields : int
        Number of fields ``F``, at least 2.
    d_embedding : int
        Embedding width ``d``.
    d_out : int, default=50
        Output width of the compression layer.
    rank : int or None, default=None
        Inner width of the low-rank compression; ``None``: one full layer.
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields, d_embedding)``
    - Output: ``(batch, d_out)``; :meth:`pair_products` gives ``(batch, n_pairs)``

    Parameters: ``d^2`` for ``W``, then ``P rank + rank d_out + d_out`` (low
    rank) or ``P d_out + d_out`` (full).

    Examples
    --------
    >>> bi = BilinearPlus(n_fields=4, d_embedding=3, d_out=5, rank=2)
    >>> bi(torch.randn(2, 4, 3)).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        *,
        n_fields: int,
        d_embedding: int,
        d_out: int = 50,
        rank: int | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_fields < 2:
            raise ValueError(f"BilinearPlus needs n_fields >= 2, got {n_fields=}")
        if d_out < 1:
            raise ValueError(f"d_out must be >= 1, got {d_out=}")
        if rank is not None and rank < 1:
            raise ValueError(f"rank must be >= 1 or None, got {rank=}")
        left, right = torch.triu_indices(n_fields, n_fields, offset=1)  # (P,), (P,)
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        weight = torch.empty(d_embedding, d_embedding)  # (d, d)
        nn.init.xavier_normal_(weight, generator=generator)  # authors' glorot_normal
        self.weight = nn.Parameter(weight)
        n_pairs = left.numel()
        if rank is None:
            self.compress = _linear(n_pairs, d_out, generator=generator)
        else:
            self.compress = nn.Sequential(
                _linear(n_pairs, rank, bias=False, generator=generator),
                _linear(rank, d_out, generator=generator),
            )

    @property
    def n_pairs(self) -> int:
        """Number of field pairs ``P = F (F - 1) / 2``."""
        return self.left.numel()

    def pair_products(self, e: torch.Tensor) -> torch.Tensor:
        """The ``P`` bilinear inner products ``<v_i W, v_j>``, ``(batch, P)``."""
        gram = (e @ self.weight) @ e.transpose(1, 2)  # (batch, F, F)
        return gram[:, self.left, self.right]  # (batch, P)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, F, d)`` embeddings to compressed pairs ``(batch, d_out)``."""
        return self.compress(self.pair_products(e))  # (batch, d_out)


class SENETPlus(nn.Module):
    """SENet+: grouped mean/max squeeze, bit-wise excitation, re-weight, skip, LN.

    Squeeze: each field's ``d`` vector is split into ``n_groups`` groups of
    ``d / n_groups`` values, each group gives its mean and its max: ``2 g F``
    statistics (all means, then all maxes). Excitation: two bias-free linear
    layers ``2 g F -> max(1, int(2 g F / reduction_ratio)) -> F d`` with a ReLU
    in between and no activation after (the authors' ``senet_activation="none"``),
    one weight per embedding component (bit-wise). Fuse: ``LN(e * A + e)``, the
    re-weighted embeddings plus a skip connection, layer-normalised over each
    field's ``d`` values with one ``(d,)`` scale and shift shared by all fields.

    Parameters
    ----------
    n_fields : int
        Number of fields ``F``.
    d_embedding : int
        Embedding width ``d``; ``n_groups`` must divide it.
    n_groups : int, default=2
        Groups per field in the squeeze.
    reduction_ratio : float, default=3
        The hidden excitation layer has ``max(1, int(2 g F / reduction_ratio))``
        units.
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields, d_embedding)``
    - Output: ``(batch, n_fields, d_embedding)``; :meth:`bit_weights` gives the
      excitation ``A``, also ``(batch, n_fields, d_embedding)``

    Examples
    --------
    >>> senet = SENETPlus(n_fields=6, d_embedding=4, n_groups=2)
    >>> senet(torch.randn(2, 6, 4)).shape
    torch.Size([2, 6, 4])
    """

    def __init__(
        self,
        *,
        n_fields: int,
        d_embedding: int,
        n_groups: int = 2,
        reduction_ratio: float = 3,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_fields < 1:
            raise ValueError(f"n_fields must be >= 1, got {n_fields=}")
        if n_groups < 1 or d_embedding % n_groups:
            raise ValueError(
                f"n_groups must be >= 1 and divide d_embedding, got {n_groups=} "
                f"and {d_embedding=}"
            )
        if not reduction_ratio > 0:
            raise ValueError(f"reduction_ratio must be > 0, got {reduction_ratio=}")
        self.n_groups = n_groups
        d_squeeze = 2 * n_groups * n_fields
        d_reduced = max(1, int(d_squeeze / reduction_ratio))
        self.excitation = nn.Sequential(
            _linear(d_squeeze, d_reduced, bias=False, generator=generator),
            nn.ReLU(),
            _linear(d_reduced, n_fields * d_embedding, bias=False, generator=generator),
        )
        for layer in self.excitation[::2]:
            # the authors' glorot_normal
            nn.init.xavier_normal_(layer.weight, generator=generator)
        self.norm = nn.LayerNorm(d_embedding, eps=LN_EPS)

    def bit_weights(self, e: torch.Tensor) -> torch.Tensor:
        """Per-row bit-wise weights ``A``, shape ``(batch, F, d)``."""
        batch, n_fields, d = e.shape
        groups = e.view(batch, n_fields, self.n_groups, d // self.n_groups)
        # (batch, F, g, d/g) -> (batch, F g) each; means first, then maxes
        z = torch.cat(
            [groups.mean(dim=-1).flatten(1), groups.amax(dim=-1).flatten(1)], dim=1
        )  # (batch, 2 g F)
        return self.excitation(z).view(batch, n_fields, d)  # (batch, F, d)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Re-weight ``(batch, F, d)`` embeddings bit-wise, add them back, normalise."""
        a = self.bit_weights(e)  # (batch, F, d)
        return self.norm(e * a + e)  # (batch, F, d)
