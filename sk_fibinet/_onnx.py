"""Export a fitted estimator to one ONNX graph, from raw columns to predictions.

The graph has three parts, built here and joined into one ``onnx.ModelProto``:

* the encoding, one small sub-graph per input column, reproducing
  :meth:`FieldEncoder.transform` code for code: an ``ai.onnx.ml.LabelEncoder``
  per vocabulary (unknown and rare values to the "other" row, the empty string
  to the missing row), ``com.microsoft.MurmurHash3`` for hashed columns, and
  ``Less`` / ``ReduceSum`` against the bin edges for numeric columns (NaN to
  the missing row); the codes are concatenated into ``(batch, F)`` int64;
* the network, ``torch.onnx.export`` (TorchScript) of the evaluation-mode
  module on the CPU, with the plain composition (``fused=False``);
* the output head: the classifier's temperature, sigmoid or softmax in double
  precision, ``ArgMax`` and a ``Gather`` of ``classes_``; the regressor's target
  scaling undone (``exp`` of the Poisson link).

Inputs and outputs follow skl2onnx's conventions: one ``(batch, 1)`` input per
column, named after it (``tensor(string)`` for categorical columns,
``tensor(double)`` for numeric ones); outputs ``output_label`` ``(batch,)`` and
``output_probability`` ``(batch, n_classes)`` for a classifier, ``variable``
``(batch, 1)`` for a regressor.

onnx and onnxruntime are optional (``pip install "sk_fibinet[onnx]"``) and
imported inside the functions.
"""

from __future__ import annotations

import copy
import io
import os
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from ._encoding import (
    HASH_SEED,
    MISSING_CODE,
    N_RESERVED,
    OTHER_CODE,
    _as_indexable,
    _canonical_text,
    _numeric_values,
)

#: The text a client passes for a missing categorical value. onnxruntime turns
#: None and NaN inside a string array into "None" and "nan", which are ordinary
#: categories, so the graph needs a value of its own for "missing".
MISSING_TEXT = ""
#: Opsets of the exported graph: the network's (TorchScript exporter), the
#: ai.onnx.ml one of ``LabelEncoder`` and onnxruntime's own domain.
OPSET = 18
ML_OPSET = 3
MS_OPSET = 1
OUTPUT_NAMES = ("output_label", "output_probability", "variable")
_PREFIX = "sk_fibinet/"  # internal names: cannot collide with column names
_EXTRA = 'pip install "sk_fibinet[onnx]"'


def _import_onnx():
    """``onnx`` itself, or an ImportError naming the extra."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            f"Exporting to ONNX needs the onnx package: {_EXTRA}."
        ) from exc
    return onnx


# ------------------------------------------------------------------ the inputs
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
    names = encoder.column_names_
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
    for name, col, is_cat in zip(names, cols, encoder.categorical_mask_, strict=True):
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


def _encode_column(g: _Graph, x: str, encoder, j: int) -> str:
    """Nodes turning input ``x`` ``(batch, 1)`` into field ``j``'s int64 codes."""
    name = encoder.column_names_[j]
    hashed = (getattr(encoder, "hash_buckets_", None) or [None] * (j + 1))[j]
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


