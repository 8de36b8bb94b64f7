"""ONNX <-> irc rules for element-wise ops, activations, Constant, Identity and Dropout."""

from __future__ import annotations

import math

import numpy as np

from irc.errors import UnsupportedOpError
from irc.frontend.onnx.rules import (
    ExportContext,
    NodeContext,
    dtype_from_onnx,
    export_rule,
    import_rule,
    simple,
    simple_export,
)
from irc.ir.graph import Node
from irc.ir.ops.self_gated import GELU_TANH_CUBIC, INV_SQRT2, SQRT_2_OVER_PI
from irc.ir.types import DType

for _onnx, _irc in [
    ("Neg", "neg"), ("Abs", "abs"), ("Sqrt", "sqrt"), ("Exp", "exp"), ("Log", "log"), ("Erf", "erf"),
    ("Reciprocal", "reciprocal"), ("Floor", "floor"), ("Ceil", "ceil"), ("Round", "round"), ("Sign", "sign"),
    ("Sin", "sin"), ("Cos", "cos"), ("Tanh", "tanh"), ("Sigmoid", "sigmoid"), ("Softplus", "softplus"),
    ("Softsign", "softsign"), ("Relu", "relu"), ("HardSwish", "hard_swish"), ("Not", "not"),
    ("Identity", "identity"), ("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
    ("PRelu", "prelu"), ("Equal", "equal"), ("Less", "less"), ("LessOrEqual", "less_equal"),
    ("Greater", "greater"), ("GreaterOrEqual", "greater_equal"), ("And", "and"), ("Or", "or"),
    ("Xor", "xor"), ("Where", "where"),
]:
    simple(_onnx, _irc)
simple("LeakyRelu", "leaky_relu", {"alpha": "alpha"})
simple("Elu", "elu", {"alpha": "alpha"})
simple("Selu", "selu", {"alpha": "alpha", "gamma": "gamma"})
simple("HardSigmoid", "hard_sigmoid", {"alpha": "alpha", "beta": "beta"})


@import_rule("Pow", op="pow")
def _pow(ctx: NodeContext):
    base, exp = ctx.input(0), ctx.input(1)
    if exp.dtype is not base.dtype:
        exp = ctx.op("cast", exp, to=base.dtype)
    return ctx.op("pow", base, exp)


@export_rule("pow")
def _pow_out(ctx: ExportContext, n: Node):
    ctx.emit("Pow", n.inputs, n.outputs)


def _variadic(irc_op: str):
    def rule(ctx: NodeContext):
        xs = ctx.inputs()
        acc = xs[0]
        for x in xs[1:]:
            acc = ctx.op(irc_op, acc, x)
        if len(xs) == 1:
            acc = ctx.op("identity", acc)
        return acc

    return rule


import_rule("Sum", op="add")(_variadic("add"))
import_rule("Max", op="max")(_variadic("max"))
import_rule("Min", op="min")(_variadic("min"))


@import_rule("Mean")
def _mean(ctx: NodeContext):
    xs = ctx.inputs()
    total = _variadic("add")(ctx)
    return ctx.op("div", total, ctx.constant(np.array(len(xs), xs[0].dtype.numpy)))


@export_rule("max", "min")
def _minmax_out(ctx: ExportContext, n: Node):
    ctx.emit("Max" if n.op == "max" else "Min", n.inputs, n.outputs)


@import_rule("Clip", op="clip")
def _clip(ctx: NodeContext):
    x, kw = ctx.input(0), {}
    bounds = [(i, key) for i, key in ((1, "min"), (2, "max")) if ctx.has_input(i)]
    if all(ctx.const(i) is not None for i, _ in bounds):
        for i, key in bounds:
            kw[key] = ctx.const(i).reshape(()).item()
        return ctx.op("clip", x, **kw)
    # Bounds computed at run time: clip(x, lo, hi) = min(max(x, lo), hi).
    for i, key in bounds:
        x = ctx.op("max" if key == "min" else "min", x, ctx.input(i))
    return x


@export_rule("clip")
def _clip_out(ctx: ExportContext, n: Node):
    dt = n.inputs[0].dtype.numpy
    lo = ctx.const(np.array(n.attrs["min"], dt), "clip_min") if math.isfinite(n.attrs["min"]) else ""
    hi = ctx.const(np.array(n.attrs["max"], dt), "clip_max") if math.isfinite(n.attrs["max"]) else ""
    ctx.emit("Clip", [n.inputs[0], lo, hi], n.outputs)


@import_rule("Cast", op="cast")
def _cast(ctx: NodeContext):
    to = dtype_from_onnx(ctx.attr("to"), " (Cast target)")
    if ctx.attr("saturate", 1) != 1 and to not in (DType.f32, DType.f64):
        raise UnsupportedOpError("saturate=0 casts to 8-bit float types are not supported")
    return ctx.op("cast", ctx.input(0), to=to)


simple_export("cast", "Cast", {"to": "to"})


@import_rule("Gelu", op="gelu")
def _gelu(ctx: NodeContext):
    return ctx.op("gelu_tanh" if ctx.attr("approximate", "none") == "tanh" else "gelu", ctx.input(0))


@export_rule("gelu", "gelu_tanh")
def _gelu_out(ctx: ExportContext, n: Node):
    """The expansion every opset runs: 0.5 x (1 + erf(x / sqrt 2)), or the tanh form."""
    x, dt = n.inputs[0], n.inputs[0].dtype.numpy

    def op(op_type: str, *ins, hint: str = "gelu") -> str:
        return ctx.emit(op_type, list(ins), [ctx.tmp(hint)])[0]

    def c(v: float) -> str:
        return ctx.const(np.array(v, dt), "gelu_c")

    if n.op == "gelu":
        t = op("Erf", op("Mul", x, c(INV_SQRT2)))
    else:
        cube = op("Mul", op("Mul", x, x), x)
        t = op("Tanh", op("Mul", op("Add", x, op("Mul", cube, c(GELU_TANH_CUBIC))), c(SQRT_2_OVER_PI)))
    ctx.emit("Mul", [op("Mul", x, c(0.5)), op("Add", t, c(1.0))], n.outputs)


@export_rule("silu")
def _silu_out(ctx: ExportContext, n: Node):
    ctx.emit("Mul", [n.inputs[0], ctx.emit("Sigmoid", [n.inputs[0]], [ctx.tmp("silu_gate")])[0]], n.outputs)


@import_rule("Constant")
def _constant(ctx: NodeContext):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if ctx.has_attr(key):
            v = ctx.attr(key)
            if key in ("value_float", "value_floats"):
                v = np.asarray(v, np.float32)
            elif key in ("value_int", "value_ints"):
                v = np.asarray(v, np.int64)
            return ctx.constant(np.asarray(v))
    raise UnsupportedOpError("only tensor, float(s) and int(s) constants are supported")


@import_rule("Dropout", op="identity")
def _dropout(ctx: NodeContext):
    if ctx.has_input(2):
        mode = ctx.const(2)
        if mode is None or bool(mode.reshape(())):
            raise UnsupportedOpError("Dropout in training mode is not supported at import; irc.nn has a trainable Dropout")
    # Inference: y = x and the mask is all true.
    x = ctx.input(0)
    return x, ctx.constant(np.ones(x.shape, np.bool_))

