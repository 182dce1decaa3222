"""The FiBiNet++ network in plain PyTorch (no scikit-learn, no skorch).

Zhang, Zheng & Zhang, "FiBiNet++: Reducing Model Size by Low Rank Feature
Interaction Layer for CTR Prediction", CIKM 2022 (arXiv 2209.05016); the authors'
code is github.com/recommendation-algorithm/FiBiNet, run with ``--version ++``.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.

Its layers (feature normalisation, Bi-Linear+, SENet+) live in
:mod:`sk_fibinet.nn.fibinetpp_layers`, also importable from here (pickles name
them here); this module composes them with the field embeddings and the DNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .embedding import FieldEmbedding, fill_untrained_rows
from .fibinetpp_layers import LN_EPS, BilinearPlus, FeatureNorm, SENETPlus
from .layers import mlp

__all__ = ["LN_EPS", "BilinearPlus", "FeatureNorm", "FiBiNetPP", "SENETPlus"]


class FiBiNetPP(nn.Module):
    """FiBiNet++: normalised embeddings, Bi-Linear+ and SENet+ branches, DNN.

    Embeddings are normalised (:class:`FeatureNorm`); :class:`BilinearPlus`
    compresses their pairwise bilinear inner products to ``d_bilinear_out``
    units, :class:`SENETPlus` re-weights them bit-wise; the two outputs,
    ``(batch, d_bilinear_out)`` and the flattened ``(batch, F d)``, are
    concatenated into the DNN. Compared with :class:`~sk_fibinet.nn.fibinet.FiBiNET`
    there is no bilinear layer on the SENET branch and no linear part, and the
    bilinear branch yields ``d_bilinear_out`` numbers instead of ``P d``, which is
    where the DNN's first layer, most of FiBiNET's weights, shrinks.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of codes of each field.
    d_embedding : int, default=16
        Embedding width ``d``.
    reduction_ratio : float, default=3
        SENet+ reduction ratio, see :class:`SENETPlus`.
    d_hidden : sequence of int, default=(128, 64)
        Widths of the DNN's hidden layers.
    dropout : float, default=0.0
        Dropout after every hidden layer.
    n_outputs : int, default=1
        One logit for binary targets, one per class otherwise.
    sparse : bool, default=False
        Sparse gradients for the main embedding table.
    numeric_bins : sequence of int or None, default=None
        Ordered bins per numeric field (0 for categorical fields): fields with
        ``numeric_bins[i] > 0`` are layer-normalised, the others batch-normalised,
        and numeric fields get coarse embeddings, see
        :class:`~sk_fibinet.nn.embedding.FieldEmbedding`. ``None``: every field is
        categorical.
    n_groups : int, default=2
        Groups per field in SENet+'s squeeze; must divide ``d_embedding``.
    bilinear_rank : int or None, default=None
        Inner width of Bi-Linear+'s low-rank compression ``P -> rank ->
        d_bilinear_out``; ``None``: one full ``P -> d_bilinear_out`` layer.
    d_bilinear_out : int, default=50
        Output width of Bi-Linear+.
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

    Notes
    -----
    Shapes:

    - Input: ``(batch, n_fields)`` integer codes
    - Output: ``(batch, n_outputs)`` logits

    With a single field there are no pairs: no Bi-Linear+ module, and the DNN
    reads the SENet+ output alone, ``(batch, d)``.

    Model size (parameters outside ``embedding.*``) on a Criteo-shaped workload,
    39 fields of which 13 numeric, ``d = 16``, DNN 400-400-400, one output, ``P =
    741``: FiBiNET (``bilinear_type="interaction"``, ``linear=False``) 10,186,807;
    FiBiNetPP with the defaults above 669,597, 15.2x fewer (with
    ``bilinear_rank=8``: 638,875, 15.9x). The paper reports 12x - 16x.

    Where this differs from the authors' code (``--version ++``):

    - The paper's "Low Rank Layer" is optional here (``bilinear_rank``); the
      default follows the authors' code, one linear ``P -> 50`` layer with bias.
    - Numeric fields are quantile-binned into embedding fields (with coarse
      levels) in this package, not ``value * vector`` as in the authors' code;
      their LayerNorm is the same (per field, own scale and shift, eps 1e-6).
    - Field order is kept (categorical and numeric fields interleaved); the
      authors put every numeric field after the categorical ones. Only the
      order of pairs differs.
    - BatchNorm uses PyTorch's momentum (0.1) and eps (1e-5), not Keras'
      (0.01 in PyTorch terms, 1e-3).
    - The DNN and output layers use PyTorch's default initialisation (the
      authors: Glorot-normal, zero biases); ``W`` and the excitation layers are
      Glorot-normal as theirs. The output layer has a bias, which stands in for
      the authors' separate global bias.
    - Default DNN widths and embedding size mirror :class:`FiBiNET`'s
      ``(128, 64)`` and 16; the authors use ``(400, 400, 400)`` and 10.

    Examples
    --------
    >>> net = FiBiNetPP(cardinalities=[4, 5, 6], d_embedding=4, d_hidden=(8,))
    >>> net(torch.tensor([[0, 1, 2], [3, 4, 5]])).shape
    torch.Size([2, 1])
    """

    #: Parameters that get sparse gradients with ``sparse=True`` (lazy Adam).
    #: The coarse table of numeric fields stays dense, as in ``FiBiNET``.
    SPARSE_PARAMETERS = ("embedding.embedding.weight",)

    def __init__(
        self,
        *,
        cardinalities: Sequence[int],
        d_embedding: int = 16,
        reduction_ratio: float = 3,
        d_hidden: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        n_outputs: int = 1,
        sparse: bool = False,
        numeric_bins: Sequence[int] | None = None,
        n_groups: int = 2,
        bilinear_rank: int | None = None,
        d_bilinear_out: int = 50,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        n_fields = len(cardinalities)
        if n_groups < 1 or d_embedding % n_groups:
            raise ValueError(
                f"n_groups must be >= 1 and divide d_embedding, got {n_groups=} "
                f"and {d_embedding=}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout=}")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs=}")
        self.embedding = FieldEmbedding(
            cardinalities=cardinalities,
            d_embedding=d_embedding,
            sparse=sparse,
            numeric_bins=numeric_bins,
            generator=generator,
        )
        is_numeric = (
            [int(b) > 0 for b in numeric_bins]
            if numeric_bins is not None
            else [False] * n_fields
        )
        self.norm = FeatureNorm(is_numeric=is_numeric, d_embedding=d_embedding)
        self.bilinear = None
        d_in = n_fields * d_embedding
        if n_fields >= 2:
            self.bilinear = BilinearPlus(
                n_fields=n_fields,
                d_embedding=d_embedding,
                d_out=d_bilinear_out,
                rank=bilinear_rank,
                generator=generator,
            )
            d_in += d_bilinear_out
        self.senet = SENETPlus(
            n_fields=n_fields,
            d_embedding=d_embedding,
            n_groups=n_groups,
            reduction_ratio=reduction_ratio,
            generator=generator,
        )
        self.dnn = mlp(
            d_in, d_hidden, dropout=dropout, n_outputs=n_outputs, generator=generator
        )

    @property
    def n_pairs(self) -> int:
        """Number of field pairs ``P = F (F - 1) / 2`` (0 for a single field)."""
        return 0 if self.bilinear is None else self.bilinear.n_pairs

    def bit_weights(self, x: torch.Tensor) -> torch.Tensor:
        """SENet+'s weights ``A`` for ``(batch, F)`` codes, ``(batch, F, d)``."""
        return self.senet.bit_weights(self.norm(self.embedding(x)))  # (batch, F, d)

    def fill_untrained_rows(self, codes: torch.Tensor | None = None, *, counts=None):
        """Embedding rows of codes absent from the ``(n, F)`` training
        ``codes`` (or with zero ``counts``) take their field's mean, see
        :func:`~sk_fibinet.nn.embedding.fill_untrained_rows`."""
        fill_untrained_rows(
            [self.embedding.embedding.weight],
            self.embedding.cardinalities,
            codes,
            counts=counts,
        )

    def field_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Mean magnitude of each field's SENet+ bit weights: ``(batch, F)``."""
        return self.bit_weights(x).abs().mean(dim=-1)  # (batch, F)

    def pair_strengths(self, x: torch.Tensor) -> torch.Tensor:
        """How strongly each pair feeds the DNN, per row: ``(batch, P)``.

        Pair ``(i, j)`` enters as one scalar ``p_ij``; its contribution to the
        first hidden layer is ``p_ij`` times the column ``c_ij`` of the first
        layer's Bi-Linear+ block composed with the compression. The strength is
        ``|p_ij| ||c_ij||``.
        """
        if self.bilinear is None:
            return x.new_zeros(x.shape[0], 0, dtype=torch.float32)  # (batch, 0)
        compress = self.bilinear.compress
        layers = compress if isinstance(compress, nn.Sequential) else [compress]
        d_out = layers[-1].weight.shape[0]
        m = self.dnn[0].weight[:, :d_out]  # (h, d_out)
        for layer in reversed(layers):
            m = m @ layer.weight  # (h, P) at the end
        p = self.bilinear.pair_products(self.norm(self.embedding(x)))  # (batch, P)
        return p.abs() * m.norm(dim=0)  # (batch, P)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, F)`` integer codes to ``(batch, n_outputs)`` logits."""
        return self._deep(self.norm(self.embedding(x)))  # (batch, n_outputs)

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
            field's *normalised* embedding vectors (after :class:`FeatureNorm`
            in evaluation mode), the representation both branches read.
        """
        emb = self.embedding
        vectors = self.norm.normalize_codes(emb.vectors(), emb.field_of_code())
        means = emb.field_means(vectors, counts)  # (F, d)
        return {"embedding": means.to(emb.embedding.weight.dtype)}

    def forward_replaced(
        self, x: torch.Tensor, replaced: torch.Tensor, references: dict
    ) -> torch.Tensor:
        """Logits with some fields' normalised embeddings replaced by their
        references (both branches and the DNN see the reference).

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
        e = self.norm(self.embedding(x))  # (batch, F, d)
        e = torch.where(replaced.unsqueeze(-1), references["embedding"], e)
        return self._deep(e)  # (batch, n_outputs)

    def _deep(self, e: torch.Tensor) -> torch.Tensor:
        """Both branches and the DNN on normalised ``(batch, F, d)`` embeddings."""
        h = self.senet(e).flatten(1)  # (batch, F d)
        if self.bilinear is not None:
            h = torch.cat([self.bilinear(e), h], dim=1)  # (batch, d_out + F d)
        return self.dnn(h)  # (batch, n_outputs)
