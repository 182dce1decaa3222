"""The ID-set loaders of benchmarks/quality.py, on tiny files written here."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
quality = pytest.importorskip("quality")


def _write(path: Path, text: str, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding=encoding) as f:
        f.write(text)


@pytest.fixture
def mind_dir(tmp_path):
    lines = []
    for i in range(40):
        user = f"U{i % 7}"
        history = "" if i % 5 == 0 else "N1 N2"
        cands = " ".join(f"N{(i + k) % 9}-{int(k == 0)}" for k in range(3))
        lines.append(f"{i}\t{user}\t11/1{i % 5}/2019 {i % 12 + 1}:05:00 PM\t")
        lines[-1] += f"{history}\t{cands}"
    _write(tmp_path / "mind_small_subset" / "behaviors.tsv.gz", "\n".join(lines))
    return tmp_path


def test_mind_one_row_per_candidate_with_its_features(mind_dir):
    X, y, groups = quality.load_mind(mind_dir)
    assert len(X) == len(y) == len(groups) == 40 * 3
    assert y.sum() == 40  # the first candidate of each impression is clicked
    first = X.iloc[:3]
    assert list(first["news_id"]) == ["N0", "N1", "N2"]
    assert list(first["impression_size"]) == [3, 3, 3]
    assert list(first["history_length"]) == [0, 0, 0]  # missing history
    second = X.iloc[3:6]  # history "N1 N2", candidates N1, N2, N3
    assert list(second["in_history"]) == [1, 1, 0]
    assert (
        first["hour"].iloc[0] == "13" and first["weekday"].iloc[0] == "6"
    )  # 10 Nov 2019, a Sunday


def test_mind_split_keeps_each_impression_on_one_side(mind_dir):
    quality._load.cache_clear()
    _, _, groups = quality._load("mind", mind_dir)
    for seed in range(3):
        X_tr, X_te, y_tr, y_te = quality.split("mind", mind_dir, seed)
        assert not set(groups[X_tr.index]) & set(groups[X_te.index])
        assert len(X_tr) + len(X_te) == len(groups)
        assert len(X_te) % 3 == 0  # whole impressions of three candidates
    quality._load.cache_clear()


def test_movielens_label_is_rating_at_least_4_joined_with_users_and_movies(tmp_path):
    folder = tmp_path / "movielens_1m_partial"
    ratings = "1::10::5::978300760\n1::11::3::978300761\n2::10::4::978300762\n"
    _write(folder / "ratings_partial.dat.gz", ratings)
    _write(folder / "users.dat.gz", "1::F::1::10::48067\n2::M::56::16::70072\n")
    _write(
        folder / "movies.dat.gz",
        "10::Caf\u00e9 (1995)::Comedy|Drama\n11::B (1996)::Action\n",
        encoding="latin-1",
    )
    X, y = quality.load_movielens(tmp_path)
    np.testing.assert_array_equal(y, [1, 0, 1])
    assert "rating" not in X.columns
    assert list(X["genres"]) == ["Comedy|Drama", "Action", "Comedy|Drama"]
    assert list(X["gender"]) == ["F", "F", "M"]
    assert list(X["age"]) == ["1", "1", "56"]  # buckets stay categorical
    assert X["timestamp"].dtype == float
