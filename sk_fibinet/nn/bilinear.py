"""FiBiNET's bilinear interaction and its cache-blocked fused kernel.

The bilinear products of all ``P = F (F - 1) / 2`` field pairs are the
network's widest tensor, ``(batch, P, d)``. :class:`BilinearInteraction` computes
them; :class:`_BlockedBilinearLinear` computes both branches' products a block of
pairs at a time and feeds each block straight into the first DNN layer, so the
``(batch, 2 P d)`` combination is never materialised (its backward recomputes
the blocks). The kernel is kept apart from the model code it serves so that
:mod:`sk_fibinet.nn.fibinet` reads as the architecture.

Shapes use ``F`` fields, ``d`` embedding width and ``P`` pairs.
"""

from __future__ import annotations

import bisect
import functools
from pathlib import Path

import torch
from torch import nn
from torch.autograd.function import once_differentiable

BILINEAR_TYPES = ("all", "each", "interaction")


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
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

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
        self,
        *,
        n_fields: int,
        d_embedding: int,
        bilinear_type: str = "interaction",
        generator: torch.Generator | None = None,
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
        nn.init.uniform_(weight, -bound, bound, generator=generator)
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

    With ``dtype`` (``torch.bfloat16``) the three matmuls of every block (the
    forward one and the two of the backward pass) take the block's products
    and the layer's weight rounded to ``dtype``; their results, ``h`` and
    every gradient stay float32 (the weight itself, what the optimizer
    updates, too). On CPUs with native bfloat16 (AVX-512 BF16, AMX) those
    matmuls run about twice as fast as in float32; the first layer is 19 of
    the 20.4 MFLOP per row of the reference forward pass.
    """

    @staticmethod
    def forward(ctx, et_p, w_p, et_q, w_q, weight, bias, layer_p, layer_q, dtype=None):
        n_pairs, (d, batch) = layer_p.n_pairs, et_p.shape[1:]
        block = _pairs_per_block(n_pairs, d, batch, et_p.device)
        # a fresh tensor (expand().contiguous() would alias the bias at batch 1)
        h = weight.new_empty((weight.shape[0], batch))  # (H, batch)
        h.copy_(bias.unsqueeze(1))  # (H, batch): the bias in every column
        low = _low_precision(weight, dtype)  # (H, 2 P d) in dtype, or None
        if low is not None:  # buffers for every block (no allocation per block)
            p_low = weight.new_empty((min(block, n_pairs) * d, batch), dtype=dtype)
            h_low = weight.new_empty((weight.shape[0], batch), dtype=dtype)
        for k, (layer, et) in enumerate(((layer_p, et_p), (layer_q, et_q))):
            per_field = layer._per_field(et)  # (F-1, d, batch) or None
            out = _block_buffer(n_pairs, block, et)  # (b, d, batch) or None
            w_rows = layer._stacked_maps()  # (P d, d) or None
            for start, stop, cols in _blocks(n_pairs, d, block, k):
                _, products = layer._products(
                    et, per_field, start, stop, out, w_rows, keep=False
                )
                # (H, b d) @ (b d, batch), accumulated into (H, batch)
                if low is None:
                    h.addmm_(weight[:, cols], products.flatten(0, 1))
                else:  # the block's matmul in dtype, accumulated in float32
                    rounded = p_low[: products.shape[0] * d]  # (b d, batch)
                    rounded.copy_(products.flatten(0, 1))
                    torch.mm(low[:, cols], rounded, out=h_low)  # (H, batch)
                    h.add_(h_low)  # (H, batch), accumulated in float32
        ctx.save_for_backward(et_p, et_q, weight)
        ctx.layers = (layer_p, layer_q)
        ctx.dtype, ctx.low = dtype, low  # the rounded weight, cast once per step
        return h

    @staticmethod
    @once_differentiable  # the backward is not itself differentiable
    def backward(ctx, grad_h):  # (H, batch)
        et_p, et_q, weight = ctx.saved_tensors
        layer_p, layer_q = ctx.layers
        n_pairs, (d, batch) = layer_p.n_pairs, et_p.shape[1:]
        block = _pairs_per_block(n_pairs, d, batch, et_p.device)
        grad_weight = torch.empty_like(weight)  # (H, 2 P d)
        low = ctx.low  # (H, 2 P d) in dtype, as the forward pass rounded it
        if low is not None:  # buffers for every block (no allocation per block)
            grad_low = grad_h.to(ctx.dtype)  # (H, batch)
            rows = min(block, n_pairs) * d
            p_low = grad_h.new_empty((rows, batch), dtype=ctx.dtype)  # (b d, batch)
            gw_low = grad_h.new_empty((rows, grad_h.shape[0]), dtype=ctx.dtype)
            g_low = grad_h.new_empty((rows, batch), dtype=ctx.dtype)  # (b d, batch)
            g_full = grad_h.new_empty((rows, batch))  # (b d, batch) float32
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
                    if low is None:
                        # dW block = grad_h products^T: (H, batch) @ (batch, b d)
                        torch.mm(grad_h, products.t(), out=grad_weight[:, cols])
                        # d products = W_block^T grad_h: (b d, H) @ (H, batch)
                        g = torch.mm(weight[:, cols].t(), grad_h)  # (b d, batch)
                    else:  # the same two matmuls in dtype, results in float32
                        n = products.shape[0]
                        rounded = p_low[:n]  # (b d, batch)
                        rounded.copy_(products)
                        # dW block^T = products grad_h^T: (b d, batch) @ (batch, H)
                        torch.mm(rounded, grad_low.t(), out=gw_low[:n])  # (b d, H)
                        grad_weight[:, cols].copy_(gw_low[:n].t())  # (H, b d)
                        torch.mm(low[:, cols].t(), grad_low, out=g_low[:n])
                        g = g_full[:n]  # (b d, batch)
                        g.copy_(g_low[:n])  # (b d, batch) back to float32
                    g = g.view(-1, d, batch)  # (b, d, batch)
                    for part in parts:
                        _, s0, s1, _ = part
                        g_part = g[s0 - start : s1 - start]  # (n, d, batch)
                        layer._block_backward(part, g_part, acc, w_cols)
                grads.append(layer._finish_backward(et, acc))
        (g_et_p, g_w_p), (g_et_q, g_w_q) = grads
        grad_bias = grad_h.sum(dim=1)  # (H,)
        return g_et_p, g_w_p, g_et_q, g_w_q, grad_weight, grad_bias, None, None, None


def _low_precision(weight: torch.Tensor, dtype) -> torch.Tensor | None:
    """``weight`` ``(H, 2 P d)`` cast to ``dtype`` for the first layer's
    matmuls, or None to keep ``weight``'s own precision."""
    if dtype is None or dtype == weight.dtype:
        return None
    return weight.to(dtype)  # (H, 2 P d)
