"""FiBiNET's evaluation-mode forward pass as standard operators, for graph exporters.

:class:`StaticFiBiNET` wraps a trained :class:`~sk_fibinet.nn.fibinet.FiBiNET`
and computes the same logits without the fused kernel
(:class:`~sk_fibinet.nn.bilinear._BlockedBilinearLinear`), whose Python loop
over cache-sized blocks and in-place writes a tracer cannot follow. What the
kernel does at run time, this module does once, when it is built:

- the coarse embedding levels are folded into one table, so a lookup is one
  gather;
- the pairs are cut into blocks of a fixed size (the batch of an exported
  graph is not known when it is built), and every block's pair indices,
  bilinear maps and columns of the first DNN layer become constants of their
  own, so the graph slices nothing at run time.

Each block's products stay feature-major, ``(b d, batch)``, and go straight
into a matmul with the block's columns of the first layer: neither the
``(batch, 2 P d)`` combination of both branches nor a transposed copy of it is
built (in onnxruntime those copies cost as much as the layer itself, see
``docs/serving.rst``).

Shapes use ``F`` fields, ``d`` embedding width, ``P`` pairs, ``b`` pairs in a
block and ``H`` the width of the first DNN layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .fibinet import FiBiNET

#: Pairs per block: fixed, because an exported graph serves every batch size.
STATIC_PAIRS_PER_BLOCK = 64


class StaticFiBiNET(nn.Module):
    """A trained FiBiNET's forward pass with constant blocks, for export.

    Parameters
    ----------
    net : FiBiNET
        The trained network; kept (not copied) for the layers used as they are
        (SENET, the DNN after its first layer, the linear and crossed parts).
        Build the wrapper after training: the folded constants are copies.
    pairs_per_block : int, default=STATIC_PAIRS_PER_BLOCK
        Pairs per block of the bilinear products.

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields)`` integer codes
    - Output: ``(batch, n_outputs)`` logits, those of ``net(x)`` in
      evaluation mode

    Examples
    --------
    >>> net = FiBiNET(cardinalities=[4, 5, 6], d_embedding=4, d_hidden=(8,)).eval()
    >>> x = torch.tensor([[0, 1, 2], [3, 4, 5]])
    >>> static = StaticFiBiNET(net, pairs_per_block=2)
    >>> torch.allclose(static(x), net(x), atol=1e-6)
    True
    """

    def __init__(self, net: FiBiNET, pairs_per_block: int = STATIC_PAIRS_PER_BLOCK):
        super().__init__()
        if pairs_per_block < 1:
            raise ValueError(f"pairs_per_block must be >= 1, got {pairs_per_block=}")
        self.net = net
        with torch.no_grad():
            table = net.embedding.vectors().detach().clone()  # (R, d)
            self.register_buffer("table", table)  # an initializer when exported
            self._blocks = self._constant_blocks(net, pairs_per_block)

    def _constant_blocks(self, net: FiBiNET, pairs_per_block: int) -> list:
        """Register every block's constants; return their buffer names per
        branch: ``[(left, right, maps or None, columns), ...]``."""
        first = net.dnn[0]
        d = self.table.shape[1]
        n_pairs = net.bilinear_p.n_pairs
        branches = []
        for k, layer in enumerate((net.bilinear_p, net.bilinear_q)):
            names = []
            interaction = layer.bilinear_type == "interaction"
            for start in range(0, n_pairs, pairs_per_block):
                stop = min(start + pairs_per_block, n_pairs)
                cols = slice((k * n_pairs + start) * d, (k * n_pairs + stop) * d)
                block = {
                    "left": layer.left[start:stop],  # (b,)
                    "right": layer.right[start:stop],  # (b,)
                    # vw = W^T v_i, one map per pair: (b, d, d)
                    "maps": layer.weight[start:stop].transpose(1, 2)
                    if interaction
                    else None,
                    "columns": first.weight[:, cols].t(),  # (b d, H)
                }
                name = {}
                for key, value in block.items():
                    name[key] = None
                    if value is not None:
                        name[key] = f"_block{k}_{start}_{key}"
                        self.register_buffer(name[key], value.contiguous().clone())
                names.append(name)
            branches.append(names)
        return branches

    def _pairs(self, et: torch.Tensor, layer, blocks: list) -> torch.Tensor:
        """One branch's pair products through the first DNN layer, ``(batch, H)``
        without the bias, from feature-major ``(F, d, batch)`` embeddings."""
        per_field = None
        if layer.bilinear_type != "interaction":
            per_field = layer._left_maps(et)  # (F-1, d, batch): W_i^T v_i
        h = None
        for block in blocks:
            left = getattr(self, block["left"])  # (b,)
            right = et.index_select(0, getattr(self, block["right"]))  # (b, d, batch)
            if per_field is None:
                maps = getattr(self, block["maps"])  # (b, d, d)
                vw = torch.matmul(maps, et.index_select(0, left))  # (b, d, batch)
            else:
                vw = per_field.index_select(0, left)  # (b, d, batch)
            products = (vw * right).flatten(0, 1)  # (b d, batch)
            columns = getattr(self, block["columns"])  # (b d, H)
            part = products.t() @ columns  # (batch, H)
            h = part if h is None else h + part  # (batch, H)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, F)`` integer codes to ``(batch, n_outputs)`` logits."""
        net = self.net
        ids = x + net.embedding.offsets  # (batch, F)
        e = nn.functional.embedding(ids, self.table)  # (batch, F, d)
        if not net.bilinear_p.n_pairs:  # a single field: no pairs
            return net._head(net.dnn(net.senet(e).flatten(1)), x)  # (batch, n_out)
        a = net.senet.field_weights(e)  # (batch, F)
        et = e.permute(1, 2, 0)  # (F, d, batch)
        vt = et * a.t().unsqueeze(1)  # (F, d, batch): SENET re-weighting
        p_blocks, q_blocks = self._blocks
        h = self._pairs(et, net.bilinear_p, p_blocks)  # (batch, H)
        h = h + self._pairs(vt, net.bilinear_q, q_blocks) + net.dnn[0].bias
        for layer in net.dnn[1:]:
            h = layer(h)  # (batch, width)
        return net._head(h, x)  # (batch, n_outputs)
