"""The network part of an exported graph: ``(batch, F)`` codes to logits.

The module is exported with ``torch.onnx.export`` (TorchScript), in
evaluation mode on the CPU. FiBiNET is exported twice through
:class:`~sk_fibinet.nn.static.StaticFiBiNET`, and an ``If`` on the batch size
picks one at run time:

* up to :data:`ROWS_PER_CHUNK` rows, every pair in one block: the fewest
  operators, for single requests;
* larger batches go through a ``Loop`` over chunks of at most that many rows
  (the batch padded to equal chunks, the padding dropped after), each chunk
  through the network with the pairs in blocks of
  :data:`~sk_fibinet.nn.static.STATIC_PAIRS_PER_BLOCK`: a block's products
  then stay in the cache between the multiplication that makes them and the
  matmul that reads them, as in the fused kernel ``predict_proba`` runs.

Constants the two networks share (the embedding table, the DNN) are stored
once, in the outer graph, which both branches read. FiBiNet++ is exported as
it is.
"""

from __future__ import annotations

import copy
import hashlib
import io
import warnings

import numpy as np
import torch

from ..nn.fibinet import FiBiNET
from ..nn.static import StaticFiBiNET
from .onnx_encoding import _PREFIX

#: Opset of the network part (TorchScript exporter) and of the whole graph.
OPSET = 18

#: Largest batch scored in one piece; larger ones are cut into equal chunks
#: of at most this many rows (measured in ``docs/serving.rst``).
ROWS_PER_CHUNK = 1024


def _export(onnx, module: torch.nn.Module, n_fields: int, codes: str, logits: str):
    """``torch.onnx.export`` of an evaluation-mode ``module`` as an ONNX
    model ``codes`` ``(batch, F)`` int64 -> ``logits`` ``(batch, n_outputs)``."""
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


def _prefixed(onnx, model, prefix: str):
    """``model`` with every internal name under ``prefix`` (inputs and
    outputs keep theirs)."""
    return onnx.compose.add_prefix(
        model, prefix, rename_inputs=False, rename_outputs=False
    )


def _share_constants(onnx, graphs) -> list:
    """Store initializers that several ``graphs`` hold with equal contents
    once: rename them in every graph to the first one's name and return the
    distinct initializers (each graph's own list is emptied)."""
    kept, by_content = [], {}
    for graph in graphs:
        renamed = {}
        for init in graph.initializer:
            array = onnx.numpy_helper.to_array(init)
            key = (array.dtype.str, array.shape, hashlib.sha1(array.tobytes()).digest())
            if key in by_content:
                renamed[init.name] = by_content[key]
            else:
                by_content[key] = init.name
                kept.append(init)
        for node in graph.node:
            node.input[:] = [renamed.get(name, name) for name in node.input]
        del graph.initializer[:]
    return kept