# --------------------------------------------------------------- the network
def _network(onnx, module: torch.nn.Module, n_fields: int, codes: str, logits: str):
    """The evaluation-mode ``module`` as an ONNX graph ``codes -> logits``."""
    module = copy.deepcopy(module).to("cpu").float().eval()
    if hasattr(module, "fused"):
        module.fused = False  # the plain composition: standard operators only
    example = torch.zeros(2, n_fields, dtype=torch.long)  # (2, F): valid codes
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=[codes],
            output_names=[logits],
            dynamic_axes={codes: {0: "batch"}, logits: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


# ----------------------------------------------------------------- the head
def _label_tensor(onnx, classes) -> tuple[np.ndarray, int]:
    """``classes_`` as a constant array and its ONNX element type."""
    values = np.asarray(classes)
    tp = onnx.TensorProto
    if values.dtype.kind == "b":
        return values.astype(bool), tp.BOOL
    if values.dtype.kind in "iu":
        return values.astype(np.int64), tp.INT64
    if values.dtype.kind == "f":
        return values.astype(np.float64), tp.DOUBLE
    items = values.tolist()
    if all(isinstance(v, str) for v in items):
        return np.array(items, dtype=object), tp.STRING
    if all(isinstance(v, (bool, np.bool_)) for v in items):
        return np.array(items, dtype=bool), tp.BOOL
    if all(isinstance(v, (int, np.integer)) for v in items):
        return np.array(items, dtype=np.int64), tp.INT64
    raise ValueError(
        "to_onnx exports class labels that are all str, all int, all float or "
        f"all bool; classes_ holds {sorted({type(v).__name__ for v in items})}."
    )


def _head(g: _Graph, estimator, logits: str) -> list:
    """Output nodes after the network; returns the graph's output value infos."""
    onnx = g.onnx
    tp, helper = onnx.TensorProto, onnx.helper
    z = g.node("Cast", [logits], "logits64", to=tp.DOUBLE)  # (batch, n_outputs)
    if hasattr(estimator, "classes_"):
        temperature = float(getattr(estimator, "temperature_", 1.0))
        z = g.node("Div", [z, g.const(np.float64(temperature), "temperature")])
        if len(estimator.classes_) == 2:
            p1 = g.node("Sigmoid", [z])  # (batch, 1)
            p0 = g.node("Sub", [g.const(np.float64(1.0), "one"), p1])  # (batch, 1)
            proba = g.node("Concat", [p0, p1], "proba", axis=1)  # (batch, 2)
        else:
            proba = g.node("Softmax", [z], "proba", axis=1)  # (batch, K)
        index = g.node("ArgMax", [proba], "index", axis=1, keepdims=0)  # (batch,)
        labels, label_type = _label_tensor(onnx, estimator.classes_)
        g.nodes.append(
            helper.make_node(
                "Gather",
                [g.const(labels, "classes"), index],
                ["output_label"],
                name=_PREFIX + "label",
                axis=0,
            )
        )  # (batch,)
        g.nodes.append(
            helper.make_node(
                "Identity",
                [proba],
                ["output_probability"],
                name=_PREFIX + "probability",
            )
        )  # (batch, K)
        n_classes = len(estimator.classes_)
        return [
            helper.make_tensor_value_info("output_label", label_type, ["batch"]),
            helper.make_tensor_value_info(
                "output_probability", tp.DOUBLE, ["batch", n_classes]
            ),
        ]
    scale = g.const(np.float64(estimator.target_scale_), "target_scale")
    if estimator.loss == "poisson":
        y = g.node("Mul", [g.node("Exp", [z]), scale], "predicted")  # (batch, 1)
    else:
        offset = g.const(np.float64(estimator.target_offset_), "target_offset")
        y = g.node("Add", [g.node("Mul", [z, scale]), offset])  # (batch, 1)
    g.nodes.append(
        helper.make_node("Identity", [y], ["variable"], name=_PREFIX + "variable")
    )
    return [helper.make_tensor_value_info("variable", tp.DOUBLE, ["batch", 1])]


# -------------------------------------------------------------------- export
def to_onnx(estimator, path=None):
    """Export a fitted estimator to one ONNX graph from raw columns to predictions.

    The graph holds the whole scoring path: the field encoding (vocabularies
    with their unknown, rare and missing rows, hashed buckets, numeric bins),
    the network and the output head, in standard ONNX, ``ai.onnx.ml`` and
    onnxruntime's ``com.microsoft`` operators; onnxruntime runs it without
    pandas, scikit-learn, skorch, torch or sk_fibinet.

    Parameters
    ----------
    estimator : FiBiNETClassifier or FiBiNETRegressor
        A fitted estimator (either variant, any ``bilinear_type``, with or
        without the linear part and crossed pairs), or one read back with
        :func:`load_model`.
    path : str or os.PathLike, default=None
        Where to write the model as well (overwritten if it exists).

    Returns
    -------
    model : onnx.ModelProto
        Inputs: one per column seen in ``fit``, named after it, of shape
        ``(batch, 1)``: ``tensor(string)`` for categorical columns (the empty
        string means missing; numbers and booleans as text, see
        :func:`onnx_inputs`), ``tensor(double)`` for numeric ones (NaN means
        missing). Outputs: a classifier's ``output_label`` ``(batch,)`` (from
        ``classes_``) and ``output_probability`` ``(batch, n_classes)``
        (columns in ``classes_`` order, ``temperature_`` applied), equal to
        ``predict`` and ``predict_proba``; a regressor's ``variable``
        ``(batch, 1)``, equal to ``predict``.

    Raises
    ------
    ImportError
        If onnx is not installed (``pip install "sk_fibinet[onnx]"``).
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If a hashed column uses the SipHash of models fitted before
        MurmurHash3 (refit to export), a categorical column has the empty
        string as a category or two categories with the same text (``5`` and
        ``"5"``), or the class labels mix types.

    See Also
    --------
    onnx_inputs : The graph's inputs for the rows of a DataFrame.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> from sk_fibinet import FiBiNETClassifier, to_onnx
    >>> from sk_fibinet.datasets import load_adult
    >>> X, y = load_adult(return_X_y=True)  # doctest: +SKIP
    >>> clf = FiBiNETClassifier(max_epochs=2).fit(X, y)  # doctest: +SKIP
    >>> session = ort.InferenceSession(
    ...     to_onnx(clf).SerializeToString())  # doctest: +SKIP
    """
    onnx = _import_onnx()
    check_is_fitted(estimator)
    if not (hasattr(estimator, "encoder_") and hasattr(estimator, "net_")):
        raise TypeError(
            "to_onnx expects a fitted FiBiNETClassifier or FiBiNETRegressor, got "
            f"{type(estimator).__name__}."
        )
    encoder = estimator.encoder_
    names = list(encoder.column_names_)
    clash = sorted(set(names) & set(OUTPUT_NAMES))
    if clash:
        raise ValueError(
            f"Columns {clash} have the names of the graph's outputs; rename them "
            "before fitting to export the model."
        )
    tp, helper = onnx.TensorProto, onnx.helper
    g = _Graph(onnx)
    inputs, codes = [], []
    for j, name in enumerate(names):
        is_cat = bool(encoder.categorical_mask_[j])
        inputs.append(
            helper.make_tensor_value_info(
                name, tp.STRING if is_cat else tp.DOUBLE, ["batch", 1]
            )
        )
        codes.append(_encode_column(g, name, encoder, j))  # (batch, 1) each
    x_codes, z = _PREFIX + "codes", _PREFIX + "logits"
    g.nodes.append(
        helper.make_node("Concat", codes, [x_codes], name=x_codes, axis=1)
    )  # (batch, F) int64
    net = _network(onnx, estimator.net_.module_, len(names), x_codes, z)
    net = onnx.compose.add_prefix(
        net, _PREFIX + "net/", rename_inputs=False, rename_outputs=False
    )
    n_encoding = len(g.nodes)
    outputs = _head(g, estimator, z)
    graph = helper.make_graph(
        g.nodes[:n_encoding] + list(net.graph.node) + g.nodes[n_encoding:],
        "sk_fibinet",
        inputs,
        outputs,
        initializer=g.initializers + list(net.graph.initializer),
        doc_string=f"{type(estimator).__name__} exported by sk_fibinet.to_onnx",
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid("ai.onnx.ml", ML_OPSET),
            helper.make_opsetid("com.microsoft", MS_OPSET),
        ],
        ir_version=net.ir_version,
        producer_name="sk_fibinet",
    )
    helper.set_model_props(model, {"missing_text": MISSING_TEXT})
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model
