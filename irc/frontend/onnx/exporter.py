"""irc Graph -> ONNX ModelProto (opset EXPORT_OPSET), runnable by onnxruntime.

Parameters become initializers, each node goes through its export rule; attributes that ONNX
takes as inputs (shapes, axes, bounds) become small initializers.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import helper, numpy_helper

import irc
from irc.errors import UnsupportedOpError
from irc.fileio import atomic_write
from irc.frontend.onnx import rules_all  # noqa: F401  (fills the rule tables)
from irc.frontend.onnx.rules import EXPORT_RULES, ExportContext, dtype_to_onnx
from irc.ir.graph import Graph, Value

EXPORT_OPSET = 17


class _Exporter:
    def __init__(self, g: Graph):
        self.g = g
        self.names = {v.name for v in g.values()}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._n += 1
            name = f"{hint}__{self._n}"
            if name not in self.names:
                self.names.add(name)
                return name


def _value_info(v: Value) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(v.name, dtype_to_onnx(v.dtype), list(v.shape))


def export_onnx(g: Graph, *, opset: int = EXPORT_OPSET) -> onnx.ModelProto:
    """An ONNX model computing what ``g`` computes."""
    missing = sorted({n.op for n in g.nodes if n.op not in EXPORT_RULES})
    if missing:
        raise UnsupportedOpError(f"no ONNX export for op(s): {', '.join(missing)}")
    ex = _Exporter(g)
    ctx = ExportContext(ex)
    for v, data in g.params.items():
        ex.initializers.append(numpy_helper.from_array(data, v.name))
    for n in g.nodes:
        EXPORT_RULES[n.op](ctx, n)
    # Rules may re-express a parameter (quantized layers keep their multipliers implicit in QDQ form).
    read = {i for node in ex.nodes for i in node.input} | {v.name for v in g.outputs}
    graph = helper.make_graph(
        ex.nodes,
        g.name,
        [_value_info(v) for v in g.inputs],
        [_value_info(v) for v in g.outputs],
        initializer=[t for t in ex.initializers if t.name in read],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="irc",
                              producer_version=irc.__version__)
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def save_onnx(g: Graph, path: str | os.PathLike, *, opset: int = EXPORT_OPSET) -> Path:
    """Write ``g`` as an ONNX file, atomically."""
    return atomic_write(path, export_onnx(g, opset=opset).SerializeToString())
