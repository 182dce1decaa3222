import itertools

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from sk_fibinet.nn.fibinet import FiBiNET
from sk_fibinet.nn.fibinetpp import FiBiNetPP
from sk_fibinet.nn.fibinetpp_layers import BilinearPlus, FeatureNorm, SENETPlus


def codes(cardinalities, n_rows=16, seed=0):
    """Random ``(n_rows, F)`` codes, field ``j`` in ``[0, cardinalities[j])``."""
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(0, c, (n_rows,), generator=g) for c in cardinalities]
    return torch.stack(cols, dim=1)  # (n_rows, F)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


@pytest.mark.parametrize("n_outputs", [1, 4])
@pytest.mark.parametrize("n_fields", [1, 2, 9])
def test_output_shape_for_any_field_count_and_output_count(n_fields, n_outputs):
    cards = [3 + k for k in range(n_fields)]
    net = FiBiNetPP(
        cardinalities=cards, d_embedding=4, d_hidden=(8,), n_outputs=n_outputs
    )
    assert net(codes(cards)).shape == (16, n_outputs)
    assert net.n_pairs == n_fields * (n_fields - 1) // 2


def test_single_field_has_no_bilinear_branch():
    net = FiBiNetPP(cardinalities=[5], d_embedding=4, d_hidden=(8,))
    assert net.bilinear is None and net.n_pairs == 0
    assert net.dnn[0].in_features == 4  # SENet+ output alone
    assert net(torch.tensor([[3]])).shape == (1, 1)  # one row, one field, training


@pytest.mark.parametrize("as_array", [False, True])
def test_mixed_numeric_and_categorical_fields(as_array):
    cards, bins = [6, 40, 5, 30], [0, 39, 0, 29]
    bins = np.array(bins) if as_array else bins  # an array has no truth value
    net = FiBiNetPP(cardinalities=cards, d_embedding=4, numeric_bins=bins)
    assert net.norm.cat_index.tolist() == [0, 2]
    assert net.norm.num_index.tolist() == [1, 3]
    assert net.embedding.coarse is not None
    assert net(codes(cards)).shape == (16, 1)


def test_n_groups_must_divide_d_embedding():
    with pytest.raises(ValueError, match=r"n_groups=3.*d_embedding=8"):
        FiBiNetPP(cardinalities=[3, 4], d_embedding=8, n_groups=3)
    with pytest.raises(ValueError, match=r"n_groups=3.*d_embedding=8"):
        SENETPlus(n_fields=2, d_embedding=8, n_groups=3)


def test_pair_products_equal_a_loop_over_pairs():
    torch.manual_seed(0)
    layer = BilinearPlus(n_fields=5, d_embedding=3)
    e = torch.randn(7, 5, 3)
    expected = torch.stack(
        [
            ((e[:, i] @ layer.weight) * e[:, j]).sum(dim=1)
            for i, j in itertools.combinations(range(5), 2)
        ],
        dim=1,
    )  # (7, 10)
    assert_close(layer.pair_products(e), expected, rtol=1e-5, atol=1e-6)


def test_senet_plus_equals_its_formula():
    torch.manual_seed(0)
    layer = SENETPlus(n_fields=3, d_embedding=4, n_groups=2)
    e = torch.randn(5, 3, 4)
    halves = [e[..., :2], e[..., 2:]]
    means = torch.stack([h.mean(-1) for h in halves], dim=2).flatten(1)  # (5, 6)
    maxes = torch.stack([h.amax(-1) for h in halves], dim=2).flatten(1)  # (5, 6)
    w1, w2 = layer.excitation[0].weight, layer.excitation[2].weight
    a = (torch.relu(torch.cat([means, maxes], 1) @ w1.T) @ w2.T).view(5, 3, 4)
    v = e * a + e
    expected = (v - v.mean(-1, keepdim=True)) / torch.sqrt(
        v.var(-1, unbiased=False, keepdim=True) + 1e-6
    )  # LayerNorm at its initial scale 1, shift 0
    assert_close(layer(e), expected, rtol=1e-4, atol=1e-5)


