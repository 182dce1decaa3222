"""Write the committed model files that tests/test_fixtures.py loads.

Run once, from the repository root, with the release whose files they stand
for (``python tests/data/make_fixtures.py``); never rerun to make a failing
test pass: the point of the files is that a later version still reads them
and predicts what this one did.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor, save_model

HERE = Path(__file__).resolve().parent
PARAMS = dict(
    embedding_dim=4,
    hidden_layer_sizes=(8,),
    max_epochs=2,
    batch_size=64,
    random_state=0,
    hash_buckets={"shop": 16},
)


def frame(n=400, seed=0):
    """A str, a category, a hashed str, an int and a float column (with gaps)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "color": pd.Series(rng.choice(["red", "green", "blue"], n), dtype="str"),
            "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
            "shop": pd.Series([f"s{i}" for i in rng.integers(0, 40, n)], dtype="str"),
            "count": rng.integers(0, 9, n),
            "amount": rng.normal(size=n),
        }
    )
    X.loc[::17, "amount"] = np.nan
    X.loc[::23, "color"] = None
    logit = (X["color"] == "red") * 1.0 + X["amount"].fillna(0) - 0.2 * X["count"]
    return X, logit.to_numpy()


def main():
    X, logit = frame()
    rng = np.random.default_rng(1)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = FiBiNETClassifier(**PARAMS).fit(X, y)
    reg = FiBiNETRegressor(**PARAMS).fit(X, 3 * logit + rng.normal(size=len(X)))
    rows, _ = frame(n=60, seed=2)  # with unseen shops
    save_model(clf, HERE / "classifier_v4.pt")
    save_model(reg, HERE / "regressor_v4.pt")
    np.savez(
        HERE / "expected_v4.npz",
        proba=clf.predict_proba(rows),
        prediction=reg.predict(rows),
    )


if __name__ == "__main__":
    main()
