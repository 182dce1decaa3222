import itertools
import pickle

import pytest
import torch
from torch.testing import assert_close

from sk_fibinet.nn.bilinear import BILINEAR_TYPES, BilinearInteraction
from sk_fibinet.nn.embedding import FieldEmbedding
from sk_fibinet.nn.fibinet import FiBiNET
from sk_fibinet.nn.layers import Dropout, SENETLayer
from sk_fibinet.nn.pairs import PairLinear


def naive_bilinear(layer: BilinearInteraction, e: torch.Tensor) -> torch.Tensor:
    """Reference: an explicit Python loop over field pairs."""
    n_fields = e.shape[1]
    out = []
    for k, (i, j) in enumerate(itertools.combinations(range(n_fields), 2)):
        w = {"all": 0, "each": i, "interaction": k}[layer.bilinear_type]
        out.append((e[:, i] @ layer.weight[w]) * e[:, j])
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
@pytest.mark.parametrize("n_fields", [2, 3, 7])
def test_vectorized_bilinear_equals_naive_loop(bilinear_type, n_fields):
    torch.manual_seed(0)
    layer = BilinearInteraction(
        n_fields=n_fields, d_embedding=5, bilinear_type=bilinear_type
    )
    e = torch.randn(11, n_fields, 5)
    assert_close(layer(e), naive_bilinear(layer, e), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
def test_bilinear_output_shape(bilinear_type):
    layer = BilinearInteraction(n_fields=6, d_embedding=4, bilinear_type=bilinear_type)
    assert layer(torch.randn(3, 6, 4)).shape == (3, 15, 4)


@pytest.mark.parametrize(
    "bilinear_type, n_matrices",
    [
        ("all", lambda f: 1),
        ("each", lambda f: f - 1),
        ("interaction", lambda f: f * (f - 1) // 2),
    ],
)
@pytest.mark.parametrize("shared", [False, True])
def test_bilinear_parameter_counts_follow_the_formulas(
    bilinear_type, n_matrices, shared
):
    n_fields, d = 9, 6
    net = FiBiNET(
        cardinalities=[5] * n_fields,
        d_embedding=d,
        bilinear_type=bilinear_type,
        shared_bilinear=shared,
    )
    params = {p for m in (net.bilinear_p, net.bilinear_q) for p in m.parameters()}
    expected = n_matrices(n_fields) * d * d * (1 if shared else 2)
    assert sum(p.numel() for p in params) == expected


def test_senet_reduction_and_weights():
    senet = SENETLayer(n_fields=10, reduction_ratio=3)
    assert senet.excitation[0].weight.shape == (3, 10)  # max(1, 10 // 3)
    assert SENETLayer(n_fields=2, reduction_ratio=3).excitation[0].weight.shape == (
        1,
        2,
    )
    e = torch.randn(4, 10, 8)
    a = senet.field_weights(e)
    assert a.shape == (4, 10)
    assert (a >= 0).all()
    assert_close(senet(e), e * a.unsqueeze(-1))
    sig = SENETLayer(n_fields=10, activation="sigmoid").field_weights(e)
    assert ((sig > 0) & (sig < 1)).all()


def test_field_embedding_uses_offsets():
    emb = FieldEmbedding(cardinalities=[2, 3], d_embedding=4)
    out = emb(torch.tensor([[1, 2]]))
    assert_close(out[0, 0], emb.embedding.weight[1])
    assert_close(out[0, 1], emb.embedding.weight[2 + 2])


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
@pytest.mark.parametrize("n_fields", [1, 2, 5])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_fibinet_output_shapes(bilinear_type, n_fields, n_outputs):
    net = FiBiNET(
        cardinalities=[4] * n_fields,
        d_embedding=3,
        bilinear_type=bilinear_type,
        d_hidden=(8, 4),
        n_outputs=n_outputs,
    )
    x = torch.randint(0, 4, (6, n_fields))
    logits = net(x)
    assert logits.shape == (6, n_outputs)
    logits.sum().backward()  # a single field (no pairs) still trains
    assert net.embedding.embedding.weight.grad is not None


def _reference_fibinet(net, x):
    """FiBiNET written the plain way: cat the branches batch-major, then the DNN."""
    e = net.embedding(x)  # (batch, F, d)
    v = net.senet(e)  # (batch, F, d)
    h = torch.cat([net.bilinear_p(e), net.bilinear_q(v)], dim=1)  # (batch, 2 P, d)
    logits = net.dnn(h.flatten(1))  # (batch, n_outputs)
    if net.linear is not None:
        logits = logits + net.linear(x + net.embedding.offsets).sum(dim=1)
    return logits


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("pairs_per_block", [1, 4, None])
def test_fused_forward_and_backward_equal_the_plain_composition(
    bilinear_type, shared, n_outputs, pairs_per_block, monkeypatch
):
    import sk_fibinet.nn.bilinear as network

    if pairs_per_block is not None:  # d * batch = 18 elements per pair
        monkeypatch.setattr(network, "_CACHE_BLOCK_ELEMENTS", pairs_per_block * 18)
    torch.manual_seed(0)
    kw = dict(cardinalities=[5, 7, 3, 4], d_embedding=3, d_hidden=(8, 4))
    net = FiBiNET(
        **kw, bilinear_type=bilinear_type, shared_bilinear=shared, n_outputs=n_outputs
    ).double()
    with torch.no_grad():  # move SENET and the linear part away from 0 / init
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.stack([torch.randint(0, c, (6,)) for c in kw["cardinalities"]], dim=1)
    out = net(x)
    net.fused = False  # the module's own plain path
    plain = net(x)
    ref = _reference_fibinet(net, x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(plain, ref)
    params = list(net.parameters())
    grads = torch.autograd.grad(out.sum(), params)
    plain_grads = torch.autograd.grad(plain.sum(), params)
    ref_grads = torch.autograd.grad(ref.sum(), params)
    for g, p, r in zip(grads, plain_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)
        torch.testing.assert_close(p, r)


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
@pytest.mark.parametrize("pairs_per_block", [1, None])
def test_bfloat16_first_layer_is_float32_within_its_rounding(
    bilinear_type, pairs_per_block, monkeypatch
):
    """The kernel with dtype=bfloat16 rounds the products and the first layer's
    weight for its three matmuls: ``h`` and every gradient (for a fixed
    gradient of ``h``: no ReLU downstream to flip) stay float32, within
    bfloat16's rounding (8 bits) of the float32 kernel's, and they do differ
    from them (the matmuls ran in bfloat16). The network passes its
    ``first_layer_dtype``; its weight stays float32."""
    import sk_fibinet.nn.bilinear as network

    if pairs_per_block is not None:
        monkeypatch.setattr(network, "_CACHE_BLOCK_ELEMENTS", pairs_per_block * 3 * 64)
    torch.manual_seed(0)
    kw = dict(cardinalities=[5, 7, 3, 4, 6], d_embedding=3, d_hidden=(8, 4))
    net = FiBiNET(**kw, bilinear_type=bilinear_type)
    first = net.dnn[0]
    et = torch.randn(5, 3, 64, requires_grad=True)  # (F, d, batch)
    vt = torch.randn(5, 3, 64, requires_grad=True)  # (F, d, batch)
    grad_h = torch.randn(first.weight.shape[0], 64)  # (H, batch)
    inputs = [et, net.bilinear_p.weight, vt, net.bilinear_q.weight]
    inputs += [first.weight, first.bias]
    runs = []
    for dtype in (None, torch.bfloat16):
        h = network._BlockedBilinearLinear.apply(
            et, *inputs[1:2], vt, *inputs[3:], net.bilinear_p, net.bilinear_q, dtype
        )  # (H, batch)
        runs.append((h, torch.autograd.grad((h * grad_h).sum(), inputs)))
    (h, grads), (h_low, low_grads) = runs
    assert h_low.dtype == torch.float32 and not torch.equal(h_low, h)
    assert (h_low - h).norm() / h.norm() < 1e-2
    torch.testing.assert_close(low_grads[-1], grads[-1])  # bias: no matmul
    for g, r in zip(low_grads[:-1], grads[:-1], strict=True):
        assert g.dtype == torch.float32 and not torch.equal(g, r)
        cos = torch.nn.functional.cosine_similarity(g.flatten(), r.flatten(), 0)
        assert cos > 0.9999, cos
    x = torch.stack([torch.randint(0, c, (8,)) for c in kw["cardinalities"]], dim=1)
    out = net(x)
    net.first_layer_dtype = torch.bfloat16
    assert not torch.equal(net(x), out)
    torch.testing.assert_close(net(x), out, rtol=2e-2, atol=2e-2)
    assert first.weight.dtype == torch.float32  # what the optimizer updates


def test_only_the_plain_path_runs_the_submodules_forward_hooks():
    net = FiBiNET(cardinalities=[5, 7, 3], d_embedding=3, d_hidden=(4,))
    x = torch.tensor([[0, 1, 2], [4, 6, 0]])
    seen = []
    for name in ("bilinear_p", "bilinear_q"):
        getattr(net, name).register_forward_hook(lambda *a, n=name: seen.append(n))
    net.dnn[0].register_forward_hook(lambda *a: seen.append("dnn0"))
    fused = net(x)
    assert seen == []  # the fused kernel reads the weights directly
    net.fused = False
    assert_close(net(x), fused)
    assert seen == ["bilinear_p", "bilinear_q", "dnn0"]
    assert FiBiNET(cardinalities=[5, 7, 3], fused=False).fused is False


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
@pytest.mark.parametrize("block", [1, 3, 1 << 18])
def test_blocked_inference_equals_the_training_path(bilinear_type, block, monkeypatch):
    import sk_fibinet.nn.bilinear as network

    # block = elements per block of factors: with d * batch = 12 elements per
    # pair: 1 and 3 pairs per block, and the default: all 10 pairs at once
    monkeypatch.setattr(network, "_CACHE_BLOCK_ELEMENTS", block * 12)
    torch.manual_seed(0)
    net = FiBiNET(
        cardinalities=[5, 7, 3, 4, 6], d_embedding=3, bilinear_type=bilinear_type
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.stack([torch.randint(0, c, (4,)) for c in (5, 7, 3, 4, 6)], dim=1)
    with torch.inference_mode():
        blocked = net(x)
    assert_close(blocked, net(x).detach())
    assert_close(blocked, _reference_fibinet(net, x).detach())


def test_linear_part_is_optional_and_first_order():
    net = FiBiNET(cardinalities=[3, 3], d_embedding=2, d_hidden=(), linear=True)
    assert net.linear is not None
    assert FiBiNET(cardinalities=[3, 3], d_embedding=2, linear=False).linear is None


def test_pair_linear_crosses_only_small_pairs_one_row_per_combination():
    cards = [3, 4, 1000, 5]
    cross = PairLinear(cardinalities=cards, max_cells=20, n_outputs=2)
    pairs = list(zip(cross.left.tolist(), cross.right.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 3), (1, 3)]  # 12, 15 and 20 cells; not 1000's
    assert cross.table.num_embeddings == 12 + 15 + 20
    torch.nn.init.normal_(cross.table.weight)
    rows = set()
    for codes in itertools.product(*[range(c) if c < 10 else [0, 999] for c in cards]):
        x = torch.tensor([codes])  # (1, F)
        ids = x[:, cross.left] * cross.stride + x[:, cross.right] + cross.offset
        rows.update(ids[0].tolist())
        expected = cross.table.weight[ids[0]].sum(dim=0)  # (n_outputs,)
        assert_close(cross(x)[0], expected)
    assert rows == set(range(12 + 15 + 20))  # every row reached, none shared


def test_crossed_pairs_are_part_of_the_linear_part_and_optional():
    kw = dict(cardinalities=[3, 4, 500], d_embedding=2, d_hidden=(4,))
    net = FiBiNET(**kw, max_cross_cells=12)
    assert net.cross is not None and net.cross.n_pairs == 1
    assert not net.cross.table.weight.any()  # starts as a no-op
    assert FiBiNET(**kw).cross is None  # max_cross_cells=0
    assert FiBiNET(**kw, max_cross_cells=12, linear=False).cross is None
    assert FiBiNET(**kw, max_cross_cells=11).cross is None  # no pair fits
    x = torch.tensor([[2, 3, 499], [0, 1, 7]])
    net.eval()
    with torch.no_grad():
        before = net(x)  # (2, 1)
        net.cross.table.weight[2 * 4 + 3] = 5.0  # the cell (2, 3) of fields 0, 1
        after = net(x)  # (2, 1)
    assert_close(after - before, torch.tensor([[5.0], [0.0]]))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(cardinalities=[], d_embedding=2),
        dict(cardinalities=[0, 2], d_embedding=2),
        dict(cardinalities=[2, 2], d_embedding=0),
        dict(cardinalities=[2, 2], d_embedding=2, bilinear_type="pairs"),
    ],
)
def test_bad_sizes_fail_fast(kwargs):
    with pytest.raises(ValueError):
        FiBiNET(**kwargs)


def test_numeric_bins_share_coarse_vectors_with_their_neighbours():
    # field 0 categorical (5 codes), field 1 numeric with 20 bins (codes 1..20)
    emb = FieldEmbedding(cardinalities=[5, 21], d_embedding=3, numeric_bins=[0, 20])
    index = emb.coarse_index  # (codes, levels)
    assert index.shape == (26, len(FieldEmbedding.COARSE_GROUPS))
    assert (index[:5] == 0).all()  # categorical codes: no coarse vectors
    assert (index[5] == 0).all()  # missing code of the numeric field
    bins = index[6:]  # (20, levels) for bins 1..20
    for level, group in enumerate(FieldEmbedding.COARSE_GROUPS):
        rows = bins[:, level]
        assert (rows > 0).all()
        assert rows.unique().numel() == -(-20 // group)  # ceil(20 / group)
        assert (rows[:group] == rows[0]).all() and rows[group] != rows[0]
    x = torch.tensor([[2, 0], [4, 7]])
    expected = emb.embedding(x + emb.offsets) + emb.coarse(
        emb.coarse_index[x + emb.offsets]
    ).sum(dim=2)
    assert_close(emb(x), expected)
    assert_close(emb(x)[:, 0], emb.embedding(x[:, 0]))  # categorical: fine only


def test_no_coarse_levels_without_numeric_fields():
    emb = FieldEmbedding(cardinalities=[5, 6], d_embedding=3, numeric_bins=[0, 0])
    assert emb.coarse is None


@pytest.mark.parametrize("bilinear_type", BILINEAR_TYPES)
def test_rows_predicted_alone_equal_the_batch_and_leave_weights_alone(bilinear_type):
    torch.manual_seed(0)
    cards = [5, 6, 7, 8]
    net = FiBiNET(
        cardinalities=cards, d_embedding=4, d_hidden=(16,), bilinear_type=bilinear_type
    ).double()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.stack([torch.randint(0, c, (20,)) for c in cards], dim=1)
    with torch.inference_mode():
        one_by_one = torch.cat([net(x[i : i + 1]) for i in range(len(x))])
        batch = net(x)
    assert_close(one_by_one, batch)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_block_size_follows_the_l2_cache(tmp_path, monkeypatch):
    import sk_fibinet.nn.bilinear as network

    for i, (level, kind, size) in enumerate(
        [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K")]
    ):
        index = tmp_path / f"index{i}"
        index.mkdir()
        (index / "level").write_text(level + "\n")
        (index / "type").write_text(kind + "\n")
        (index / "size").write_text(size + "\n")
    assert network._l2_cache_bytes(tmp_path) == 2 << 20
    assert network._l2_cache_bytes(tmp_path / "missing") == 512 << 10  # fallback
    monkeypatch.setattr(network, "_l2_cache_bytes", lambda: 1 << 20)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert network._block_elements() == (2 << 20) // 4  # both threads' L2, float32
    monkeypatch.setattr(torch, "get_num_threads", lambda: 64)
    assert network._block_elements() == 1 << 22  # clamped to 16 MB
    cpu = torch.device("cpu")
    assert network._pairs_per_block(741, 16, 1024, cpu) == (1 << 22) // (16 * 1024)
    assert network._pairs_per_block(741, 16, 1024, torch.device("meta")) == 741


def test_double_backward_through_the_blocked_products_is_refused():
    torch.manual_seed(0)
    net = FiBiNET(cardinalities=[5, 6, 7, 8], d_embedding=4, d_hidden=(8,))
    x = torch.tensor([[1, 2, 3, 4], [0, 5, 6, 7]])
    loss = net(x).sum()
    (grad,) = torch.autograd.grad(loss, net.dnn[0].weight, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()


def test_dropout_masks_come_from_its_generator_and_eval_is_the_identity():
    drop = Dropout(0.25)
    x = torch.ones(64, 32)  # (64, 32)
    outputs = []
    for _ in range(2):
        drop.generator = torch.Generator().manual_seed(5)
        torch.manual_seed(len(outputs))  # the global generator plays no part
        outputs.append(drop(x))
    assert torch.equal(outputs[0], outputs[1])
    kept = outputs[0] != 0
    assert 0.6 < kept.float().mean() < 0.9  # about 1 - p
    assert torch.equal(outputs[0][kept], torch.full_like(x, 1 / 0.75)[kept])
    drop.generator = torch.Generator().manual_seed(6)
    assert not torch.equal(drop(x), outputs[0])
    assert torch.equal(drop.eval()(x), x)
    assert pickle.loads(pickle.dumps(drop)).generator is None


@pytest.mark.parametrize("variant", ["fibinet", "fibinetpp"])
def test_initial_weights_come_from_the_generator_alone(variant):
    from sk_fibinet.nn.fibinetpp import FiBiNetPP

    network = {"fibinet": FiBiNET, "fibinetpp": FiBiNetPP}[variant]

    def build(global_seed=None):
        if global_seed is not None:
            torch.manual_seed(global_seed)  # the global generator plays no part
        return network(
            cardinalities=[4, 5, 6],
            d_embedding=4,
            d_hidden=(8,),
            dropout=0.1,
            numeric_bins=[0, 0, 4],
            generator=torch.Generator().manual_seed(3),
        ).state_dict()

    a, b = build(0), build(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.random.get_rng_state()
    build()
    assert torch.equal(torch.random.get_rng_state(), state)  # nothing drawn from it
