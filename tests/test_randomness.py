"""Every fit draws its randomness from its own generators, never torch's global one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import FAST, make_mixed
from numpy.testing import assert_array_equal

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor

PARAMS = dict(FAST, max_epochs=2, dropout=0.3)


def _proba(seed, X, y):
    return (
        FiBiNETClassifier(**PARAMS | {"random_state": seed}).fit(X, y).predict_proba(X)
    )


def test_seeded_fits_in_threads_equal_the_same_fits_run_one_after_the_other():
    X, y = make_mixed(400, seed=0)
    sequential = [_proba(seed, X, y) for seed in (0, 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = list(pool.map(lambda seed: _proba(seed, X, y), (0, 1)))
    for a, b in zip(threaded, sequential, strict=True):
        assert_array_equal(a, b)
    assert not (sequential[0] == sequential[1]).all()


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_a_fit_neither_moves_nor_follows_the_global_generator(how):
    X, y = make_mixed(400, seed=0)

    def train():
        model = FiBiNETClassifier(**PARAMS)
        if how == "fit":
            return model.fit(X, y).predict_proba(X)
        for _ in range(2):
            model.partial_fit(X, y, classes=[0, 1])
        return model.predict_proba(X)

    expected = train()
    torch.manual_seed(123)
    drawn, done = [], threading.Event()

    def draw():  # someone else drawing from the global generator meanwhile
        while not done.is_set():
            drawn.append(torch.rand(1))

    other = threading.Thread(target=draw)
    other.start()
    try:
        proba = train()
    finally:
        done.set()
        other.join()
    torch.manual_seed(123)
    alone = [torch.rand(1) for _ in drawn]  # what the generator gives alone
    assert len(drawn) > 10
    assert torch.equal(torch.cat(drawn), torch.cat(alone))
    assert_array_equal(proba, expected)


def test_a_fit_leaves_the_global_generator_where_it_was():
    X, y = make_mixed(300, seed=0)
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    FiBiNETRegressor(**PARAMS).fit(X, y.astype(float))
    assert torch.equal(torch.random.get_rng_state(), state)