def test_feature_norm_batch_norms_categorical_and_layer_norms_numeric_fields():
    norm = FeatureNorm(is_numeric=[False, True, False], d_embedding=4)
    e = 3.0 + 2.0 * torch.randn(64, 3, 4)
    z = norm(e)  # training mode: batch statistics
    cat = z[:, [0, 2]].reshape(-1, 4)  # per component over rows and cat fields
    assert_close(cat.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    assert_close(cat.var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    num = z[:, 1]  # per row over its d values
    assert_close(num.mean(-1), torch.zeros(64), atol=1e-5, rtol=0)
    assert_close(num.var(-1, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)


def test_parameter_counts_follow_the_formulas():
    n_fields, d, g, ratio, rank, out = 7, 6, 3, 3, 4, 5
    hidden, n_outputs = (11, 9), 3
    n_num = 2  # two numeric fields
    net = FiBiNetPP(
        cardinalities=[30] * n_fields,
        d_embedding=d,
        n_groups=g,
        reduction_ratio=ratio,
        bilinear_rank=rank,
        d_bilinear_out=out,
        d_hidden=hidden,
        n_outputs=n_outputs,
        numeric_bins=[0] * (n_fields - n_num) + [29] * n_num,
    )
    n_pairs = n_fields * (n_fields - 1) // 2
    # BatchNorm: d scales + d shifts; LayerNorm: own (d scale, d shift) per
    # numeric field
    assert n_params(net.norm) == 2 * d + 2 * n_num * d
    # W, then P -> rank (no bias) -> out (bias)
    assert n_params(net.bilinear) == d * d + n_pairs * rank + rank * out + out
    d_squeeze = 2 * g * n_fields
    d_reduced = d_squeeze // ratio
    # two bias-free excitation layers, then a LayerNorm shared by the fields
    assert (
        n_params(net.senet) == d_squeeze * d_reduced + d_reduced * n_fields * d + 2 * d
    )
    widths = [out + n_fields * d, *hidden, n_outputs]
    assert n_params(net.dnn) == sum(a * b + b for a, b in itertools.pairwise(widths))
    embedding = n_params(net.embedding)
    assert n_params(net) == embedding + sum(
        n_params(m) for m in (net.norm, net.bilinear, net.senet, net.dnn)
    )


def test_full_rank_compression_is_one_layer():
    layer = BilinearPlus(n_fields=6, d_embedding=4, d_out=7, rank=None)
    assert n_params(layer) == 4 * 4 + 15 * 7 + 7


def test_ten_times_fewer_non_embedding_parameters_than_fibinet():
    # Criteo-shaped: 13 numeric fields, 26 categorical, d 16, DNN 400-400-400
    cards, bins = [20] * 13 + [100] * 26, [19] * 13 + [0] * 26
    common = dict(
        cardinalities=cards, d_embedding=16, d_hidden=(400, 400, 400), numeric_bins=bins
    )

    def non_embedding(net):
        return sum(
            p.numel()
            for name, p in net.named_parameters()
            if not name.startswith("embedding.")
        )

    old = FiBiNET(**common, bilinear_type="interaction", linear=False)
    new = FiBiNetPP(**common)
    assert new.n_pairs == 741
    assert non_embedding(old) == 10_186_807
    assert non_embedding(new) == 669_597
    assert non_embedding(old) >= 10 * non_embedding(new)  # 15.2x
    low_rank = FiBiNetPP(**common, bilinear_rank=8)
    assert non_embedding(low_rank) == 638_875  # 15.9x


@pytest.mark.parametrize("bilinear_rank", [None, 3])
def test_gradients_reach_every_parameter(bilinear_rank):
    torch.manual_seed(0)
    cards, bins = [6, 40, 5, 30, 7], [0, 39, 0, 29, 0]
    net = FiBiNetPP(
        cardinalities=cards,
        d_embedding=4,
        d_hidden=(8,),
        numeric_bins=bins,
        bilinear_rank=bilinear_rank,
    )
    net(codes(cards, n_rows=32)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_eval_mode_is_deterministic():
    torch.manual_seed(0)
    cards = [6, 5, 7]
    net = FiBiNetPP(cardinalities=cards, d_embedding=4, d_hidden=(8,), dropout=0.5)
    x = codes(cards)
    net(x)  # a training pass moves the BatchNorm running statistics
    net.eval()
    assert_close(net(x), net(x), rtol=0, atol=0)
    assert_close(net(x[:1]), net(x)[:1])  # rows do not depend on their batch


def test_sparse_embedding_gradients():
    cards = [6, 5, 7]
    net = FiBiNetPP(cardinalities=cards, d_embedding=4, d_hidden=(8,), sparse=True)
    net(codes(cards)).sum().backward()
    params = dict(net.named_parameters())
    for name in FiBiNetPP.SPARSE_PARAMETERS:
        assert params[name].grad.is_sparse, name
    dense = [n for n, p in params.items() if n not in FiBiNetPP.SPARSE_PARAMETERS]
    assert all(not params[n].grad.is_sparse for n in dense)
    torch.optim.SparseAdam([params["embedding.embedding.weight"]]).step()


def test_index_buffers_stay_out_of_the_state_dict():
    net = FiBiNetPP(cardinalities=[3, 4, 5], d_embedding=4, numeric_bins=[0, 3, 0])
    keys = set(net.state_dict())
    pair_and_field_indices = ("left", "right", "cat_index", "num_index", "inverse")
    assert not any(k.endswith(pair_and_field_indices) for k in keys)
    fresh = FiBiNetPP(cardinalities=[3, 4, 5], d_embedding=4, numeric_bins=[0, 3, 0])
    fresh.load_state_dict(net.state_dict())  # strict: same keys
