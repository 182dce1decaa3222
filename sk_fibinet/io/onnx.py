"""Export a fitted estimator to one ONNX graph, from raw columns to predictions.

The graph has three parts, built here and joined into one ``onnx.ModelProto``:

* the encoding, one small sub-graph per input column, reproducing
  :meth:`FieldEncoder.transform` code for code: an ``ai.onnx.ml.LabelEncoder``
  per vocabulary (unknown and rare values to the "other" row, the empty string
  to the missing row), ``com.microsoft.MurmurHash3`` for hashed columns, and
  ``Less`` / ``ReduceSum`` against the bin edges for numeric columns (NaN to
  the missing row); target statistics (``target_stats="auto"``) are looked
  up from the raw columns (``LabelEncoder`` to the statistics' own value and
  pair codes, ``Gather`` from a table of each code's full-data statistic, the
  prior last) and binned like numeric columns; the codes are concatenated
  into ``(batch, F)`` int64;
* the network, ``torch.onnx.export`` (TorchScript) of the evaluation-mode
  module, built in :mod:`sk_fibinet.io.onnx_network` (for FiBiNET an ``If``
  on the batch size between one block of pairs and a ``Loop`` over chunks);
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
import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..estimators.classifier import FiBiNETClassifier
from ..estimators.regressor import FiBiNETRegressor
from .onnx_encoding import (
    _PREFIX,
    MISSING_TEXT,
    _encode_column,
    _encode_statistics,
    _Graph,
    encode_crosses,
    n_input_columns,
)
from .onnx_network import OPSET, network_nodes

#: Opsets of the exported graph besides the network's (``OPSET``): the
#: ai.onnx.ml one of ``LabelEncoder`` and onnxruntime's own domain.
ML_OPSET = 3
MS_OPSET = 1
OUTPUT_NAMES = ("output_label", "output_probability", "variable")
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
    with their unknown, rare and missing rows, hashed buckets, numeric bins,
    target statistics computed from the raw columns),
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
        Inputs: one per column seen in ``fit`` (none for the target
        statistics, which the graph computes), named after it, of shape
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
    model = _model(onnx, estimator, matrix=False)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model


def _model(onnx, estimator, *, matrix: bool):
    """The whole graph: one input per column, or (``matrix``) one
    ``(batch, n_features)`` double input ``X`` of numbers only (skl2onnx)."""
    check_is_fitted(estimator)
    if not (hasattr(estimator, "encoder_") and hasattr(estimator, "net_")):
        raise TypeError(
            "to_onnx expects a fitted FiBiNETClassifier or FiBiNETRegressor, got "
            f"{type(estimator).__name__}."
        )
    statistics = getattr(estimator, "target_stats_", None)
    if matrix and statistics is not None:
        raise ValueError(
            "The skl2onnx converter cannot export target statistics (target_stats="
            f"{estimator.target_stats!r}): they look values up by their text, "
            "which a matrix of numbers does not carry. Export the estimator alone "
            "with to_onnx, or fit it with target_stats=None."
        )
    encoder = estimator.encoder_
    names = list(encoder.column_names_)
    n_inputs = n_input_columns(estimator)
    tp, helper = onnx.TensorProto, onnx.helper
    g = _Graph(onnx)
    codes = []
    if matrix:
        inputs = [helper.make_tensor_value_info("X", tp.DOUBLE, ["batch", len(names)])]
        for j in range(len(names)):
            x = g.node(
                "Slice",
                ["X"] + [g.const(np.array([v]), "slice") for v in (j, j + 1, 1)],
                "column",
            )  # (batch, 1) double
            codes.append(_encode_column(g, x, encoder, j, text=False))
    else:
        clash = sorted(set(names) & set(OUTPUT_NAMES))
        if clash:
            raise ValueError(
                f"Columns {clash} have the names of the graph's outputs; rename "
                "them before fitting to export the model."
            )
        inputs = []
        for j, name in enumerate(names[:n_inputs]):
            is_cat = bool(encoder.categorical_mask_[j])
            inputs.append(
                helper.make_tensor_value_info(
                    name, tp.STRING if is_cat else tp.DOUBLE, ["batch", 1]
                )
            )
            codes.append(_encode_column(g, name, encoder, j))  # (batch, 1) each
        if statistics is not None:  # numeric fields computed from the inputs
            text = {
                n
                for j, n in enumerate(names[:n_inputs])
                if encoder.categorical_mask_[j]
            }
            values = _encode_statistics(g, statistics, text)  # (batch, 1) each
            for j in range(n_inputs, len(names)):
                codes.append(_encode_column(g, values[names[j]], encoder, j))
    codes += encode_crosses(g, codes, encoder)  # the derived fields, last
    x_codes, z = _PREFIX + "codes", _PREFIX + "logits"
    g.nodes.append(
        helper.make_node("Concat", codes, [x_codes], name=x_codes, axis=1)
    )  # (batch, F) int64
    net_nodes, net_initializers, ir_version = network_nodes(
        onnx, estimator.net_.module_, len(encoder.cardinalities_), x_codes, z
    )
    n_encoding = len(g.nodes)
    outputs = _head(g, estimator, z)
    graph = helper.make_graph(
        g.nodes[:n_encoding] + net_nodes + g.nodes[n_encoding:],
        "sk_fibinet",
        inputs,
        outputs,
        initializer=g.initializers + net_initializers,
        doc_string=f"{type(estimator).__name__} exported by sk_fibinet.to_onnx",
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid("ai.onnx.ml", ML_OPSET),
            helper.make_opsetid("com.microsoft", MS_OPSET),
        ],
        ir_version=ir_version,
        producer_name="sk_fibinet",
    )
    helper.set_model_props(model, {"missing_text": MISSING_TEXT})
    onnx.checker.check_model(model)
    return model


# ------------------------------------------------------------------ skl2onnx
def _renamed_graph(onnx, graph, renamed):
    """A copy of the sub-graph ``graph`` with every name passed through
    ``renamed``, nested sub-graphs included (they read the outer graph's
    values by name)."""
    graph = copy.deepcopy(graph)
    for node in graph.node:
        node.input[:] = [renamed(n) for n in node.input]
        node.output[:] = [renamed(n) for n in node.output]
        node.name = renamed(node.name)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                attr.g.CopyFrom(_renamed_graph(onnx, attr.g, renamed))
    for value in [*graph.input, *graph.output, *graph.initializer]:
        value.name = renamed(value.name)
    return graph


def register_skl2onnx() -> None:
    """Register converters of both estimators with skl2onnx.

    Afterwards ``skl2onnx.to_onnx`` converts a ``Pipeline`` that ends in a
    :class:`FiBiNETClassifier` or :class:`FiBiNETRegressor` fitted on the
    matrix of numbers its previous steps make (a ``ColumnTransformer`` of
    scalers and an ``OrdinalEncoder``, say): the estimator's part of the graph
    is :func:`to_onnx`'s, reading that matrix (cast to double) instead of one
    input per column. Columns the estimator treats as categorical match their
    numeric categories exactly (``categorical_features`` as indices); hashed
    columns cannot be converted (their buckets hash the values' text).
    Probabilities and predictions have the type skl2onnx declares (float32
    for a float32 matrix); a classifier's labels must be str or int, and
    ``options={FiBiNETClassifier: {"zipmap": False}}`` gives a plain
    probability tensor.

    Raises
    ------
    ImportError
        If onnx or skl2onnx is not installed.
    """
    _import_onnx()
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
    except ImportError as exc:
        raise ImportError(
            f"register_skl2onnx needs skl2onnx: {_EXTRA} and pip install skl2onnx."
        ) from exc
    update_registered_converter(
        FiBiNETClassifier,
        "SkFiBiNETClassifier",
        calculate_linear_classifier_output_shapes,
        _skl2onnx_convert,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )
    update_registered_converter(
        FiBiNETRegressor,
        "SkFiBiNETRegressor",
        calculate_linear_regressor_output_shapes,
        _skl2onnx_convert,
    )


def _skl2onnx_convert(scope, operator, container) -> None:
    """skl2onnx converter: :func:`to_onnx`'s matrix graph, renamed into place."""
    onnx = _import_onnx()
    tp, helper = onnx.TensorProto, onnx.helper
    estimator = operator.raw_operator
    if hasattr(estimator, "classes_"):
        labels = np.asarray(estimator.classes_)
        if labels.dtype.kind == "b" or (
            labels.dtype.kind == "O" and isinstance(labels.tolist()[0], bool)
        ):
            raise ValueError(
                "skl2onnx declares class labels as int64 or str; the estimator's "
                "are bool: fit it on int (or str) labels to convert the pipeline."
            )
        names = ["output_label", "output_probability"]
    else:
        names = ["variable"]
    model = _model(onnx, estimator, matrix=True)
    prefix = scope.get_unique_variable_name("sk_fibinet") + "/"
    rename = {"X": prefix + "X"}
    container.add_node(
        "Cast",
        [operator.inputs[0].full_name],
        [prefix + "X"],
        to=tp.DOUBLE,
        name=prefix + "cast_X",
    )  # (batch, n_features) double
    declared = dict(zip(names, operator.outputs, strict=True))
    for name, variable in declared.items():
        if name == "output_label":
            rename[name] = variable.full_name
            continue
        rename[name] = prefix + name  # double; cast to what skl2onnx declared
        to = (
            tp.FLOAT if type(variable.type).__name__ == "FloatTensorType" else tp.DOUBLE
        )
        container.add_node(
            "Cast",
            [prefix + name],
            [variable.full_name],
            to=to,
            name=prefix + "cast_" + name,
        )

    def renamed(name: str) -> str:
        return rename.get(name, prefix + name) if name else name

    for initializer in model.graph.initializer:
        tensor = tp()
        tensor.CopyFrom(initializer)
        tensor.name = renamed(initializer.name)
        container.initializers.append(tensor)
    opsets = {o.domain: o.version for o in model.opset_import}
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for key, value in attrs.items():
            if isinstance(value, onnx.GraphProto):  # If / Loop branches
                attrs[key] = _renamed_graph(onnx, value, renamed)
        container.add_node(
            node.op_type,
            [renamed(i) for i in node.input],
            [renamed(o) for o in node.output],
            op_domain=node.domain,
            op_version=opsets[node.domain],
            name=renamed(node.name),
            **attrs,
        )
