"""ONNX <-> irc rules for CumSum, Trilu, OneHot, TopK and NonZero.

Each of these takes an input that fixes the output's shape or layout (CumSum's axis, Trilu's k,
OneHot's depth, TopK's k); irc shapes are static, so it must be a constant at import and
becomes an attribute. NonZero's output shape is the count of non-zero elements, known only from
the data: a NonZero of a constant folds at import; any other is refused, naming the node.
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.frontend.onnx.rules import ExportContext, NodeContext, export_rule, import_rule
from irc.ir.graph import Node


def _scalar(ctx: NodeContext, i: int, what: str) -> int:
    c = ctx.need_const(i, what)
    if c.size != 1:
        raise UnsupportedOpError(f"input '{what}' must hold one value, got shape {list(c.shape)}")
    return int(c.reshape(()))


@import_rule("CumSum", op="cumsum")
def _cumsum(ctx: NodeContext):
    return ctx.op("cumsum", ctx.input(0), axis=_scalar(ctx, 1, "axis"), exclusive=ctx.attr("exclusive", 0),
                  reverse=ctx.attr("reverse", 0))


@export_rule("cumsum")
def _cumsum_out(ctx: ExportContext, n: Node):
    axis = ctx.const(np.array(n.attrs["axis"], np.int64), "axis")
    ctx.emit("CumSum", [n.inputs[0], axis], n.outputs, exclusive=n.attrs["exclusive"], reverse=n.attrs["reverse"])


@import_rule("Trilu", op="trilu")
def _trilu(ctx: NodeContext):
    k = _scalar(ctx, 1, "k") if ctx.has_input(1) else 0
    return ctx.op("trilu", ctx.input(0), upper=ctx.attr("upper", 1), k=k)


@export_rule("trilu")
def _trilu_out(ctx: ExportContext, n: Node):
    ctx.emit("Trilu", [n.inputs[0], ctx.const(np.array(n.attrs["k"], np.int64), "k")], n.outputs,
             upper=n.attrs["upper"])


@import_rule("OneHot", op="one_hot")
def _one_hot(ctx: NodeContext):
    depth = ctx.need_const(1, "depth")
    if depth.size != 1:
        raise UnsupportedOpError(f"input 'depth' must hold one value, got shape {list(depth.shape)}")
    return ctx.op("one_hot", ctx.input(0), ctx.input(2), depth=int(depth.reshape(())), axis=ctx.attr("axis", -1))


@export_rule("one_hot")
def _one_hot_out(ctx: ExportContext, n: Node):
    depth = ctx.const(np.array([n.attrs["depth"]], np.int64), "depth")
    ctx.emit("OneHot", [n.inputs[0], depth, n.inputs[1]], n.outputs, axis=n.attrs["axis"])


@import_rule("TopK", op="topk")
def _topk(ctx: NodeContext):
    k = ctx.attr("k") if ctx.opset < 10 else _scalar(ctx, 1, "K")
    return ctx.ops("topk", [ctx.input(0)], {"k": k, "axis": ctx.attr("axis", -1), "largest": ctx.attr("largest", 1),
                                            "sorted": ctx.attr("sorted", 1)})


@export_rule("topk")
def _topk_out(ctx: ExportContext, n: Node):
    a = n.attrs
    k = ctx.const(np.array([a["k"]], np.int64), "k")
    ctx.emit("TopK", [n.inputs[0], k], n.outputs, axis=a["axis"], largest=a["largest"], sorted=a["sorted"])


@import_rule("NonZero")
def _nonzero(ctx: NodeContext):
    x = ctx.const(0)
    if x is None:
        raise UnsupportedOpError("NonZero's output shape is the number of non-zero elements of its input, known only "
                                 "at run time; irc shapes are static, so only a NonZero of a constant is supported")
    x = np.atleast_1d(x)  # (a scalar as one element, as numpy counted it before refusing 0-d nonzero)
    return ctx.constant(np.array(np.nonzero(x), np.int64).reshape(x.ndim, -1))
