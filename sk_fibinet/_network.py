"""The FiBiNET network in plain PyTorch (no scikit-learn, no skorch).

Huang, Zhang & Zhang, "FiBiNET: Combining Feature Importance and Bilinear
feature Interaction for Click-Through Rate Prediction", RecSys 2019.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable

BILINEAR_TYPES = ("all", "each", "interaction")


class FieldEmbedding(nn.Module):
    """One embedding table for all fields, addressed through per-field offsets.

    Numeric fields (quantile bins, in order) can also share coarser embeddings:
    with ``numeric_bins`` given, the embedding of bin ``b`` of a numeric field is
    its own vector plus one vector per coarse level, shared by the ``g``
    neighbouring bins of its group (``g`` in ``COARSE_GROUPS``). Bins with few
    rows borrow strength from their neighbours, while the fine vectors keep the
    detail: a piecewise-constant code at several resolutions, one field each.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of codes of each field.
    d_embedding : int
        Width of every embedding vector.
    sparse : bool, default=False
        Produce sparse gradients (for sparse optimizers) for the main table.
    numeric_bins : sequence of int or None, default=None
        Per field, 0 for a categorical field, or the number of ordered bins
        ``B`` of a numeric field whose codes ``1..B`` are its bins (code 0,
        missing, has no neighbours). ``None``: no coarse levels.
    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields)`` integer codes, field ``j`` in
      ``[0, cardinalities[j])``
    - Output: ``(batch, n_fields, d_embedding)``

    Examples
    --------
    >>> emb = FieldEmbedding(cardinalities=[3, 5], d_embedding=4)
    >>> emb(torch.tensor([[0, 4], [2, 1]])).shape
    torch.Size([2, 2, 4])
    """

    COARSE_GROUPS = (4, 16)

    def __init__(
        self,
        *,
        cardinalities: Sequence[int],
        d_embedding: int,
        sparse: bool = False,
        numeric_bins: Sequence[int] | None = None,
    ):
        super().__init__()
        cardinalities = [int(c) for c in cardinalities]
        if not cardinalities or min(cardinalities) < 1:
            raise ValueError(f"cardinalities must be >= 1, got {cardinalities=}")
        if d_embedding < 1:
            raise ValueError(f"d_embedding must be >= 1, got {d_embedding=}")
        offsets = torch.tensor([0] + cardinalities[:-1]).cumsum(0)  # (F,)
        self.register_buffer("offsets", offsets, persistent=False)
        self.embedding = nn.Embedding(sum(cardinalities), d_embedding, sparse=sparse)
        nn.init.normal_(self.embedding.weight, std=0.01)
        self.coarse = None
        if numeric_bins is not None:
            index = self._coarse_index(cardinalities, numeric_bins)  # (codes, L)
            n_coarse = int(index.max()) + 1
            if n_coarse > 1:
                self.register_buffer("coarse_index", index, persistent=False)
                self.coarse = nn.Embedding(n_coarse, d_embedding, padding_idx=0)
                nn.init.normal_(self.coarse.weight, std=0.01)
                with torch.no_grad():
                    self.coarse.weight[0].zero_()  # row 0: "no coarse level"

    @classmethod
    def _coarse_index(cls, cardinalities, numeric_bins) -> torch.Tensor:
        """Row of every code's coarse vector per level; 0 where there is none."""
        if len(numeric_bins) != len(cardinalities):
            raise ValueError(
                f"numeric_bins needs one entry per field ({len(cardinalities)}), "
                f"got {len(numeric_bins)}"
            )
        columns, next_row = [], 1
        for group in cls.COARSE_GROUPS:
            column = []
            for card, n_bins in zip(cardinalities, numeric_bins, strict=True):
                rows = torch.zeros(card, dtype=torch.long)  # (card,)
                if 0 < n_bins < card and n_bins > group:  # > 1 group of bins
                    bins = torch.arange(n_bins)  # (B,)
                    rows[1 : n_bins + 1] = next_row + bins // group  # (B,)
                    next_row += (n_bins - 1) // group + 1
                column.append(rows)
            columns.append(torch.cat(column))  # (codes,)
        return torch.stack(columns, dim=1)  # (codes, L)

    def vectors(self) -> torch.Tensor:
        """The embedding of every code, ``(n_codes, d)``, rows in table order
        (field ``j``'s codes start at ``offsets[j]``), as :meth:`forward` reads
        them (coarse levels included)."""
        e = self.embedding.weight  # (R, d)
        if self.coarse is not None:
            e = e + self.coarse(self.coarse_index).sum(dim=1)  # (R, d)
        return e

    def field_of_code(self) -> torch.Tensor:
        """The field of every row of the table, ``(n_codes,)`` int64."""
        rows = torch.arange(self.embedding.num_embeddings, device=self.offsets.device)
        return torch.searchsorted(self.offsets, rows, right=True) - 1  # (R,)

    def field_means(self, values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Frequency-weighted mean of per-code values, field by field.

        Parameters
        ----------
        values : Tensor of shape (n_codes, width)
            One row per code, in table order (as :meth:`vectors`).
        counts : Tensor of shape (n_codes,)
            How often each code occurred (in the training rows).

        Returns
        -------
        means : Tensor of shape (n_fields, width)
            ``sum_c counts[c] values[c] / sum_c counts[c]`` over each field's
            codes, in float64; 0 for a field without counts.
        """
        field = self.field_of_code()  # (R,)
        n_fields = self.offsets.numel()
        weight = counts.to(values.device, torch.float64)  # (R,)
        sums = values.new_zeros(n_fields, values.shape[1], dtype=torch.float64)
        sums.index_add_(0, field, values.double() * weight[:, None])  # (F, width)
        totals = weight.new_zeros(n_fields).index_add_(0, field, weight)  # (F,)
        return sums / totals.clamp(min=1e-300)[:, None]  # (F, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Look up ``(batch, F)`` codes, return ``(batch, F, d)`` embeddings."""
        ids = x + self.offsets  # (batch, F)
        e = self.embedding(ids)  # (batch, F, d)
        if self.coarse is not None:
            coarse = self.coarse(self.coarse_index[ids])  # (batch, F, L, d)
            e = e + coarse.sum(dim=2)  # (batch, F, d)
        return e


class SENETLayer(nn.Module):
    """Squeeze-and-excitation re-weighting of fields.

    Squeeze: mean over the embedding dimension; excitation: two bias-free linear
    layers ``F -> max(1, F // reduction_ratio) -> F``, ReLU after the first and
    ``activation`` after the second (``"relu"`` as in FiBiNET's reference code,
    ``"sigmoid"`` as in the original SE-Net).

    Parameters
    ----------
    n_fields : int
        Number of fields ``F``.
    reduction_ratio : int, default=3
        The hidden excitation layer has ``max(1, F // reduction_ratio)`` units.
    activation : {"relu", "sigmoid"}, default="relu"
        Activation after the second excitation layer.

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields, d_embedding)``
    - Output: ``(batch, n_fields, d_embedding)``; :meth:`field_weights` gives
      ``(batch, n_fields)``

    Examples
    --------
    >>> senet = SENETLayer(n_fields=6, reduction_ratio=3)
    >>> senet(torch.randn(2, 6, 4)).shape
    torch.Size([2, 6, 4])
    """

    def __init__(
        self, *, n_fields: int, reduction_ratio: int = 3, activation: str = "relu"
    ):
        super().__init__()
        if n_fields < 1:
            raise ValueError(f"n_fields must be >= 1, got {n_fields=}")
        if reduction_ratio < 1:
            raise ValueError(f"reduction_ratio must be >= 1, got {reduction_ratio=}")
        if activation not in ("relu", "sigmoid"):
            raise ValueError(
                f"activation must be 'relu' or 'sigmoid', got {activation=}"
            )
        d_hidden = max(1, n_fields // reduction_ratio)
        self.excitation = nn.Sequential(
            nn.Linear(n_fields, d_hidden, bias=False),
            nn.ReLU(),
            nn.Linear(d_hidden, n_fields, bias=False),
            nn.ReLU() if activation == "relu" else nn.Sigmoid(),
        )

    def field_weights(self, e: torch.Tensor) -> torch.Tensor:
        """Per-row field weights ``A``, shape ``(batch, n_fields)``."""
        z = e.mean(dim=-1)  # (batch, F)
        return self.excitation(z)  # (batch, F)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Re-weight ``(batch, F, d)`` embeddings field by field."""
        a = self.field_weights(e)  # (batch, F)
        return e * a.unsqueeze(-1)  # (batch, F, d)


class BilinearInteraction(nn.Module):
    """Bilinear interaction ``p_ij = (v_i W) * v_j`` for every field pair ``i < j``.

    ``bilinear_type`` picks how many matrices ``W`` there are: ``"all"`` one
    shared ``d x d`` matrix, ``"each"`` one per left field (``F - 1``, the last
    field is never on the left), ``"interaction"`` one per pair (``P``).
    Vectorized: pair indices are buffers and each type is one batched matmul.

    Parameters
    ----------
    n_fields : int
        Number of fields ``F``.
    d_embedding : int
        Embedding width ``d``.
    bilinear_type : {"all", "each", "interaction"}, default="interaction"
        Which weight matrices exist (see above).

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields, d_embedding)``
    - Output: ``(batch, n_pairs, d_embedding)`` with
      ``n_pairs = n_fields * (n_fields - 1) // 2``

    Examples
    --------
    >>> bi = BilinearInteraction(n_fields=4, d_embedding=3, bilinear_type="each")
    >>> bi(torch.randn(2, 4, 3)).shape
    torch.Size([2, 6, 3])
    """

    def __init__(
        self, *, n_fields: int, d_embedding: int, bilinear_type: str = "interaction"
    ):
        super().__init__()
        if bilinear_type not in BILINEAR_TYPES:
            raise ValueError(
                f"bilinear_type must be one of {BILINEAR_TYPES}, got {bilinear_type=}"
            )
        if n_fields < 1:
            raise ValueError(f"n_fields must be >= 1, got {n_fields=}")
        self.bilinear_type = bilinear_type
        left, right = torch.triu_indices(n_fields, n_fields, offset=1)  # (P,), (P,)
        # Pairs are ordered by left field: those of left field i are
        # group_starts[i]:group_starts[i + 1], their right fields i+1, ..., F-1.
        self._group_starts = [
            i * (n_fields - 1) - i * (i - 1) // 2 for i in range(n_fields)
        ] + [left.numel()]
        self.register_buffer("left", left, persistent=False)
        self.register_buffer("right", right, persistent=False)
        n_matrices = {
            "all": 1,
            "each": max(n_fields - 1, 0),
            "interaction": left.numel(),
        }[bilinear_type]
        weight = torch.empty(n_matrices, d_embedding, d_embedding)  # (M, d, d)
        bound = (6.0 / (2 * d_embedding)) ** 0.5  # Glorot-uniform for a d x d map
        nn.init.uniform_(weight, -bound, bound)
        self.weight = nn.Parameter(weight)

    @property
    def n_pairs(self) -> int:
        """Number of field pairs ``P = F (F - 1) / 2``."""
        return self.left.numel()

    def factors(self, et: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two factors of every pair product, feature-major.

        Parameters
        ----------
        et : Tensor of shape (F, d, batch)
            Embeddings with the batch last (``e.permute(1, 2, 0)``, contiguous).

        Returns
        -------
        vw, right : Tensors of shape (P, d, batch)
            ``(v_i W)^T`` and ``v_j^T`` for every pair ``(i, j)``; their product
            is the pair vector ``p_ij`` with the batch last.
        """
        # Feature-major layout: every gather copies whole (d, batch) slabs (and
        # index_select's backward is a cheap index_add_ over them), the d x d maps
        # are batched matmuls with the batch as the long side, and the products
        # stacked over pairs are already the (2 P d, batch) input of the DNN.
        _, vw, right = self._block_factors(et, self._per_field(et), 0, self.n_pairs)
        return vw, right  # (P, d, batch) each

    def _per_field(self, et: torch.Tensor) -> torch.Tensor | None:
        """:meth:`_left_maps` for ``"all"`` and ``"each"``; ``None`` otherwise."""
        return None if self.bilinear_type == "interaction" else self._left_maps(et)

    def _block_factors(self, et, per_field, start: int, stop: int):
        """Factors ``(left, vw, right)`` of pairs ``start:stop``, each (b, d, batch).

        ``left`` is ``None`` for ``"all"`` / ``"each"``, whose ``vw`` is gathered
        from the per-field maps ``per_field`` (``(F-1, d, batch)``).
        """
        right = et.index_select(0, self.right[start:stop])  # (b, d, batch)
        if per_field is not None:
            vw = per_field.index_select(0, self.left[start:stop])  # (b, d, batch)
            return None, vw, right
        left = et.index_select(0, self.left[start:stop])  # (b, d, batch)
        w_t = self.weight[start:stop].transpose(1, 2)  # (b, d, d): W^T
        return left, torch.bmm(w_t, left), right  # (b, d, batch) each

    def _segments(self, start: int, stop: int):
        """Yield ``(i, s0, s1)``: the runs of pairs ``start:stop`` whose left
        field is ``i``; their right fields are consecutive, so no gather."""
        i = bisect.bisect_right(self._group_starts, start) - 1
        while start < stop:
            end = min(stop, self._group_starts[i + 1])
            yield i, start, end
            start, i = end, i + 1

    def _stacked_maps(self, transposed: bool = True) -> torch.Tensor | None:
        """The ``"interaction"`` matrices side by side (``None`` otherwise):
        ``W_k^T`` stacked by rows, ``(P d, d)``, or (``transposed=False``)
        ``W_k`` by columns, ``(d, P d)``; one small copy per pass, so that a run
        of pairs takes a slice of it, not a copy of its own."""
        if self.bilinear_type != "interaction":
            return None
        n_maps, d, _ = self.weight.shape
        if transposed:
            return self.weight.transpose(1, 2).reshape(n_maps * d, d)  # (P d, d)
        return self.weight.permute(1, 0, 2).reshape(d, n_maps * d)  # (d, P d)

    def _products(self, et, per_field, start, stop, out, w_rows, keep=True):
        """Pair products of pairs ``start:stop`` and the factors behind them.

        With ``out`` (a ``(b, d, batch)`` buffer, ``b >= stop - start``) the
        products are written run by run (:meth:`_segments`) into it, with no
        gather (``w_rows`` from :meth:`_stacked_maps`); without, all at once
        through index gathers (fewer, larger operations: for GPUs and for
        blocks that hold every pair).

        Returns
        -------
        parts : list of ``(i, s0, s1, (left, vw, right))``
            ``i`` the run's left field (``None`` for a gathered block); with
            ``keep=False`` (forward only) ``vw`` of ``"interaction"`` runs is
            not kept (``None``).
        products : Tensor of shape (stop - start, d, batch)
        """
        if out is None:
            factors = self._block_factors(et, per_field, start, stop)
            return [(None, start, stop, factors)], factors[1] * factors[2]
        parts, d, batch = [], et.shape[1], et.shape[2]
        for i, s0, s1 in self._segments(start, stop):
            n, j0 = s1 - s0, i + 1 + s0 - self._group_starts[i]
            right = et[j0 : j0 + n]  # (n, d, batch): right fields i+1+..., a view
            o = out[s0 - start : s1 - start]  # (n, d, batch)
            left = None
            if per_field is not None:
                vw = per_field[i].unsqueeze(0)  # (1, d, batch), broadcast
                torch.mul(vw, right, out=o)
            elif keep:
                left = et[i]  # (d, batch)
                vw = (w_rows[s0 * d : s1 * d] @ left).view(n, d, batch)  # W^T v_i
                torch.mul(vw, right, out=o)
            else:  # forward only: W^T v_i straight into the buffer
                torch.mm(w_rows[s0 * d : s1 * d], et[i], out=o.view(n * d, batch))
                o.mul_(right)  # (n, d, batch)
                vw = None
            parts.append((i, s0, s1, (left, vw, right)))
        return parts, out[: stop - start]  # (b, d, batch)

    def _backward_buffers(self, et: torch.Tensor):
        """Zeroed gradient accumulators for :meth:`_block_backward`.

        Returns ``grad_et`` ``(F, d, batch)``, ``grad_wt`` ``(M, d, d)`` (the
        weights' gradient, each matrix transposed for ``"interaction"``) and
        the per-field maps with their gradient (``(F-1, d, batch)`` each,
        ``None`` for ``"interaction"``).
        """
        grad_et = torch.zeros_like(et)  # (F, d, batch)
        grad_w = torch.zeros_like(self.weight)  # (M, d, d)
        per_field = self._per_field(et)  # (F-1, d, batch) or None
        grad_per_field = None if per_field is None else torch.zeros_like(per_field)
        return grad_et, grad_w, per_field, grad_per_field

    def _block_backward(self, part, g, grads, w_cols) -> None:
        """Accumulate the gradients of one part's pair products into ``grads``.

        ``part`` is ``(i, start, stop, factors)`` from :meth:`_products`
        (recomputed by the caller, not stored); ``g`` is the gradient of the
        part's products, ``(n, d, batch)``; ``grads`` is ``(grad_et, grad_wt,
        grad_per_field)`` from :meth:`_backward_buffers` (``grad_wt`` holds
        every ``dW_k^T``); ``w_cols`` is ``_stacked_maps(transposed=False)``.
        """
        i, start, stop, (left, vw, right) = part
        grad_et, grad_wt, grad_per_field = grads
        grad_vw = g * right  # (n, d, batch)
        if i is None:  # a gathered block
            left_idx, right_idx = self.left[start:stop], self.right[start:stop]
            grad_et.index_add_(0, right_idx, g * vw)  # (b, d, batch) into (F, d, B)
            if grad_per_field is not None:
                grad_per_field.index_add_(0, left_idx, grad_vw)  # (F-1, d, batch)
                return
            # vw = W^T left: dW^T = grad_vw left^T, d left = W grad_vw
            grad_wt[start:stop] = torch.bmm(grad_vw, left.transpose(1, 2))  # (b,d,d)
            grad_et.index_add_(
                0, left_idx, torch.bmm(self.weight[start:stop], grad_vw)
            )  # (b, d, batch) into (F, d, batch)
            return
        n, d, batch = g.shape
        j0 = i + 1 + start - self._group_starts[i]
        grad_et[j0 : j0 + n].addcmul_(g, vw)  # (n, d, batch): right fields' slice
        if grad_per_field is not None:
            grad_per_field[i] += grad_vw.sum(dim=0)  # (d, batch)
            return
        # vw_k = W_k^T left: dW_k^T = grad_vw_k left^T, d left = sum_k W_k grad_vw_k
        flat = grad_vw.view(n * d, batch)  # (n d, batch)
        torch.mm(flat, left.t(), out=grad_wt[start:stop].view(n * d, d))  # (n d, d)
        grad_et[i].addmm_(w_cols[:, start * d : stop * d], flat)  # (d, batch)

    def _finish_backward(self, et, grads) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn the accumulators into ``(grad_et, grad_w)``."""
        grad_et, grad_w, grad_per_field = grads
        if grad_per_field is None:  # "interaction": dW_k^T accumulated
            return grad_et, grad_w.transpose(1, 2).contiguous()  # (P, d, d)
        # per_field = W_i^T et_i for the F - 1 left fields
        lhs = et[:-1]  # (F-1, d, batch)
        if self.bilinear_type == "all":
            grad_w[0] = torch.einsum("fab,fcb->ac", lhs, grad_per_field)  # (d, d)
            grad_et[:-1] += torch.matmul(self.weight[0], grad_per_field)
        else:
            grad_w.copy_(torch.bmm(lhs, grad_per_field.transpose(1, 2)))  # (F-1,d,d)
            grad_et[:-1] += torch.bmm(self.weight, grad_per_field)
        return grad_et, grad_w

    def _left_maps(self, et: torch.Tensor) -> torch.Tensor:
        """``(v_i W_i)^T`` for every field that is ever on the left of a pair.

        For ``"all"`` and ``"each"`` the map depends on the left field only, so
        it is computed once per field (``F - 1`` products), not once per pair.

        Parameters
        ----------
        et : Tensor of shape (F, d, batch)

        Returns
        -------
        vw : Tensor of shape (F - 1, d, batch)
        """
        w_t = self.weight.transpose(1, 2)  # (M, d, d): W^T
        if self.bilinear_type == "all":
            n_left, d, batch = et.shape[0] - 1, et.shape[1], et.shape[2]
            flat = et[:-1].transpose(0, 1).reshape(d, n_left * batch)  # (d, (F-1) B)
            vw = (w_t[0] @ flat).view(d, n_left, batch)  # (d, F-1, batch)
            return vw.transpose(0, 1)  # (F-1, d, batch), a view
        return torch.bmm(w_t, et[:-1])  # (F-1, d, batch)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, F, d)`` embeddings to ``(batch, P, d)`` pair vectors."""
        et = e.permute(1, 2, 0).contiguous()  # (F, d, batch)
        vw, right = self.factors(et)  # (P, d, batch) each
        return (vw * right).permute(2, 0, 1)  # (batch, P, d)


_CACHE_BLOCK_ELEMENTS: int | None = None  # None: sized from the L2 cache
_DEFAULT_L2_BYTES = 512 * 1024  # when the cache size cannot be read
_SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")


@functools.lru_cache(maxsize=4)
def _l2_cache_bytes(root: Path = _SYSFS_CACHE) -> int:
    """Per-core L2 cache size in bytes, read from Linux's sysfs (512 KiB if unknown)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        for index in sorted(root.glob("index*")):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            if level == "2" and kind in ("Unified", "Data"):
                size = (index / "size").read_text().strip()
                if size[-1] in units:
                    return int(size[:-1]) * units[size[-1]]
                return int(size)
    except (OSError, ValueError):
        pass
    return _DEFAULT_L2_BYTES


def _block_elements() -> int:
    """Elements of one block of pair factors: the L2 caches of the threads.

    Measured at the reference workload's shape (d 16, batch 1,024, DNN 400) on
    a 2-core Intel Xeon with 2 MiB of L2 per core (three in-process A/B runs,
    medians of 13-28 steps): 4 MB blocks trained 6-10 % and predicted 1-7 %
    faster than 1 MB ones (the earlier fixed size, which is what this rule
    gives a 2-core AMD EPYC with 512 KiB per core), 8 MB ones were as slow as
    1 MB. Clamped to 256 KB - 16 MB.
    """
    if _CACHE_BLOCK_ELEMENTS is not None:
        return _CACHE_BLOCK_ELEMENTS
    n_bytes = _l2_cache_bytes() * max(1, torch.get_num_threads())
    return min(max(n_bytes // 4, 1 << 16), 1 << 22)  # float32 elements


def _pairs_per_block(n_pairs: int, d: int, batch: int, device: torch.device) -> int:
    """Pairs per block: the threads' L2 caches' worth of factors on CPU; all at
    once on GPUs, where kernel launches, not memory traffic, would dominate a
    Python loop."""
    if device.type != "cpu":
        return max(1, n_pairs)
    return max(1, _block_elements() // (d * batch))


def _blocks(n_pairs: int, d: int, block: int, branch: int):
    """Yield ``(start, stop, cols)`` per block of ``block`` pairs of one branch
    (0 or 1): the pairs ``start:stop`` and their columns in the ``(H, 2 P d)``
    first layer."""
    for start in range(0, n_pairs, block):
        stop = min(start + block, n_pairs)
        yield (
            start,
            stop,
            slice((branch * n_pairs + start) * d, (branch * n_pairs + stop) * d),
        )


def _block_buffer(n_pairs: int, block: int, et: torch.Tensor) -> torch.Tensor | None:
    """A ``(block, d, batch)`` buffer for one block's products, or ``None`` when
    one block holds every pair (then gathered at once, see ``_products``)."""
    d, batch = et.shape[1:]
    return None if block >= n_pairs else et.new_empty((block, d, batch))


class _BlockedBilinearLinear(torch.autograd.Function):
    """The first DNN layer applied to both branches' pair products,
    ``h = bias + W [p; q]`` of shape ``(H, batch)``, a block of pairs at a time.

    Each block's products ``(b, d, batch)`` (the threads' L2 caches' worth on
    CPU) are computed and multiplied into ``h`` while they are in cache; the
    ``(2 P d, batch)`` combination layer is never written to memory, in the
    forward pass or in the backward pass, which recomputes every block's factors
    from the two ``(F, d, batch)`` inputs (slices and small matmuls) and takes
    the weight gradient one block of columns at a time.
    """

    @staticmethod
    def forward(ctx, et_p, w_p, et_q, w_q, weight, bias, layer_p, layer_q):
        n_pairs, (d, batch) = layer_p.n_pairs, et_p.shape[1:]
        block = _pairs_per_block(n_pairs, d, batch, et_p.device)
        # a fresh tensor (expand().contiguous() would alias the bias at batch 1)
        h = weight.new_empty((weight.shape[0], batch))  # (H, batch)
        h.copy_(bias.unsqueeze(1))  # (H, batch): the bias in every column
        for k, (layer, et) in enumerate(((layer_p, et_p), (layer_q, et_q))):
            per_field = layer._per_field(et)  # (F-1, d, batch) or None
            out = _block_buffer(n_pairs, block, et)  # (b, d, batch) or None
            w_rows = layer._stacked_maps()  # (P d, d) or None
            for start, stop, cols in _blocks(n_pairs, d, block, k):
                _, products = layer._products(
                    et, per_field, start, stop, out, w_rows, keep=False
                )
                # (H, b d) @ (b d, batch), accumulated into (H, batch)
                h.addmm_(weight[:, cols], products.flatten(0, 1))
        ctx.save_for_backward(et_p, et_q, weight)
        ctx.layers = (layer_p, layer_q)
        return h

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable
    def backward(ctx, grad_h):  # (H, batch)
        et_p, et_q, weight = ctx.saved_tensors
        layer_p, layer_q = ctx.layers
        n_pairs, (d, batch) = layer_p.n_pairs, et_p.shape[1:]
        block = _pairs_per_block(n_pairs, d, batch, et_p.device)
        grad_weight = torch.empty_like(weight)  # (H, 2 P d)
        grads = []
        with torch.no_grad():
            for k, (layer, et) in enumerate(((layer_p, et_p), (layer_q, et_q))):
                grad_et, grad_w, per_field, grad_per_field = layer._backward_buffers(et)
                acc = (grad_et, grad_w, grad_per_field)
                out = _block_buffer(n_pairs, block, et)  # (b, d, batch) or None
                w_rows = layer._stacked_maps()  # (P d, d) or None
                w_cols = layer._stacked_maps(transposed=False)  # (d, P d) or None
                for start, stop, cols in _blocks(n_pairs, d, block, k):
                    parts, products = layer._products(
                        et, per_field, start, stop, out, w_rows
                    )
                    products = products.flatten(0, 1)  # (b d, batch)
                    # dW block = grad_h products^T: (H, batch) @ (batch, b d)
                    torch.mm(grad_h, products.t(), out=grad_weight[:, cols])
                    # d products = W_block^T grad_h: (b d, H) @ (H, batch)
                    g = torch.mm(weight[:, cols].t(), grad_h)  # (b d, batch)
                    g = g.view(-1, d, batch)  # (b, d, batch)
                    for part in parts:
                        _, s0, s1, _ = part
                        g_part = g[s0 - start : s1 - start]  # (n, d, batch)
                        layer._block_backward(part, g_part, acc, w_cols)
                grads.append(layer._finish_backward(et, acc))
        (g_et_p, g_w_p), (g_et_q, g_w_q) = grads
        grad_bias = grad_h.sum(dim=1)  # (H,)
        return g_et_p, g_w_p, g_et_q, g_w_q, grad_weight, grad_bias, None, None


class PairLinear(nn.Module):
    """First-order weights of crossed fields: one weight per pair of codes.

    For every pair of fields ``(i, j)`` with at most ``max_cells`` code
    combinations (``cardinalities[i] * cardinalities[j]``), each combination of
    their codes gets a weight of its own, as a crossed feature does in the wide
    part of Wide & Deep. The bilinear interaction sees a pair through products
    of ``d``-dimensional embeddings, which hardly memorises a table such as
    (month, day-of-month) -> rate; the crossed weights learn it directly and
    cost one lookup per crossed pair.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of codes of each field.
    max_cells : int
        Largest number of code combinations a pair may have to be crossed.
    n_outputs : int, default=1
        Outputs (logits) per weight.
    sparse : bool, default=False
        Produce sparse gradients for the table.

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields)`` integer codes
    - Output: ``(batch, n_outputs)``, the sum of the crossed weights

    The weights start at zero: a combination never seen in training adds
    nothing.

    Examples
    --------
    >>> cross = PairLinear(cardinalities=[3, 4, 1000], max_cells=20)
    >>> cross.n_pairs, cross.table.num_embeddings
    (1, 12)
    >>> cross(torch.tensor([[2, 3, 999]])).shape
    torch.Size([1, 1])
    """

    def __init__(
        self,
        *,
        cardinalities: Sequence[int],
        max_cells: int,
        n_outputs: int = 1,
        sparse: bool = False,
    ):
        super().__init__()
        cards = [int(c) for c in cardinalities]
        left, right, offset, total = [], [], [], 0
        for i in range(len(cards)):
            for j in range(i + 1, len(cards)):
                if cards[i] * cards[j] <= max_cells:
                    left.append(i)
                    right.append(j)
                    offset.append(total)
                    total += cards[i] * cards[j]
        long = dict(dtype=torch.long)
        self.register_buffer(
            "left", torch.tensor(left, **long), persistent=False
        )  # (C,)
        self.register_buffer(
            "right", torch.tensor(right, **long), persistent=False
        )  # (C,)
        stride = [cards[j] for j in right]
        self.register_buffer(
            "stride", torch.tensor(stride, **long), persistent=False
        )  # (C,)
        self.register_buffer(
            "offset", torch.tensor(offset, **long), persistent=False
        )  # (C,)
        self.table = nn.Embedding(max(total, 1), n_outputs, sparse=sparse)
        nn.init.zeros_(self.table.weight)

    @property
    def n_pairs(self) -> int:
        """Number of crossed pairs ``C``."""
        return self.left.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum the crossed weights of ``(batch, F)`` codes: ``(batch, n_outputs)``."""
        ids = (
            x.index_select(1, self.left) * self.stride
            + x.index_select(1, self.right)
            + self.offset
        )  # (batch, C): row of each pair's code combination
        return self.table(ids).sum(dim=1)  # (batch, n_outputs)

    @torch.no_grad()
    def field_references(self, probs: Sequence[torch.Tensor]) -> dict:
        """Expected crossed weights when one or both fields of a pair are replaced.

        A replaced field's code is averaged out over its training frequencies:
        with the left field replaced, pair ``(i, j)`` adds
        ``sum_a probs[i][a] w_ij(a, c_j)`` (a function of the kept code
        ``c_j``), likewise with the right field replaced, and with both
        ``sum_a sum_b probs[i][a] probs[j][b] w_ij(a, b)``.

        Parameters
        ----------
        probs : sequence of Tensor
            Per field, the training frequency of each of its codes
            (``(cardinality,)``, summing to 1).

        Returns
        -------
        references : dict of Tensor
            ``"cross_left"`` ``(sum_k card_right_k, n_outputs)`` and
            ``"cross_right"`` ``(sum_k card_left_k, n_outputs)`` (rows of pair
            ``k`` from ``"cross_left_offset"`` / ``"cross_right_offset"``,
            ``(C,)``), ``"cross_both"`` ``(C, n_outputs)``.
        """
        table = self.table.weight.double()  # (cells, n_outputs)
        n_out = table.shape[1]
        lefts, rights, boths = [], [], []
        for k in range(self.n_pairs):
            i, j = int(self.left[k]), int(self.right[k])
            p_i, p_j = probs[i].double(), probs[j].double()  # (ci,), (cj,)
            start = int(self.offset[k])
            w = table[start : start + p_i.numel() * p_j.numel()]  # (ci cj, n_out)
            w = w.view(p_i.numel(), p_j.numel(), n_out)  # (ci, cj, n_out)
            lefts.append(torch.einsum("a,abo->bo", p_i, w))  # (cj, n_out)
            rights.append(torch.einsum("abo,b->ao", w, p_j))  # (ci, n_out)
            boths.append(p_i @ rights[-1])  # (n_out,)
        dtype, device = self.table.weight.dtype, self.table.weight.device

        def stacked(parts):  # (rows, n_out), (C,) offsets of each pair's rows
            sizes = torch.tensor([0] + [len(t) for t in parts[:-1]])  # (C,)
            return (
                torch.cat(parts).to(device, dtype),
                sizes.cumsum(0).to(device),
            )

        left, left_offset = stacked(lefts)
        right, right_offset = stacked(rights)
        return {
            "cross_left": left,
            "cross_left_offset": left_offset,
            "cross_right": right,
            "cross_right_offset": right_offset,
            "cross_both": torch.stack(boths).to(device, dtype),  # (C, n_out)
        }

    def forward_replaced(
        self, x: torch.Tensor, replaced: torch.Tensor, references: dict
    ) -> torch.Tensor:
        """:meth:`forward` with the fields marked in ``replaced`` (``(batch, F)``
        bool) averaged out as :meth:`field_references` says; ``(batch, n_outputs)``.
        """
        xl, xr = x.index_select(1, self.left), x.index_select(1, self.right)
        w = self.table(xl * self.stride + xr + self.offset)  # (batch, C, n_out)
        rl = replaced.index_select(1, self.left).unsqueeze(-1)  # (batch, C, 1)
        rr = replaced.index_select(1, self.right).unsqueeze(-1)  # (batch, C, 1)
        by_right = references["cross_left"][xr + references["cross_left_offset"]]
        by_left = references["cross_right"][xl + references["cross_right_offset"]]
        w = torch.where(
            rl,
            torch.where(rr, references["cross_both"], by_right),
            torch.where(rr, by_left, w),
        )  # (batch, C, n_out)
        return w.sum(dim=1)  # (batch, n_outputs)


def mlp(
    d_in: int, d_hidden: Sequence[int], *, dropout: float, n_outputs: int
) -> nn.Sequential:
    """The DNN: ``Linear -> ReLU (-> Dropout)`` per hidden width, then a
    ``Linear`` to ``n_outputs`` logits; ``(batch, d_in) -> (batch, n_outputs)``.

    Examples
    --------
    >>> mlp(6, (4,), dropout=0.1, n_outputs=1)(torch.zeros(2, 6)).shape
    torch.Size([2, 1])
    """
    layers: list[nn.Module] = []
    for width in d_hidden:
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        d_in = width
    layers.append(nn.Linear(d_in, n_outputs))
    return nn.Sequential(*layers)


class FiBiNET(nn.Module):
    """FiBiNET: embeddings, SENET, bilinear interactions, DNN, optional linear part.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of codes of each field.
    d_embedding : int, default=16
        Embedding width ``d``.
    reduction_ratio : int, default=3
        SENET reduction ratio, see :class:`SENETLayer`.
    senet_activation : {"relu", "sigmoid"}, default="relu"
        Activation after SENET's second excitation layer.
    bilinear_type : {"all", "each", "interaction"}, default="interaction"
        Bilinear weight sharing, see :class:`BilinearInteraction`.
    shared_bilinear : bool, default=False
        Share the bilinear weights between the plain and the SENET branch.
    d_hidden : sequence of int, default=(128, 64)
        Widths of the DNN's hidden layers.
    dropout : float, default=0.0
        Dropout after every hidden layer.
    linear : bool, default=True
        Add a first-order (logistic-regression) term per field code.
    max_cross_cells : int, default=0
        With ``linear``, also cross every pair of fields with at most this many
        code combinations, see :class:`PairLinear`; 0: no crossed weights.
    n_outputs : int, default=1
        One logit for binary targets, one per class otherwise.
    sparse : bool, default=False
        Sparse gradients for the embedding tables.
    numeric_bins : sequence of int or None, default=None
        Ordered bins per numeric field (0 for categorical fields): numeric
        fields then also get coarse embeddings shared by neighbouring bins,
        see :class:`FieldEmbedding`.

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields)`` integer codes
    - Output: ``(batch, n_outputs)`` logits

    The combination layer concatenates the flattened bilinear outputs of both
    branches, ``(batch, 2 P d)``. With a single field there are no pairs, and the
    flattened SENET embeddings ``(batch, d)`` feed the DNN instead.

    Examples
    --------
    >>> net = FiBiNET(cardinalities=[4, 5, 6], d_embedding=4, d_hidden=(8,))
    >>> net(torch.tensor([[0, 1, 2], [3, 4, 5]])).shape
    torch.Size([2, 1])
    """

    #: Parameters that get sparse gradients with ``sparse=True`` (lazy Adam).
    SPARSE_PARAMETERS = (
        "embedding.embedding.weight",
        "linear.weight",
        "cross.table.weight",
    )

    def __init__(
        self,
        *,
        cardinalities: Sequence[int],
        d_embedding: int = 16,
        reduction_ratio: int = 3,
        senet_activation: str = "relu",
        bilinear_type: str = "interaction",
        shared_bilinear: bool = False,
        d_hidden: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        linear: bool = True,
        max_cross_cells: int = 0,
        n_outputs: int = 1,
        sparse: bool = False,
        numeric_bins: Sequence[int] | None = None,
    ):
        super().__init__()
        n_fields = len(cardinalities)
        self.embedding = FieldEmbedding(
            cardinalities=cardinalities,
            d_embedding=d_embedding,
            sparse=sparse,
            numeric_bins=numeric_bins,
        )
        self.senet = SENETLayer(
            n_fields=n_fields,
            reduction_ratio=reduction_ratio,
            activation=senet_activation,
        )
        kw = dict(
            n_fields=n_fields, d_embedding=d_embedding, bilinear_type=bilinear_type
        )
        self.bilinear_p = BilinearInteraction(**kw)
        self.bilinear_q = (
            self.bilinear_p if shared_bilinear else BilinearInteraction(**kw)
        )
        n_pairs = self.bilinear_p.n_pairs
        d_in = 2 * n_pairs * d_embedding if n_pairs else n_fields * d_embedding
        self.dnn = mlp(d_in, d_hidden, dropout=dropout, n_outputs=n_outputs)
        self.linear = None
        if linear:
            self.linear = nn.Embedding(sum(cardinalities), n_outputs, sparse=sparse)
            nn.init.zeros_(self.linear.weight)
        self.cross = None
        if linear and max_cross_cells > 0:
            cross = PairLinear(
                cardinalities=cardinalities,
                max_cells=max_cross_cells,
                n_outputs=n_outputs,
                sparse=sparse,
            )
            self.cross = cross if cross.n_pairs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, F)`` integer codes to ``(batch, n_outputs)`` logits."""
        return self._head(self._deep(self.embedding(x)), x)  # (batch, n_outputs)

    @torch.no_grad()
    def field_references(self, counts: torch.Tensor) -> dict:
        """What :meth:`forward_replaced` replaces each field by.

        Parameters
        ----------
        counts : Tensor of shape (n_codes,)
            How often each code occurred in the training rows, in table order
            (field ``j``'s codes from ``embedding.offsets[j]``).

        Returns
        -------
        references : dict of Tensor
            ``"embedding"`` ``(F, d)``: the frequency-weighted mean of each
            field's embedding vectors (coarse levels included); with the linear
            part, ``"linear"`` ``(F, n_outputs)``: the same mean of its
            weights; with crossed pairs, the expected crossed weights of
            :meth:`PairLinear.field_references`.
        """
        emb = self.embedding
        dtype = emb.embedding.weight.dtype
        refs = {"embedding": emb.field_means(emb.vectors(), counts).to(dtype)}
        if self.linear is not None:
            means = emb.field_means(self.linear.weight, counts)  # (F, n_out)
            refs["linear"] = means.to(dtype)
        if self.cross is not None:
            counts = counts.to(emb.offsets.device, torch.float64)  # (R,)
            starts = emb.offsets.tolist()
            ends = starts[1:] + [counts.numel()]
            parts = [counts[a:b] for a, b in zip(starts, ends, strict=True)]
            probs = [c / c.sum().clamp(min=1e-300) for c in parts]  # (card_j,)
            refs.update(self.cross.field_references(probs))
        return refs

    def forward_replaced(
        self, x: torch.Tensor, replaced: torch.Tensor, references: dict
    ) -> torch.Tensor:
        """Logits with some fields replaced by their references.

        Every part of the network sees the reference of a replaced field: its
        embedding (so the SENET gate, both bilinear branches and the DNN), its
        first-order weight, and its crossed weights, averaged over the field's
        training codes (see :meth:`PairLinear.field_references`). Nothing
        replaced gives :meth:`forward`'s logits; every field replaced gives one
        constant for all rows.

        Parameters
        ----------
        x : Tensor of shape (batch, F)
            Integer codes.
        replaced : bool Tensor of shape (batch, F) or (F,)
            Which fields to replace, per row or for all rows.
        references : dict of Tensor
            From :meth:`field_references`.

        Returns
        -------
        logits : Tensor of shape (batch, n_outputs)
        """
        replaced = replaced.expand(x.shape[0], -1)  # (batch, F)
        e = self.embedding(x)  # (batch, F, d)
        e = torch.where(replaced.unsqueeze(-1), references["embedding"], e)
        return self._head(self._deep(e), x, replaced, references)  # (batch, n_out)

    def _deep(self, e: torch.Tensor) -> torch.Tensor:
        """SENET, bilinear branches and DNN: ``(batch, F, d)`` embeddings to the
        DNN's ``(batch, n_outputs)`` logits (no linear part)."""
        if not self.bilinear_p.n_pairs:  # a single field: no pairs to combine
            h = self.senet(e).flatten(1)  # (batch, F d)
            return self.dnn(h)  # (batch, n_outputs)
        a = self.senet.field_weights(e)  # (batch, F)
        et = e.permute(1, 2, 0).contiguous()  # (F, d, batch)
        vt = et * a.t().unsqueeze(1)  # (F, d, batch): SENET re-weighting
        # Both branches' pair products go straight into the first DNN layer, a
        # block of pairs at a time while in cache: the (2 P d, batch)
        # combination [p; q] is never materialised (backward recomputes it).
        first = self.dnn[0]
        h = _BlockedBilinearLinear.apply(
            et,
            self.bilinear_p.weight,
            vt,
            self.bilinear_q.weight,
            first.weight,
            first.bias,
            self.bilinear_p,
            self.bilinear_q,
        )  # (h, batch)
        h = h.t()  # (batch, h), a view
        for layer in self.dnn[1:]:
            h = layer(h)  # (batch, width)
        return h  # (batch, n_outputs)

    def field_weights(self, x: torch.Tensor) -> torch.Tensor:
        """SENET excitation weights ``(batch, F)`` of ``(batch, F)`` codes."""
        return self.senet.field_weights(self.embedding(x))  # (batch, F)

    def pair_strengths(self, x: torch.Tensor) -> torch.Tensor:
        """How strongly each pair feeds the DNN, per row: ``(batch, P)``.

        The L2 norm of ``W_p,ij p_ij + W_q,ij q_ij``, the pair's contribution
        to the first hidden layer, where ``W_p,ij`` and ``W_q,ij`` are the
        columns of the first DNN layer that read the pair's plain and SENET
        products (the combination layer is ``[p; q]``, pair-major, ``d`` wide).
        """
        n_pairs = self.bilinear_p.n_pairs
        if not n_pairs:
            return x.new_zeros(x.shape[0], 0, dtype=torch.float32)  # (batch, 0)
        first = self.dnn[0].weight  # (h, 2 P d)
        h, d = first.shape[0], self.embedding.embedding.embedding_dim
        w = first.view(h, 2, n_pairs, d)  # (h, branch, P, d)
        e = self.embedding(x)  # (batch, F, d)
        p = self.bilinear_p(e)  # (batch, P, d)
        q = self.bilinear_q(self.senet(e))  # (batch, P, d)
        c = torch.einsum("bpd,hpd->bph", p, w[:, 0])  # (batch, P, h)
        c = c + torch.einsum("bpd,hpd->bph", q, w[:, 1])  # (batch, P, h)
        return c.norm(dim=-1)  # (batch, P)

    def _head(
        self,
        logits: torch.Tensor,
        x: torch.Tensor,
        replaced: torch.Tensor | None = None,
        references: dict | None = None,
    ) -> torch.Tensor:
        """Add the linear part, if any, to the DNN's ``(batch, n_outputs)`` logits
        (with ``replaced`` ``(batch, F)``, see :meth:`forward_replaced`)."""
        if self.linear is not None:
            ids = x + self.embedding.offsets  # (batch, F)
            w = self.linear(ids)  # (batch, F, n_outputs)
            if replaced is not None:
                w = torch.where(replaced.unsqueeze(-1), references["linear"], w)
            logits = logits + w.sum(dim=1)  # (batch, n_outputs)
        if self.cross is not None:
            if replaced is None:
                logits = logits + self.cross(x)  # (batch, n_outputs)
            else:
                cross = self.cross.forward_replaced(x, replaced, references)
                logits = logits + cross  # (batch, n_outputs)
        return logits
