"""The FiBiNET network in plain PyTorch (no scikit-learn, no skorch).

Huang, Zhang & Zhang, "FiBiNET: Combining Feature Importance and Bilinear
feature Interaction for Click-Through Rate Prediction", RecSys 2019.

Shapes use ``F`` fields, ``d`` embedding width and ``P = F (F - 1) / 2`` pairs.

The bilinear layer and its fused kernel live in :mod:`sk_fibinet.nn.bilinear`.
What is left here is over 500 lines because every module carries the
documentation of its part of the architecture with doctested examples, and
the network answers the explanations' question (outputs with some fields
replaced by their references) next to the forward pass it must match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .bilinear import BILINEAR_TYPES, BilinearInteraction, _BlockedBilinearLinear

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
]


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
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).
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
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        cardinalities = [int(c) for c in cardinalities]
        if not cardinalities or min(cardinalities) < 1:
            raise ValueError(f"cardinalities must be >= 1, got {cardinalities=}")
        if d_embedding < 1:
            raise ValueError(f"d_embedding must be >= 1, got {d_embedding=}")
        offsets = torch.tensor([0] + cardinalities[:-1]).cumsum(0)  # (F,)
        self.register_buffer("offsets", offsets, persistent=False)
        self.embedding = _embedding(
            sum(cardinalities), d_embedding, sparse=sparse, generator=generator
        )
        self.coarse = None
        if numeric_bins is not None:
            index = self._coarse_index(cardinalities, numeric_bins)  # (codes, L)
            n_coarse = int(index.max()) + 1
            if n_coarse > 1:
                self.register_buffer("coarse_index", index, persistent=False)
                self.coarse = _embedding(
                    n_coarse, d_embedding, padding_idx=0, generator=generator
                )
                with torch.no_grad():
                    self.coarse.weight[0].zero_()  # row 0: "no coarse level"

    @property
    def cardinalities(self) -> torch.Tensor:
        """Number of codes of each field, ``(F,)``."""
        total = torch.tensor([self.embedding.num_embeddings])  # (1,)
        return torch.diff(self.offsets.cpu(), append=total)  # (F,)

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
        return _field_means(values, counts, self.field_of_code(), self.offsets.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Look up ``(batch, F)`` codes, return ``(batch, F, d)`` embeddings."""
        ids = x + self.offsets  # (batch, F)
        e = self.embedding(ids)  # (batch, F, d)
        if self.coarse is not None:
            coarse = self.coarse(self.coarse_index[ids])  # (batch, F, L, d)
            e = e + coarse.sum(dim=2)  # (batch, F, d)
        return e


def _field_means(
    values: torch.Tensor, counts: torch.Tensor, field: torch.Tensor, n_fields: int
) -> torch.Tensor:
    """``(F, width)`` float64 count-weighted means of the ``(R, width)`` per-code
    ``values`` over each field's codes (``field`` ``(R,)``: every code's field);
    0 for a field without counts."""
    weight = counts.to(values.device, torch.float64)  # (R,)
    field = field.to(values.device)  # (R,)
    sums = values.new_zeros(n_fields, values.shape[1], dtype=torch.float64)
    sums.index_add_(0, field, values.double() * weight[:, None])  # (F, width)
    totals = weight.new_zeros(n_fields).index_add_(0, field, weight)  # (F,)
    return sums / totals.clamp(min=1e-300)[:, None]  # (F, width)


@torch.no_grad()
def code_counts(codes: torch.Tensor, cardinalities: Sequence[int]) -> torch.Tensor:
    """How often each code occurs, field after field: ``(sum(cardinalities),)``.

    Parameters
    ----------
    codes : Tensor of shape (n_samples, F)
        Integer codes, field ``f``'s in ``[0, cardinalities[f])``.
    cardinalities : sequence of int
        Number of codes of each field.

    Returns
    -------
    counts : Tensor of shape (sum(cardinalities),)
        int64, in the row order of the per-code tables.

    Examples
    --------
    >>> code_counts(torch.tensor([[0, 2], [0, 1]]), [2, 3]).tolist()
    [2, 0, 0, 1, 1]
    """
    # one field at a time: no (n, F) temporary next to the codes
    return torch.cat(
        [
            torch.bincount(codes[:, f], minlength=int(c))  # (c,)
            for f, c in enumerate(cardinalities)
        ]
    )  # (R,)


