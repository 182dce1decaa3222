"""Field embeddings: one table for every field's codes, coarse levels shared by
neighbouring numeric bins, and the per-code statistics the networks keep
(code counts, frequency-weighted field means, untrained rows).

Shapes use ``F`` fields, ``d`` embedding width and ``R`` table rows (codes of
all fields).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import _embedding

__all__ = ["FieldEmbedding", "code_counts", "fill_untrained_rows"]


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
