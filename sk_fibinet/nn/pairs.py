"""Crossed pairs: a first-order weight for every code combination of the field
pairs small enough to cross (:class:`PairLinear`), beside the linear part.

Shapes use ``F`` fields and ``C`` crossed pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import _embedding

__all__ = ["PairLinear", "crossable_pairs"]


def crossable_pairs(cardinalities: Sequence[int], max_cells: int) -> list:
    """The pairs of fields ``(i, j)``, ``i < j``, with at most ``max_cells``
    code combinations, in :class:`PairLinear`'s order.

    >>> crossable_pairs([3, 4, 1000], max_cells=20)
    [(0, 1)]
    """
    cards = [int(c) for c in cardinalities]
    return [
        (i, j)
        for i in range(len(cards))
        for j in range(i + 1, len(cards))
        if cards[i] * cards[j] <= max_cells
    ]


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
    pairs : sequence of (int, int), optional
        Cross only these pairs of fields (``i < j``) among those within
        ``max_cells``, e.g. the ones
        :func:`~sk_fibinet.preprocessing.cross_evidence.select_pairs` keeps;
        None crosses every pair within ``max_cells``.

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
        pairs: Sequence[tuple[int, int]] | None = None,
    ):
        super().__init__()
        cards = [int(c) for c in cardinalities]
        chosen = None if pairs is None else {(int(i), int(j)) for i, j in pairs}
        left, right, offset, total = [], [], [], 0
        for i, j in crossable_pairs(cards, max_cells):
            if chosen is None or (i, j) in chosen:
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

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The crossed pairs of fields ``(i, j)``, in the table's order."""
        return list(zip(self.left.tolist(), self.right.tolist(), strict=True))

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
