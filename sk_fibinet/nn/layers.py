"""Building blocks of both networks: initialised ``Linear`` and ``Embedding``
layers drawn from a given generator, the DNN (:func:`mlp`) with its
generator-driven :class:`Dropout`, the output shift, and the SENET layer.

Shapes use ``F`` fields and ``d`` embedding width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Dropout", "SENETLayer", "mlp", "shift_outputs"]


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
