"""The FiBiNET network in plain PyTorch (no scikit-learn, no skorch).

Huang, Zhang & Zhang, "FiBiNET: Combining Feature Importance and Bilinear
feature Interaction for Click-Through Rate Prediction", RecSys 2019.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.


The bilinear layer and its fused kernel live in :mod:`sk_fibinet.nn.bilinear`,
the field embeddings in :mod:`sk_fibinet.nn.embedding`, the crossed pairs in
:mod:`sk_fibinet.nn.pairs` and the SENET layer and the DNN in
:mod:`sk_fibinet.nn.layers`; this module composes them. The names below are
also importable from here, as before the split (pickles name them here).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .bilinear import BILINEAR_TYPES, BilinearInteraction, _BlockedBilinearLinear
from .embedding import FieldEmbedding, code_counts, fill_untrained_rows
from .layers import Dropout, SENETLayer, _embedding, mlp, shift_outputs
from .pairs import PairLinear

__all__ = [
    "BILINEAR_TYPES",
    "BilinearInteraction",
    "Dropout",
    "FiBiNET",
    "FieldEmbedding",
    "PairLinear",
    "SENETLayer",
    "code_counts",
    "fill_untrained_rows",
    "mlp",
    "shift_outputs",
]


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
    cross_pairs : sequence of (int, int), optional
        Cross only these pairs among those within ``max_cross_cells``; None
        crosses them all.
    n_outputs : int, default=1
        One logit for binary targets, one per class otherwise.
    sparse : bool, default=False
        Sparse gradients for the embedding tables.
    numeric_bins : sequence of int or None, default=None
        Ordered bins per numeric field (0 for categorical fields): numeric
        fields then also get coarse embeddings shared by neighbouring bins,
        see :class:`FieldEmbedding`.
    fused : bool, default=True
        Compute both branches' pair products a cache-sized block at a time
        straight into the first DNN layer (``_BlockedBilinearLinear``), never
        building the ``(batch, 2 P d)`` combination. ``False`` runs the plain
        composition ``dnn([bilinear_p(e); bilinear_q(senet(e))])`` through the
        submodules' own ``forward`` (for hooks, quantisation or
        ``torch.compile`` on them); both give the same outputs and gradients.
        An attribute: it can be switched on a built network too.
    first_layer_dtype : torch.dtype or None, default=None
        Precision of the fused first layer's matmuls (``torch.bfloat16``: the
        block products and the weight rounded to bfloat16, the results and
        every parameter float32, see ``_BlockedBilinearLinear``); None keeps
        the parameters' own. An attribute too; the unfused path ignores it.
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

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

    #: Class default of ``fused``, for networks pickled before it existed.
    fused = True
    #: Class default of ``first_layer_dtype``, likewise.
    first_layer_dtype = None

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
        cross_pairs: Sequence[tuple[int, int]] | None = None,
        n_outputs: int = 1,
        sparse: bool = False,
        numeric_bins: Sequence[int] | None = None,
        fused: bool = True,
        first_layer_dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.fused = fused
        self.first_layer_dtype = first_layer_dtype
        n_fields = len(cardinalities)
        self.embedding = FieldEmbedding(
            cardinalities=cardinalities,
            d_embedding=d_embedding,
            sparse=sparse,
            numeric_bins=numeric_bins,
            generator=generator,
        )
        self.senet = SENETLayer(
            n_fields=n_fields,
            reduction_ratio=reduction_ratio,
            activation=senet_activation,
            generator=generator,
        )
        kw = dict(
            n_fields=n_fields,
            d_embedding=d_embedding,
            bilinear_type=bilinear_type,
            generator=generator,
        )
        self.bilinear_p = BilinearInteraction(**kw)
        self.bilinear_q = (
            self.bilinear_p if shared_bilinear else BilinearInteraction(**kw)
        )
        n_pairs = self.bilinear_p.n_pairs
        d_in = 2 * n_pairs * d_embedding if n_pairs else n_fields * d_embedding
        self.dnn = mlp(
            d_in, d_hidden, dropout=dropout, n_outputs=n_outputs, generator=generator
        )
        self.linear = None
        if linear:
            self.linear = _embedding(
                sum(cardinalities), n_outputs, sparse=sparse, std=0.0
            )
        self.cross = None
        if linear and max_cross_cells > 0:
            cross = PairLinear(
                cardinalities=cardinalities,
                max_cells=max_cross_cells,
                pairs=cross_pairs,
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
        if not self.fused:
            p = self.bilinear_p(e)  # (batch, P, d)
            q = self.bilinear_q(self.senet(e))  # (batch, P, d)
            h = torch.cat([p.flatten(1), q.flatten(1)], dim=1)  # (batch, 2 P d)
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
            self.first_layer_dtype,
        )  # (h, batch)
        h = h.t()  # (batch, h), a view
        for layer in self.dnn[1:]:
            h = layer(h)  # (batch, width)
        return h  # (batch, n_outputs)

    def field_weights(self, x: torch.Tensor) -> torch.Tensor:
        """SENET excitation weights ``(batch, F)`` of ``(batch, F)`` codes."""
        return self.senet.field_weights(self.embedding(x))  # (batch, F)

    def fill_untrained_rows(self, codes: torch.Tensor | None = None, *, counts=None):
        """Embedding and linear rows of codes absent from the ``(n, F)``
        training ``codes`` (or with zero ``counts``) take their field's mean,
        see :func:`fill_untrained_rows`."""
        tables = [self.embedding.embedding.weight]
        if self.linear is not None:
            tables.append(self.linear.weight)
        fill_untrained_rows(tables, self.embedding.cardinalities, codes, counts=counts)

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
