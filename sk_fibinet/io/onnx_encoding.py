"""The encoding part of the ONNX graph, and the inputs a client sends it.

:func:`_encode_column` adds the nodes that turn one input column into its
field's int64 codes, exactly as :meth:`FieldEncoder.transform` does;
:func:`onnx_inputs` turns a DataFrame into those inputs (categorical values as
their text, the empty string for missing; numbers as float64, NaN for missing).
Only numpy and pandas here: the nodes are built through the ``onnx`` module the
caller passes in (imported lazily by :mod:`sk_fibinet.io.onnx`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ..preprocessing.binning import _numeric_values
from ..preprocessing.categories import (
    MISSING_CODE,
    N_RESERVED,
    OTHER_CODE,
    _as_indexable,
)
from ..preprocessing.hashing import HASH_SEED, _canonical_text

#: The text a client passes for a missing categorical value. onnxruntime turns
#: None and NaN inside a string array into "None" and "nan", which are ordinary
#: categories, so the graph needs a value of its own for "missing".
MISSING_TEXT = ""
_PREFIX = "sk_fibinet/"  # internal names: cannot collide with column names


# ------------------------------------------------------------------ the inputs
def n_input_columns(estimator) -> int:
    """How many of the encoder's fields are input columns: the target
    statistics' fields (``"user:te"``) come after them and are no inputs."""
    statistics = getattr(estimator, "target_stats_", None)
    n_fields = len(estimator.encoder_.column_names_)
    return n_fields - (0 if statistics is None else len(statistics.feature_names_))


def _text_codes(col) -> tuple[np.ndarray, np.ndarray]:
    """``(n,)`` indices into the distinct values (-1: missing) and their text."""
    col = _as_indexable(col)
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.CategoricalDtype):
        index, uniques = col.cat.codes.to_numpy(), col.cat.categories.to_numpy()
    else:
        index, uniques = pd.factorize(col, use_na_sentinel=True)
    return np.asarray(index, dtype=np.int64), _canonical_text(uniques)


def onnx_inputs(estimator, X) -> dict:
    """The inputs of :func:`to_onnx`'s graph for the rows of ``X``.

    What a client in another language does by hand, written once: a
    categorical value becomes its text (integral numbers without a fraction,
    ``5.0`` as ``"5"``; booleans as ``"True"`` / ``"False"``), a missing one the
    empty string; a numeric column becomes float64 with NaN for missing.

    Parameters
    ----------
    estimator : FiBiNETClassifier or FiBiNETRegressor
        The fitted estimator the graph was exported from.
    X : DataFrame or array-like of shape (n_samples, n_features)
        Columns as in ``fit`` (matched by name for a DataFrame).

    Returns
    -------
    feed : dict of str to ndarray of shape (n_samples, 1)
        One entry per column, for ``InferenceSession.run(None, feed)``: object
        arrays of str for categorical columns, float64 for numeric ones.
    """
    check_is_fitted(estimator)
    encoder = estimator.encoder_
    n_inputs = n_input_columns(estimator)
    names = encoder.column_names_[:n_inputs]  # not the target statistics
    if isinstance(X, pd.DataFrame):
        missing = [n for n in names if n not in {str(c) for c in X.columns}]
        if missing:
            raise ValueError(f"X lacks the columns {missing} seen in fit.")
        by_name = {str(c): X[c] for c in X.columns}
        cols = [by_name[n] for n in names]
    else:
        X = np.asarray(X, dtype=object if encoder.categorical_mask_.any() else None)
        if X.ndim != 2 or X.shape[1] != len(names):
            raise ValueError(
                f"X must have shape (n_samples, {len(names)}), got {X.shape}."
            )
        cols = [X[:, j] for j in range(X.shape[1])]
    feed = {}
    mask = encoder.categorical_mask_[:n_inputs]
    for name, col, is_cat in zip(names, cols, mask, strict=True):
        if is_cat:
            index, texts = _text_codes(col)
            out = np.full(index.shape, MISSING_TEXT, dtype=object)  # (n,)
            out[index >= 0] = texts[index[index >= 0]]
            feed[name] = out.reshape(-1, 1)  # (n, 1)
        else:
            feed[name] = _numeric_values(col, name).reshape(-1, 1)  # (n, 1)
    return feed