def fill_untrained_rows(
    tables: Sequence[torch.Tensor],
    cardinalities: torch.Tensor,
    codes: torch.Tensor | None = None,
    *,
    counts: torch.Tensor | None = None,
) -> None:
    """Give codes never seen in training the mean row of their field, in place.

    Missing values in a column that had none in training, and unseen
    categories when nothing was rare, would otherwise read rows that kept
    their random initial values. They get the frequency-weighted mean of the
    field's trained rows instead.

    Parameters
    ----------
    tables : sequence of Tensor
        Per-code tables of shape ``(sum(cardinalities), width)``, rows of a
        field contiguous and in field order (the embedding and linear tables).
    cardinalities : Tensor of shape (F,)
        Number of codes of each field.
    codes : Tensor of shape (n_samples, F), default=None
        The training codes.
    counts : Tensor of shape (sum(cardinalities),), default=None
        Instead of ``codes``: how often each code occurs in training, field
        after field (a streamed fit counts them batch by batch).
    """
    cardinalities = cardinalities.cpu()  # (F,)
    if counts is None:
        counts = code_counts(codes, cardinalities)  # (R,)
    counts = counts.to(torch.float64)  # (R,)
    untrained = counts == 0  # (R,)
    if not untrained.any():
        return
    field = torch.repeat_interleave(
        torch.arange(len(cardinalities)), cardinalities
    )  # (R,)
    rows = untrained.nonzero()[:, 0]  # (n_untrained,)
    for table in tables:
        weight = table.detach().cpu()  # (R, width)
        means = _field_means(weight, counts, field, len(cardinalities))  # (F, width)
        filled = means[field[rows]].to(table.dtype).to(table.device)
        table.data[rows.to(table.device)] = filled  # (n_untrained, width)


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
    generator : torch.Generator or None, default=None
        Draws the initial weights (None: torch's global generator).

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
        self,
        *,
        n_fields: int,
        reduction_ratio: int = 3,
        activation: str = "relu",
        generator: torch.Generator | None = None,
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
            _linear(n_fields, d_hidden, bias=False, generator=generator),
            nn.ReLU(),
            _linear(d_hidden, n_fields, bias=False, generator=generator),
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
        self.table = _embedding(max(total, 1), n_outputs, sparse=sparse, std=0.0)

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


def _linear(
    d_in: int, d_out: int, *, bias: bool = True, generator: torch.Generator | None
) -> nn.Linear:
    """``nn.Linear`` with torch's default initialisation drawn from ``generator``
    (None: torch's global generator), built without drawing anything else."""
    layer = nn.Linear(d_in, d_out, bias=bias, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if bias:
            bound = 1 / math.sqrt(d_in) if d_in > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _embedding(
    n: int,
    d: int,
    *,
    std: float = 0.01,
    generator: torch.Generator | None = None,
    **kwargs,
) -> nn.Embedding:
    """``nn.Embedding`` with ``N(0, std)`` rows drawn from ``generator`` (zeros
    for ``std=0``; None: torch's global generator)."""
    weight = torch.zeros(n, d)  # (n, d)
    if std:
        nn.init.normal_(weight, std=std, generator=generator)
    return nn.Embedding(n, d, _weight=weight, **kwargs)


class Dropout(nn.Module):
    """``nn.Dropout`` whose masks come from ``generator``, an attribute.

    ``generator`` None draws from torch's global generator, as ``nn.Dropout``
    does. A training loop sets its own generator (on the input's device) so
    that concurrent fits draw independent, reproducible masks; it is not
    pickled.

    Shape
    -----
    - Input: ``(*)``
    - Output: ``(*)``, the same shape

    Examples
    --------
    >>> drop = Dropout(0.5)
    >>> drop.generator = torch.Generator().manual_seed(0)
    >>> drop(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p=}")
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def __getstate__(self):
        return {**self.__dict__, "generator": None}

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep.div_(1.0 - self.p)  # (*): kept values scaled by 1 / (1 - p)


def mlp(
    d_in: int,
    d_hidden: Sequence[int],
    *,
    dropout: float,
    n_outputs: int,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """The DNN: ``Linear -> ReLU (-> Dropout)`` per hidden width, then a
    ``Linear`` to ``n_outputs`` logits; ``(batch, d_in) -> (batch, n_outputs)``.
    Initial weights come from ``generator`` (None: torch's global one); the
    dropout layers are :class:`Dropout`.

    Examples
    --------
    >>> mlp(6, (4,), dropout=0.1, n_outputs=1)(torch.zeros(2, 6)).shape
    torch.Size([2, 1])
    """
    layers: list[nn.Module] = []
    for width in d_hidden:
        layers += [_linear(d_in, width, generator=generator), nn.ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
        d_in = width
    layers.append(_linear(d_in, n_outputs, generator=generator))
    return nn.Sequential(*layers)


@torch.no_grad()
def shift_outputs(module: nn.Module, delta: torch.Tensor) -> None:
    """Add ``delta`` ``(n_outputs,)`` to every output of ``module``.

    Both variants end in :func:`mlp`, whose last layer's bias is the network's
    intercept: shifting it moves every prediction, and everything computed from
    the network afterwards (explanations, saved files), by ``delta``.
    """
    bias = module.dnn[-1].bias  # (n_outputs,)
    bias += delta.to(bias.device, bias.dtype)  # (n_outputs,)


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
    fused : bool, default=True
        Compute both branches' pair products a cache-sized block at a time
        straight into the first DNN layer (``_BlockedBilinearLinear``), never
        building the ``(batch, 2 P d)`` combination. ``False`` runs the plain
        composition ``dnn([bilinear_p(e); bilinear_q(senet(e))])`` through the
        submodules' own ``forward`` (for hooks, quantisation or
        ``torch.compile`` on them); both give the same outputs and gradients.
        An attribute: it can be switched on a built network too.
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
        fused: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.fused = fused
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
