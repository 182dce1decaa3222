"""Run the Python code of the README and the documentation pages.

Every ``python`` block of ``README.md`` and ``docs/*.md`` and every
``.. code-block:: python`` of ``docs/*.rst`` runs, page by page and in order,
in one namespace per page, so a snippet that stops working fails the tests.
To keep this fast the snippets run on small data: ``load_adult`` returns the
first rows of each file, and ``FiBiNETClassifier`` and ``FiBiNETRegressor`` train
for 2 epochs unless a snippet says otherwise; joblib runs ``n_jobs`` work in turn
(the parallel path is tested in ``test_estimator.py``). Each page starts with
what its prose assumes exists: ``X, y`` (Adult training rows), ``X_test, y_test``
and a fitted ``clf``.

A block that cannot run here is listed in ``NOT_RUN`` with the reason; a block
is never skipped silently, and an entry that no longer matches a block fails.
"""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import joblib
import matplotlib
import pytest
import torch

import sk_fibinet
import sk_fibinet.datasets
from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN, N_TEST, MAX_EPOCHS = 1_200, 500, 2

# "page:line of the block's first line" -> why it does not run here
NOT_RUN = {
    "docs/big_data.rst:67": "a script for torchrun: needs its process group; "
    "tests/test_distributed.py runs the same fit on 2 processes",
}
if not torch.cuda.is_available():
    NOT_RUN["docs/gpu.rst:21"] = "fits on device='cuda', and this machine has no CUDA"

_MD_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_RST_BLOCK = re.compile(r"^\.\. code-block:: python\n((?:[ \t]*\n|   .*\n)+)", re.M)


def _blocks(path: Path) -> list[tuple[str, str]]:
    """``(page:line, code)`` of every Python block of a page, in order."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(ROOT).as_posix()
    pattern = _RST_BLOCK if path.suffix == ".rst" else _MD_BLOCK
    out = []
    for m in pattern.finditer(text):
        code = textwrap.dedent(m.group(1)).strip("\n")
        first = text[: m.start(1)].count("\n") + 1
        first += len(m.group(1)) - len(m.group(1).lstrip("\n"))  # blank lines
        out.append((f"{name}:{first}", code + "\n"))
    return out


PAGES = [ROOT / "README.md"] + sorted(
    p for p in (ROOT / "docs").iterdir() if p.suffix in (".rst", ".md")
)
BLOCKS = {p.relative_to(ROOT).as_posix(): _blocks(p) for p in PAGES}
PAGES_WITH_CODE = [name for name, blocks in BLOCKS.items() if blocks]


def test_the_docs_have_python_blocks_and_not_run_names_real_ones():
    assert "README.md" in PAGES_WITH_CODE and len(PAGES_WITH_CODE) >= 5
    ids = {block_id for blocks in BLOCKS.values() for block_id, _ in blocks}
    assert set(NOT_RUN) <= ids, f"stale NOT_RUN entries: {set(NOT_RUN) - ids}"


@pytest.fixture(scope="module")
def small_adult():
    """Small Adult frames and one fitted model, shared by the pages."""
    X, y = sk_fibinet.datasets.load_adult(subset="train", return_X_y=True)
    X_test, y_test = sk_fibinet.datasets.load_adult(subset="test", return_X_y=True)
    data = dict(
        X=X[:N_TRAIN], y=y[:N_TRAIN], X_test=X_test[:N_TEST], y_test=y_test[:N_TEST]
    )
    clf = FiBiNETClassifier(max_epochs=MAX_EPOCHS, random_state=0)
    return data, clf.fit(data["X"], data["y"])


@pytest.fixture
def small_world(small_adult, monkeypatch, tmp_path):
    """Small Adult, 2-epoch defaults, a scratch working directory."""
    real_load_adult = sk_fibinet.datasets.load_adult

    def load_adult(*args, **kwargs):
        out = real_load_adult(*args, **kwargs)
        n = N_TEST if kwargs.get("subset") == "test" else N_TRAIN
        if isinstance(out, tuple):
            return tuple(part[:n] for part in out)
        for key in ("data", "target", "frame"):  # a Bunch
            if out.get(key) is not None:
                out[key] = out[key][:n]
        return out

    monkeypatch.setattr(sk_fibinet.datasets, "load_adult", load_adult)
    for cls in (FiBiNETClassifier, FiBiNETRegressor):
        defaults = dict(cls.__init__.__kwdefaults__, max_epochs=MAX_EPOCHS)
        monkeypatch.setattr(cls.__init__, "__kwdefaults__", defaults)
    monkeypatch.chdir(tmp_path)
    data, clf = small_adult
    clf = copy.deepcopy(clf)
    # the GPU chapter loads a model pickled on a GPU: a CPU model marked as one
    clf.net_.device = "cuda"
    joblib.dump(clf, "model_trained_on_gpu.joblib")
    clf.net_.device = "cpu"
    return dict(data, FiBiNETClassifier=FiBiNETClassifier, clf=clf)


@pytest.mark.filterwarnings("ignore::skorch.exceptions.DeviceWarning")
@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_python_blocks_run(page, small_world):
    import matplotlib.pyplot as plt

    namespace = dict(small_world, __name__="__docs__")
    for block_id, code in BLOCKS[page]:
        if block_id in NOT_RUN:
            continue
        try:
            # n_jobs=2 in a snippet: worker processes, each with torch's
            # threads, oversubscribe a 2-core CI machine; run them in turn
            with joblib.parallel_config(backend="sequential"):
                exec(compile(code, block_id, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{block_id} failed:\n{code}") from exc
        finally:
            plt.close("all")
