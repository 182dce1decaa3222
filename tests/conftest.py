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
