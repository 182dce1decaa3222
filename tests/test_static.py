"""StaticFiBiNET: the exported forward pass gives FiBiNET's logits."""

import pytest
import torch

from sk_fibinet.nn.fibinet import FiBiNET
from sk_fibinet.nn.static import StaticFiBiNET

CARDS = [5, 7, 3, 9, 4, 6]


def _net(**kwargs):
    params = dict(cardinalities=CARDS, d_embedding=4, d_hidden=(8, 5))
    params.update(kwargs)
    torch.manual_seed(0)
    net = FiBiNET(**params).eval()
    with torch.no_grad():  # no zero-initialised part: every term must show
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _codes(cards, n=33):
    g = torch.Generator().manual_seed(1)
    return torch.stack(
        [torch.randint(0, c, (n,), generator=g) for c in cards], dim=1
    )  # (n, F)


@pytest.mark.parametrize("bilinear_type", ["all", "each", "interaction"])
@pytest.mark.parametrize("pairs_per_block", [1, 4, 15, 40])  # P = 15
def test_static_forward_equals_the_fused_network(bilinear_type, pairs_per_block):
    net = _net(bilinear_type=bilinear_type, max_cross_cells=100)
    x = _codes(CARDS)
    static = StaticFiBiNET(net, pairs_per_block=pairs_per_block)
    with torch.no_grad():
        torch.testing.assert_close(static(x), net(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shared_bilinear=True),
        dict(numeric_bins=[0, 0, 0, 9, 0, 6]),  # coarse levels folded in
        dict(n_outputs=3, linear=False),
        dict(cardinalities=[5], d_hidden=(4,)),  # one field: no pairs
    ],
    ids=["shared", "coarse", "multiclass-no-linear", "one-field"],
)
def test_static_forward_equals_the_network_for_every_part(kwargs):
    net = _net(**kwargs)
    x = _codes(net.embedding.cardinalities)
    with torch.no_grad():
        torch.testing.assert_close(
            StaticFiBiNET(net, pairs_per_block=4)(x), net(x), rtol=1e-5, atol=1e-6
        )


def test_block_size_is_checked():
    with pytest.raises(ValueError, match="pairs_per_block"):
        StaticFiBiNET(_net(), pairs_per_block=0)
