"""The FiBiNet++ network in plain PyTorch (no scikit-learn, no skorch).

Zhang, Zheng & Zhang, "FiBiNet++: Reducing Model Size by Low Rank Feature
Interaction Layer for CTR Prediction", CIKM 2022 (arXiv 2209.05016); the authors'
code is github.com/recommendation-algorithm/FiBiNet, run with ``--version ++``.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.

Over 500 lines because its four modules (feature normalisation, Bi-Linear+, SENet+ and
the network) each carry their formulas, shape notes and doctested examples, and
the field references the explanations use; they form one architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F_

from .fibinet import FieldEmbedding, _linear, fill_untrained_rows, mlp

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
        :class:`~sk_fibinet.nn.fibinet.FieldEmbedding`. ``None``: every field is
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
        :func:`~sk_fibinet.nn.fibinet.fill_untrained_rows`."""
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
