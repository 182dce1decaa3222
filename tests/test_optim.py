import copy
import pickle

import pytest
import torch
from torch.testing import assert_close

from sk_fibinet.nn import optim as _optim
from sk_fibinet.nn.optim import SparseDenseAdamW, _merged_rows


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.ModuleDict(
        {
            "emb": torch.nn.Embedding(20, 4, sparse=True),
            "lin": torch.nn.Linear(4, 1),
        }
    )


def _loss(model, step):
    ids = torch.tensor([[step % 20, (3 * step + 1) % 20], [7, (step + 5) % 20]])
    return model["lin"](model["emb"](ids).sum(1)).pow(2).mean()


def _train(model, optimizers, steps=6):
    for step in range(steps):
        for opt in optimizers:
            opt.zero_grad()
        _loss(model, step).backward()
        for opt in optimizers:
            opt.step()


def test_matches_adamw_on_dense_and_sparse_adam_on_sparse_parameters():
    ours, ref = _model(), _model()
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    lr_dense, lr_sparse, decay = 1e-2, 3e-2, 0.1
    opt = SparseDenseAdamW(
        [
            {"params": ours["emb"].parameters(), "sparse": True, "lr": lr_sparse},
            {"params": ours["lin"].parameters()},
        ],
        lr=lr_dense,
        weight_decay=decay,
    )
    _train(ours, [opt])
    dense = torch.optim.AdamW(ref["lin"].parameters(), lr=lr_dense, weight_decay=decay)
    sparse = torch.optim.SparseAdam(list(ref["emb"].parameters()), lr=lr_sparse)
    _train(ref, [dense, sparse])
    for name, value in ours.state_dict().items():
        assert_close(value, ref.state_dict()[name], msg=name)
    # the embedding table is not decayed: untouched rows keep their values
    touched = {i for s in range(6) for i in (s, (3 * s + 1) % 20, 7, (s + 5) % 20)}
    untouched = [r for r in range(20) if r not in touched]
    assert_close(ours["emb"].weight[untouched], _model()["emb"].weight[untouched])


def test_inner_optimizers_follow_the_outer_learning_rates():
    model = _model()
    opt = SparseDenseAdamW(
        [
            {"params": model["emb"].parameters(), "sparse": True, "lr": 0.5},
            {"params": model["lin"].parameters(), "lr": 0.25},
        ],
        lr=1e-3,
    )
    opt.param_groups[0]["lr"] = 0.05  # as an LR scheduler would
    _loss(model, 0).backward()
    opt.step()
    assert opt._sparse.param_groups[0]["lr"] == 0.05
    assert opt._dense.param_groups[0]["lr"] == 0.25


