"""ONNX <-> irc rules for GatherND, ScatterND, ScatterElements and the older Scatter
(irc/ir/ops/scatter.py).

Export writes opset 17 (exporter.EXPORT_OPSET), whose ScatterND and ScatterElements know the
reductions none, add and mul; max and min came in opset 18 and are refused on export.
"""

from __future__ import annotations

from irc.errors import UnsupportedOpError
from irc.frontend.onnx.rules import ExportContext, NodeContext, export_rule, import_rule, simple
from irc.ir.graph import Node

simple("GatherND", "gather_nd", {"batch_dims": "batch_dims"})

#: The first opset whose scatters take each reduction.
_REDUCTION_SINCE = {"none": 1, "add": 16, "mul": 16, "max": 18, "min": 18}


@import_rule("ScatterND", op="scatter_nd")
def _scatter_nd(ctx: NodeContext):
    return ctx.op("scatter_nd", *ctx.inputs(), reduction=ctx.attr("reduction", "none"))


@import_rule("ScatterElements", "Scatter", op="scatter_elements")
def _scatter_elements(ctx: NodeContext):
    return ctx.op("scatter_elements", *ctx.inputs(), axis=ctx.attr("axis", 0), reduction=ctx.attr("reduction", "none"))


def _reduction(n: Node) -> str | None:
    from irc.frontend.onnx.exporter import EXPORT_OPSET  # (the exporter imports the rule tables)

    r = n.attrs["reduction"]
    if _REDUCTION_SINCE[r] > EXPORT_OPSET:
        raise UnsupportedOpError(f"reduction '{r}' needs ONNX opset {_REDUCTION_SINCE[r]}; export writes opset "
                                 f"{EXPORT_OPSET}", node=n.label, op=n.op)
    return None if r == "none" else r


@export_rule("scatter_nd")
def _scatter_nd_out(ctx: ExportContext, n: Node):
    ctx.emit("ScatterND", n.inputs, n.outputs, reduction=_reduction(n))


@export_rule("scatter_elements")
def _scatter_elements_out(ctx: ExportContext, n: Node):
    ctx.emit("ScatterElements", n.inputs, n.outputs, axis=n.attrs["axis"], reduction=_reduction(n))
