"""The estimators' docstrings are complete once their shared text is filled in."""

import inspect
import re

import pytest

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor
from sk_fibinet.estimators.docstrings import SHARED, fill_doc

ESTIMATORS = [FiBiNETClassifier, FiBiNETRegressor]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_parameter_is_documented_in_full(cls):
    doc = cls.__doc__
    assert "$" not in doc
    section = doc.split("Parameters\n    ----------\n")[1].split("\n\n")[0]
    documented = re.findall(r"^    (\w+) :", section, re.M)
    assert sorted(documented) == sorted(inspect.signature(cls).parameters)
    for name in documented:
        if name in SHARED:
            assert SHARED[name].splitlines()[0] in doc


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_partial_fit_docstring_is_filled(cls):
    assert "$" not in cls.partial_fit.__doc__
    assert SHARED["chunk_X"].splitlines()[0] in cls.partial_fit.__doc__


def test_fill_doc_indents_the_shared_text_and_keeps_the_rest_of_the_line():
    def f():
        """Summary.

        Parameters
        ----------
        sample_weight : array-like
            $chunk_sample_weight (more)
        """

    lines = fill_doc(f).__doc__.splitlines()
    first, *rest = SHARED["chunk_sample_weight"].splitlines()
    assert lines[5] == " " * 12 + first
    assert lines[6] == " " * 12 + rest[0] + " (more)"


def test_fill_doc_refuses_an_unknown_name():
    def f():
        """$no_such_text"""

    with pytest.raises(KeyError, match="no_such_text"):
        fill_doc(f)


def _modules():
    import pkgutil

    import sk_fibinet

    return sorted(
        m.name for m in pkgutil.walk_packages(sk_fibinet.__path__, "sk_fibinet.")
    )


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    """Every ``>>>`` example in the package runs and prints what it shows (the
    regressor's had named a column Adult does not have)."""
    import doctest
    import importlib

    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(f"{name}: {exc}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test, out=lambda text: None)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest example(s) of {name} failed"