def network_nodes(
    onnx, module: torch.nn.Module, n_fields: int, codes: str, logits: str
):
    """The network as nodes of the outer graph, ``codes`` -> ``logits``.

    Parameters
    ----------
    onnx : module
        The ``onnx`` package.
    module : torch.nn.Module
        The trained network (copied, not changed).
    n_fields : int
        Number of fields ``F``.
    codes, logits : str
        Names of the ``(batch, F)`` int64 input and the ``(batch, n_outputs)``
        float output in the outer graph.

    Returns
    -------
    nodes : list of NodeProto
    initializers : list of TensorProto
    ir_version : int
    """
    module = copy.deepcopy(module).to("cpu").float().eval()
    if not isinstance(module, FiBiNET) or not module.bilinear_p.n_pairs:
        net = _prefixed(
            onnx, _export(onnx, module, n_fields, codes, logits), _PREFIX + "net/"
        )
        return list(net.graph.node), list(net.graph.initializer), net.ir_version
    helper, tp = onnx.helper, onnx.TensorProto
    n_pairs = module.bilinear_p.n_pairs
    whole_out = _PREFIX + "whole_logits"
    whole = _export(
        onnx, StaticFiBiNET(module, pairs_per_block=n_pairs), n_fields, codes, whole_out
    )
    whole = _prefixed(onnx, whole, _PREFIX + "net/")
    chunk, chunk_out = _PREFIX + "chunk", _PREFIX + "chunk_logits"
    blocked = _export(onnx, StaticFiBiNET(module), n_fields, chunk, chunk_out)
    blocked = _prefixed(onnx, blocked, _PREFIX + "net_blocks/")
    initializers = _share_constants(onnx, [whole.graph, blocked.graph])
    n_outputs = module.dnn[-1].out_features

    def name(hint):
        return f"{_PREFIX}rows/{hint}"

    def const(hint, value):
        initializers.append(onnx.numpy_helper.from_array(np.asarray(value), name(hint)))
        return name(hint)

    def node(op, inputs, hint, **attrs):
        return helper.make_node(op, inputs, [name(hint)], name=name(hint), **attrs)

    def logits_info(value):
        return helper.make_tensor_value_info(value, tp.FLOAT, None)

    one, size = (
        const("one", np.array([1])),
        const("chunk_rows", np.array([ROWS_PER_CHUNK])),
    )
    outer = [
        node("Shape", [codes], "batch", start=0, end=1),  # (1,): the batch size
        node("LessOrEqual", [name("batch"), size], "small"),  # (1,) bool
        node("Squeeze", [name("small")], "is_small"),  # () bool
    ]
    # n chunks of equal size rows, n * rows >= batch; the codes padded to n * rows
    split = [
        node("Sub", [size, one], "size_1"),
        node("Add", [name("batch"), name("size_1")], "batch_up"),
        node("Div", [name("batch_up"), size], "n"),  # (1,) chunks
        node("Sub", [name("n"), one], "n_1"),
        node("Add", [name("batch"), name("n_1")], "batch_up_n"),
        node("Div", [name("batch_up_n"), name("n")], "rows"),  # (1,) rows per chunk
        node("Mul", [name("n"), name("rows")], "padded_rows"),
        node("Sub", [name("padded_rows"), name("batch")], "pad"),  # (1,)
        node(
            "Concat",
            [
                const("zeros2", np.array([0, 0])),
                name("pad"),
                const("zero1", np.array([0])),
            ],
            "pads",
            axis=0,
        ),  # (4,)
        node("Pad", [codes, name("pads")], "padded"),  # (n rows, F), code 0 below
        node(
            "Concat",
            [name("n"), name("rows"), const("minus1", np.array([-1]))],
            "chunk_shape",
            axis=0,
        ),
        node(
            "Reshape", [name("padded"), name("chunk_shape")], "chunks"
        ),  # (n, rows, F)
        node("Squeeze", [name("n")], "trips"),  # ()
    ]
    body = helper.make_graph(
        [
            helper.make_node("Gather", [name("chunks"), name("i")], [chunk], axis=0),
            *blocked.graph.node,  # (rows, F) -> (rows, n_outputs)
            helper.make_node("Identity", [name("cond_in")], [name("cond_out")]),
        ],
        "chunk",
        [
            helper.make_tensor_value_info(name("i"), tp.INT64, []),
            helper.make_tensor_value_info(name("cond_in"), tp.BOOL, []),
        ],
        [
            helper.make_tensor_value_info(name("cond_out"), tp.BOOL, []),
            logits_info(chunk_out),
        ],
    )
    split += [
        helper.make_node(
            "Loop", [name("trips"), ""], [name("stacked")], name=name("loop"), body=body
        ),  # (n, rows, n_outputs)
        node(
            "Reshape",
            [name("stacked"), const("flat", np.array([-1, n_outputs]))],
            "flat_logits",
        ),  # (n rows, n_outputs)
        node(
            "Slice",
            [
                name("flat_logits"),
                const("start", np.array([0])),
                name("batch"),
                const("axis", np.array([0])),
            ],
            "chunked_logits",
        ),  # (batch, n_out)
    ]
    then_branch = helper.make_graph(
        list(whole.graph.node), "whole", [], [logits_info(whole_out)]
    )
    else_branch = helper.make_graph(
        split, "chunked", [], [logits_info(name("chunked_logits"))]
    )
    outer.append(
        helper.make_node(
            "If",
            [name("is_small")],
            [logits],
            name=name("if"),
            then_branch=then_branch,
            else_branch=else_branch,
        )
    )
    return outer, initializers, whole.ir_version