def test_state_dict_round_trip_continues_identically():
    a = _model()
    opt_a = SparseDenseAdamW(
        [
            {"params": a["emb"].parameters(), "sparse": True},
            {"params": a["lin"].parameters()},
        ],
        lr=1e-2,
    )
    _train(a, [opt_a], steps=3)
    b = _model(seed=1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    opt_b = SparseDenseAdamW(
        [
            {"params": b["emb"].parameters(), "sparse": True},
            {"params": b["lin"].parameters()},
        ],
        lr=1e-2,
    )
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for step in range(3, 6):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _loss(model, step).backward()
            opt.step()
    for name, value in a.state_dict().items():
        assert_close(value, b.state_dict()[name], msg=name)


def test_pickled_with_its_parameters_it_continues_identically():
    # skorch pickles a net's module and optimizer together; torch's Optimizer
    # keeps only its param_groups and state, not the inner optimizers
    model = _model()
    opt = SparseDenseAdamW(
        [
            {"params": model["emb"].parameters(), "sparse": True},
            {"params": model["lin"].parameters()},
        ],
        lr=1e-2,
    )
    _train(model, [opt], steps=3)
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    for m, o in ((model, opt), (model2, opt2)):
        for step in range(3, 6):
            o.zero_grad()
            _loss(m, step).backward()
            o.step()
    assert_close(model2.state_dict(), model.state_dict(), rtol=0, atol=0)
    assert opt2._dense.param_groups[0]["params"][0] is model2["lin"].weight


def test_row_l2_adds_the_scaled_penalty_of_the_touched_rows_only():
    ours, ref = _model().double(), _model().double()  # no summation-order noise
    ref.load_state_dict(copy.deepcopy(ours.state_dict()))
    scale = torch.rand(20, dtype=torch.float64) + 0.1  # (rows,): 1 / count, say
    l2, lr = 0.5, 3e-2
    opt = SparseDenseAdamW(
        [
            {
                "params": ours["emb"].parameters(),
                "sparse": True,
                "row_l2": l2,
                "row_scale": scale,
            },
            {"params": ours["lin"].parameters()},
        ],
        lr=lr,
    )
    ref_sparse = torch.optim.SparseAdam(ref["emb"].parameters(), lr=lr)
    ref_dense = torch.optim.AdamW(ref["lin"].parameters(), lr=lr, weight_decay=0.0)
    for step in range(6):
        opt.zero_grad()
        _loss(ours, step).backward()
        opt.step()
        ref_sparse.zero_grad()
        ref_dense.zero_grad()
        _loss(ref, step).backward()
        weight = ref["emb"].weight
        grad = weight.grad.coalesce()
        rows = grad.indices()[0]
        dense_grad = grad.to_dense()
        dense_grad[rows] += l2 * scale[rows, None] * weight.detach()[rows]
        weight.grad = dense_grad.to_sparse(1)  # the same rows, penalised
        ref_sparse.step()
        ref_dense.step()
    assert_close(ours.state_dict(), ref.state_dict())
    # rows never touched keep their initial values: no decay without data
    touched = {i for s in range(6) for i in (s % 20, (3 * s + 1) % 20, 7, (s + 5) % 20)}
    untouched = sorted(set(range(20)) - touched)
    assert untouched
    initial = _model().double()["emb"].weight
    assert_close(ours["emb"].weight[untouched], initial[untouched])


@pytest.mark.parametrize("rows_per_entry", [0, 10**9])  # always sort, always mask
def test_rows_repeated_in_a_batch_are_merged_as_sparse_adam_merges_them(
    rows_per_entry, monkeypatch
):
    # many repeats of few rows in a large table, uncoalesced gradients
    monkeypatch.setattr(_optim, "_MASK_ROWS_PER_ENTRY", rows_per_entry)
    torch.manual_seed(1)
    ours = torch.nn.Embedding(5_000, 3, sparse=True).double()
    ref = copy.deepcopy(ours)
    opt = SparseDenseAdamW([{"params": ours.parameters(), "sparse": True}], lr=1e-2)
    ref_opt = torch.optim.SparseAdam(ref.parameters(), lr=1e-2)
    for step in range(5):
        ids = torch.randint(0, 40, (64, 6)) * 97 + step  # (64, 6), repeats
        target = torch.randn(64, 6, 3, dtype=torch.float64)
        for model, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            (model(ids) - target).pow(2).sum().backward()
            assert not model.weight.grad.is_coalesced()
            o.step()
    assert_close(ours.weight, ref.weight)
    assert_close(
        opt._sparse.state[ours.weight]["exp_avg_sq"],
        ref_opt.state[ref.weight]["exp_avg_sq"],
    )


def test_learning_rate_changes_after_load_state_dict_reach_the_inner_optimizers():
    # a resumed checkpoint loads the optimizer state, then an LR scheduler
    # changes the outer groups: the inner optimizers must follow
    def make(model):
        return SparseDenseAdamW(
            [
                {"params": model["emb"].parameters(), "sparse": True},
                {"params": model["lin"].parameters()},
            ],
            lr=1e-2,
        )

    a = _model()
    opt_a = make(a)
    _train(a, [opt_a], steps=2)
    b = _model()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    opt_b = make(b)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for opt in (opt_a, opt_b):
        opt.param_groups[0]["lr"] = 3e-3
        opt.param_groups[1]["lr"] = 1e-3
    for step in range(2, 4):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            _loss(model, step).backward()
            opt.step()
    assert opt_b._dense.param_groups[0]["lr"] == 1e-3
    assert opt_b._sparse.param_groups[0]["lr"] == 3e-3
    assert_close(b.state_dict(), a.state_dict(), rtol=0, atol=0)


def test_both_row_merges_give_identical_rows_and_sums():
    generator = torch.Generator().manual_seed(0)
    for n_rows, n_entries in ((50, 400), (100_000, 300)):  # dense-ish, sparse
        index = torch.randint(0, n_rows, (n_entries,), generator=generator)  # (n,)
        values = torch.randn(n_entries, 3, generator=generator)  # (n, 3)
        grad = torch.sparse_coo_tensor(
            index[None], values, (n_rows, 3), check_invariants=True
        )
        assert not grad.is_coalesced()
        rows_mask, sums_mask = _merged_rows(grad, "mask")
        rows_sort, sums_sort = _merged_rows(grad, "sort")
        assert torch.equal(rows_mask, rows_sort)
        assert torch.equal(sums_mask, sums_sort)  # bit for bit
        reference = grad.coalesce()
        assert torch.equal(rows_sort, reference.indices()[0])
        assert_close(sums_sort, reference.values())
        rows_auto, sums_auto = _merged_rows(grad)
        assert torch.equal(rows_auto, rows_sort)
        assert torch.equal(sums_auto, sums_sort)
    with pytest.raises(ValueError, match="method"):
        _merged_rows(grad, "hash")


def test_the_merge_is_chosen_by_the_table_size_against_the_entries(monkeypatch):
    chosen = []
    unique = torch.unique

    def spy(*args, **kwargs):
        chosen.append("sort")
        return unique(*args, **kwargs)

    monkeypatch.setattr(torch, "unique", spy)
    index = torch.tensor([3, 1, 3])  # (3,)
    for n_rows in (10, 10_000):
        grad = torch.sparse_coo_tensor(index[None], torch.ones(3, 2), (n_rows, 2))
        _merged_rows(grad)
        chosen.append(n_rows)
    assert chosen == [10, "sort", 10_000]