# ------------------------------------------------------------- the encoding
class _Graph:
    """Nodes and initializers under construction, with fresh internal names."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self._n = onnx, [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{_PREFIX}{hint}_{self._n}"

    def const(self, value, hint="const") -> str:
        name = self.name(hint)
        array = np.asarray(value)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, hint=None, domain="", **attrs) -> str:
        out = self.name(hint or op.lower())
        self.nodes.append(
            self.onnx.helper.make_node(
                op, inputs, [out], name=out, domain=domain, **attrs
            )
        )
        return out


def _vocabulary_texts(vocab, name) -> list[str]:
    """The text form of every category, checked to be distinct and non-empty."""
    texts = _canonical_text(vocab.to_numpy()).tolist() if len(vocab) else []
    if MISSING_TEXT in texts:
        raise ValueError(
            f"Column {name!r} has the empty string as a category, but the exported "
            "graph reads the empty string as a missing value; refit with empty "
            "strings replaced by None (or another text) to export it."
        )
    seen, clashes = set(), set()
    for text in texts:
        (clashes if text in seen else seen).add(text)
    if clashes:
        raise ValueError(
            f"Column {name!r} has categories of different types with the same text "
            f"form {sorted(clashes)[:5]} (such as 5 and '5'); the graph receives "
            "text and cannot tell them apart. Refit with one type per column."
        )
    return texts


def encode_crosses(g: _Graph, codes: list, encoder) -> list:
    """Nodes turning the columns' codes (``(batch, 1)`` int64 each) into the
    derived fields' codes, ``(c_i card_j + c_j) card_k + c_k`` as
    :meth:`FieldEncoder.cross_codes` computes them."""
    cards = encoder.cardinalities_
    out = []
    for i, j, k in encoder._crosses():
        cell = g.node("Mul", [codes[i], g.const(np.array(cards[j], np.int64))])
        cell = g.node("Add", [cell, codes[j]])  # (batch, 1)
        cell = g.node("Mul", [cell, g.const(np.array(cards[k], np.int64))])
        out.append(g.node("Add", [cell, codes[k]], "crossed"))  # (batch, 1)
    return out


def _encode_column(g: _Graph, x: str, encoder, j: int, text: bool = True) -> str:
    """Nodes turning input ``x`` ``(batch, 1)`` into field ``j``'s int64 codes;
    a categorical ``x`` is text, or (not ``text``) double like a numeric one."""
    name = encoder.column_names_[j]
    hashed = (getattr(encoder, "hash_buckets_", None) or [None] * (j + 1))[j]
    if hashed is not None and not text:
        raise ValueError(
            f"Column {name!r} is hashed: its buckets hash the values' text, which "
            "a graph reading numbers cannot rebuild; give it a vocabulary "
            "(hash_buckets=None) to convert the pipeline."
        )
    if encoder.categorical_mask_[j] and not text:
        return _encode_number_category(g, x, encoder.vocabularies_[j], name)
    if hashed is not None:
        hash_function = getattr(encoder, "hash_function_", "siphash")
        if hash_function != "murmurhash3":
            raise ValueError(
                f"Column {name!r} is hashed with {hash_function!r}, which the ONNX "
                "graph cannot compute: the model was fitted before sk_fibinet "
                "hashed with MurmurHash3. Refit it (or load it in this release "
                "and fit again) to export it."
            )
        h = g.node(
            "MurmurHash3",
            [x],
            "hash",
            domain="com.microsoft",
            seed=HASH_SEED,
            positive=1,
        )  # (batch, 1) uint32
        h = g.node("Cast", [h], "hash64", to=g.onnx.TensorProto.INT64)
        bucket = g.node("Mod", [h, g.const(np.int64(hashed), "n_buckets")])
        code = g.node("Add", [bucket, g.const(np.int64(N_RESERVED), "reserved")])
        present = g.node(
            "LabelEncoder",
            [x],
            "present",
            domain="ai.onnx.ml",
            keys_strings=[MISSING_TEXT],
            values_int64s=[0],
            default_int64=1,
        )  # (batch, 1): 0 where missing
        return g.node("Mul", [code, present], "codes")  # (batch, 1) int64
    if encoder.categorical_mask_[j]:
        texts = _vocabulary_texts(encoder.vocabularies_[j], name)
        return g.node(
            "LabelEncoder",
            [x],
            "codes",
            domain="ai.onnx.ml",
            keys_strings=texts + [MISSING_TEXT],
            values_int64s=list(range(N_RESERVED, N_RESERVED + len(texts)))
            + [MISSING_CODE],
            default_int64=OTHER_CODE,
        )  # (batch, 1) int64
    edges = np.asarray(encoder.bin_edges_[j], dtype=np.float64)  # (E,)
    if edges.size:
        below = g.node("Less", [g.const(edges, "edges"), x])  # (batch, E) bool
        below = g.node("Cast", [below], "below", to=g.onnx.TensorProto.INT64)
        axes = g.const(np.array([1], dtype=np.int64), "axes")
        n_below = g.node("ReduceSum", [below, axes], "n_below", keepdims=1)
        code = g.node("Add", [n_below, g.const(np.int64(1), "one")])  # (batch, 1)
    else:  # a constant column: one bin
        shape = g.node("Shape", [x])
        code = g.node(
            "ConstantOfShape",
            [shape],
            "bin",
            value=g.onnx.numpy_helper.from_array(np.array([1], dtype=np.int64)),
        )  # (batch, 1)
    nan = g.node("IsNaN", [x])  # (batch, 1) bool
    missing = g.const(np.int64(MISSING_CODE), "missing")
    return g.node("Where", [nan, missing, code], "codes")  # (batch, 1) int64


def _constant_codes(g: _Graph, x: str, code: int) -> str:
    """``code`` for every row of ``x`` ``(batch, 1)``, int64."""
    value = g.onnx.numpy_helper.from_array(np.array([code], dtype=np.int64))
    return g.node("ConstantOfShape", [g.node("Shape", [x])], "code", value=value)


def _encode_number_category(g: _Graph, x: str, vocab, name) -> str:
    """Codes of a categorical column given as double ``x`` ``(batch, 1)``: the
    position of the equal category (numbers only), "other" if none, 0 for NaN."""
    try:
        values = np.asarray(vocab.to_numpy(), dtype=np.float64)  # (V,)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} has categories that are not numbers, but the "
            "converted pipeline hands the estimator a matrix of numbers."
        ) from exc
    other = g.const(np.int64(OTHER_CODE), "other")
    if values.size:
        equal = g.node("Equal", [x, g.const(values, "categories")])  # (batch, V)
        equal = g.node("Cast", [equal], "equal", to=g.onnx.TensorProto.FLOAT)
        index = g.node("ArgMax", [equal], "index", axis=1, keepdims=1)  # (batch, 1)
        axes = g.const(np.array([1], dtype=np.int64), "axes")
        found = g.node("ReduceMax", [equal, axes], "found", keepdims=1)
        found = g.node("Cast", [found], "known", to=g.onnx.TensorProto.BOOL)
        known = g.node("Add", [index, g.const(np.int64(N_RESERVED), "reserved")])
        code = g.node("Where", [found, known, other], "code")  # (batch, 1)
    else:
        code = _constant_codes(g, x, OTHER_CODE)  # (batch, 1)
    nan = g.node("IsNaN", [x])  # (batch, 1) bool
    missing = g.const(np.int64(MISSING_CODE), "missing")
    return g.node("Where", [nan, missing, code], "codes")  # (batch, 1) int64


# ------------------------------------------------------- target statistics
def _encode_statistics(g: _Graph, statistics, text_inputs) -> dict:
    """Nodes computing every target statistic from the raw text inputs.

    What :meth:`TargetStatistics.transform` does, as look-ups: each source
    column's text to its code in the statistics' own vocabulary (0 missing,
    then first appearance, -1 unseen), a pair's two codes packed into one
    int64 key to the pair's code, then a ``Gather`` from a constant table of
    every code's full-data statistic whose last row is the prior (what an
    unseen value gets; ``Gather`` reads index -1 as the last row).

    Returns ``{feature name: (batch, 1) double}`` for
    ``statistics.feature_names_``.
    """
    lookup = statistics.lookup_tables()
    codes = {}
    for column, index in lookup["vocabularies"].items():
        if column not in text_inputs:
            raise ValueError(
                f"Column {column!r} is a target-statistics source but not a "
                "categorical input of the graph."
            )
        texts = _vocabulary_texts(index, column)
        codes[column] = g.node(
            "LabelEncoder",
            [column],
            "te_code",
            domain="ai.onnx.ml",
            keys_strings=texts + [MISSING_TEXT],
            values_int64s=list(range(1, len(texts) + 1)) + [0],
            default_int64=-1,
        )  # (batch, 1) int64, -1 unseen
    zero = g.const(np.int64(0), "zero")
    unseen = g.const(np.int64(-1), "unseen")
    values = []
    for source, table in lookup["tables"].items():
        if len(source) == 1:
            code = codes[source[0]]  # (batch, 1)
        else:
            a, b = codes[source[0]], codes[source[1]]  # (batch, 1) each
            key = g.node(
                "Add", [g.node("Mul", [a, g.const(np.int64(2**32), "shift")]), b]
            )  # (batch, 1): (a << 32) | b for codes >= 0
            keys = lookup["pair_keys"][source]  # (P,)
            if len(keys):
                row = g.node(
                    "LabelEncoder",
                    [key],
                    "te_pair_code",
                    domain="ai.onnx.ml",
                    keys_int64s=[int(v) for v in keys],
                    values_int64s=list(range(1, len(keys) + 1)),
                    default_int64=-1,
                )  # (batch, 1) int64
            else:
                row = _constant_codes(g, key, -1)  # (batch, 1)
            either = g.node(
                "Or", [g.node("Less", [a, zero]), g.node("Less", [b, zero])]
            )  # (batch, 1) bool: a column value unseen
            code = g.node("Where", [either, unseen, row], "te_pair")  # (batch, 1)
        for j in range(table.shape[1]):
            column = np.ascontiguousarray(table[:, j], dtype=np.float64)  # (V + 1,)
            values.append(
                g.node("Gather", [g.const(column, "te_table"), code], "te", axis=0)
            )  # (batch, 1) double
    return dict(zip(statistics.feature_names_, values, strict=True))
