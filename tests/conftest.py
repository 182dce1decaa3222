import numpy as np
import pandas as pd
import pytest

FAST = dict(
    embedding_dim=4,
    hidden_layer_sizes=(16,),
    batch_size=64,
    max_epochs=8,
    learning_rate=1e-2,
    random_state=0,
)


def make_mixed(n=600, seed=0):
    """A DataFrame with text, category, bool and numeric columns and a signal."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "grey"], size=n)
    size = rng.choice(["S", "M", "L"], size=n)
    flag = rng.random(n) < 0.5
    amount = rng.normal(size=n)
    noise = rng.normal(size=n)
    logit = 1.5 * (color == "red") - 1.0 * (size == "S") + 1.2 * amount + 0.8 * flag
    y = (logit + rng.logistic(size=n) * 0.5 > 0.7).astype(int)
    X = pd.DataFrame(
        {
            "color": pd.Series(color, dtype="str"),
            "size": pd.Categorical(size),
            "flag": flag,
            "amount": amount,
            "noise": noise,
        }
    )
    return X, y


@pytest.fixture
def mixed():
    return make_mixed()


def make_ids(n=1600, seed=0, n_solo=0):
    """A str user ID (its rate carries the signal, some missing), an int item
    ID mostly fixed by the user (their pair refines both) and a number:
    target_stats="all" picks both IDs and the pair. The first ``n_solo``
    users are rare, one row each. Returns ``X`` and a noisy score."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, 70, n)
    item = (user * 7 + rng.integers(0, 3, n)) % 60
    rate = rng.normal(scale=1.5, size=70)
    x = rng.normal(size=n)
    logit = rate[user] + 0.3 * (item % 2) + 0.5 * x
    users = np.array([f"u{u}" for u in user], dtype=object)
    users[rng.random(n) < 0.03] = None
    users[:n_solo] = [f"solo{i}" for i in range(n_solo)]
    X = pd.DataFrame({"user": users, "item": item, "x": x})
    return X, logit + rng.logistic(size=n) * 0.5
