"""QDQ folding: dequantize -> float op -> quantize patterns become integer layers.

QDQ ONNX models (onnxruntime's quantize_static, irc's own export) compute each quantized layer
as DequantizeLinear on its inputs, the float op, and QuantizeLinear on its output. Matched at
each quantize_linear (scalar scale and zero point), reading back through an optional ReLU/Clip
(folded into the saturation bounds) to a float op whose output nothing else reads:

- conv(DQ(x), DQ(w) or float w, [DQ(bias) or float bias]) -> qconv
- gemm(DQ(a), DQ(w) or float w, [bias]) (trans_a=0) and 2-D matmul(DQ(a), w) -> qgemm
- add(DQ(a), DQ(b)) of one shape -> qadd
- global_average_pool(DQ(x)) -> qglobal_average_pool
- max_pool, global_max_pool and views of DQ(x) with the quantize's own scale and zero point
  -> the op on the integers; quantize(dequantize(x)) with equal parameters -> x.

Weights must be constants, per tensor or per output channel; a weight zero point is subtracted
when the result fits int8 (else the layer is left as it is). A float bias is requantized to
x_scale * w_scale. Multipliers are quant_arith.quantize_multiplier of x_scale * w_scale / y_scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir import quant_arith as qa
from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.activation import activation_of
from irc.ir.types import DType
from irc.passes.quantize import PASS_THROUGH
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite


def _scalar(ctx: RewriteContext, v: Value | None, default=None):
    if v is None:
        return default
    c = ctx.const(v)
    return c.reshape(-1)[0].item() if c is not None and c.size == 1 else None


def _dq_act(ctx: RewriteContext, v: Value):
    """(integer value, scale, zero point) if ``v`` is a per-tensor dequantize of u8/i8."""
    p = ctx.producer(v)
    if p is None or p.op != "dequantize_linear" or p.inputs[0].dtype not in qa.QTYPES:
        return None
    s = _scalar(ctx, p.inputs[1])
    zp = _scalar(ctx, p.inputs[2] if len(p.inputs) > 2 else None, 0)
    if s is None or zp is None:
        return None
    return p.inputs[0], float(np.float32(s)), int(zp)


def _weights(ctx: RewriteContext, v: Value, axis: int, channels: int):
    """(int8 weights, per-channel scales as float64) for a constant weight ``v``: a dequantize of
    constant integers (per tensor or per channel along ``axis``) or float data quantized here."""
    c = ctx.const(v)
    if c is not None:
        if c.dtype != np.float32:
            return None
        wq, ws = qa.quantize_weights(c, axis=axis)
        return wq, ws.astype(np.float64)
    p = ctx.producer(v)
    if p is None or p.op != "dequantize_linear":
        return None
    w, s = ctx.const(p.inputs[0]), ctx.const(p.inputs[1])
    zp = ctx.const(p.inputs[2]) if len(p.inputs) > 2 else None
    if w is None or s is None or (len(p.inputs) > 2 and zp is None) or w.dtype.kind not in "iu" or w.itemsize != 1:
        return None
    if s.size > 1 and p.attrs["axis"] != axis:
        return None
    wq = qa.symmetric_weights(w, zp, axis)
    if wq is None:
        return None
    return wq, np.broadcast_to(s.astype(np.float64).reshape(-1), (channels,)).copy()


def _float_const(ctx: RewriteContext, v: Value) -> np.ndarray | None:
    """The float value of a constant, or of a dequantize of constants (a bias)."""
    c = ctx.const(v)
    if c is not None:
        return c.astype(np.float64) if c.dtype.kind == "f" else None
    p = ctx.producer(v)
    if p is None or p.op != "dequantize_linear" or not all(ctx.is_const(i) for i in p.inputs):
        return None
    q, s = ctx.const(p.inputs[0]), ctx.const(p.inputs[1])
    zp = ctx.const(p.inputs[2]) if len(p.inputs) > 2 else np.zeros((), q.dtype)
    axis = p.attrs["axis"]
    shape = [1] * q.ndim
    if q.ndim and s.size > 1:
        shape[axis] = -1
    return (q.astype(np.float64) - zp.astype(np.float64).reshape(shape if zp.size > 1 else ())) * \
        s.astype(np.float64).reshape(shape if s.size > 1 else ())


def _output(ctx: RewriteContext, n: Node):
    """(float op node, act, act_min, act_max, y_scale, y_zp, y_dtype) read back from quantize ``n``."""
    ys = _scalar(ctx, n.inputs[1])
    yz = _scalar(ctx, n.inputs[2])
    if ys is None or yz is None or ys <= 0:
        return None
    v = n.inputs[0]
    act, amin, amax = "none", -math.inf, math.inf
    p = ctx.producer(v)
    if p is not None and ctx.single_use(v):
        spec = activation_of(p.op, p.attrs)
        if spec is not None and spec[0] in ("relu", "clip"):
            act, amin, amax = spec
            v = p.inputs[0]
            p = ctx.producer(v)
    if p is None:
        return None
    return p, v, act, amin, amax, float(np.float32(ys)), int(yz), n.outputs[0].dtype


def _requant_attrs(dt: DType, ys: float, yz: int, act: str, amin: float, amax: float) -> dict:
    lo, hi = qa.saturation_bounds(dt, ys, yz, act, amin, amax)
    return dict(y_zero_point=yz, y_dtype=dt, y_min=lo, y_max=hi, y_scale=ys)


def _linear(ctx, p: Node, x, w, bias, out, op: str, extra: dict):
    (xq, xs, xz), (wq, ws) = x, w
    _, _, act, amin, amax, ys, yz, dt = out
    b32 = qa.quantize_bias(bias if bias is not None else np.zeros(len(ws)), xs, ws)
    m0, shift = qa.quantize_multipliers(np.float64(xs) * ws / np.float64(ys))
    name = "x" if op == "qconv" else "a"
    base = p.outputs[0].name
    return ctx.make(op, [xq, ctx.param(wq, base + "_wq"), ctx.param(b32, base + "_bias"), ctx.param(m0, base + "_m0"),
                         ctx.param(shift, base + "_shift")], **extra,
                    **{f"{name}_zero_point": xz, f"{name}_scale": xs}, **_requant_attrs(dt, ys, yz, act, amin, amax))


def _fold(n: Node, ctx: RewriteContext):
    out = _output(ctx, n)
    if out is None:
        return None
    p, v, act, amin, amax, ys, yz, dt = out
    if p.op == "dequantize_linear" and act == "none":
        x = _dq_act(ctx, v)
        if x is not None and x[0].dtype is dt and x[1:] == (ys, yz):
            return (x[0],)
        return None
    if not ctx.single_use(v):
        return None
    if p.op in PASS_THROUGH and act == "none":
        x = _dq_act(ctx, p.inputs[0])
        if x is None or x[0].dtype is not dt or x[1:] != (ys, yz) or not all(ctx.is_const(i) for i in p.inputs[1:]):
            return None
        return (ctx.make(p.op, [x[0], *p.inputs[1:]], **p.attrs),)
    if p.op == "conv":
        x = _dq_act(ctx, p.inputs[0])
        w = _weights(ctx, p.inputs[1], 0, p.inputs[1].shape[0])
        bias = _float_const(ctx, p.inputs[2]) if len(p.inputs) > 2 else None
        if x is None or w is None or (len(p.inputs) > 2 and bias is None):
            return None
        return (_linear(ctx, p, x, w, bias, out, "qconv",
                        {k: p.attrs[k] for k in ("strides", "pads", "dilations", "group")}),)
    if p.op in ("gemm", "matmul"):
        return _gemm(p, ctx, out)
    if p.op == "add":
        a, b = _dq_act(ctx, p.inputs[0]), _dq_act(ctx, p.inputs[1])
        if a is None or b is None or a[0].shape != b[0].shape:
            return None
        ka, kb, m0, shift = qa.add_multipliers(a[1], b[1], ys)
        return (ctx.make("qadd", [a[0], b[0]], a_zero_point=a[2], b_zero_point=b[2], a_mult=ka, b_mult=kb,
                         multiplier=m0, shift=shift, a_scale=a[1], b_scale=b[1],
                         **_requant_attrs(dt, ys, yz, act, amin, amax)),)
    if p.op == "global_average_pool":
        x = _dq_act(ctx, p.inputs[0])
        if x is None:
            return None
        m0, shift = qa.quantize_multiplier(np.float64(x[1]) / (np.float64(ys) * math.prod(x[0].shape[2:])))
        return (ctx.make("qglobal_average_pool", [x[0]], x_zero_point=x[2], multiplier=m0, shift=shift, x_scale=x[1],
                         **_requant_attrs(dt, ys, yz, act, amin, amax)),)
    return None


def _gemm(p: Node, ctx: RewriteContext, out):
    a = _dq_act(ctx, p.inputs[0])
    if a is None or a[0].type.rank != 2:
        return None
    bias = None
    if p.op == "gemm":
        at = p.attrs
        if at["trans_a"] or at["alpha"] != 1.0 or at["act"] != "none":
            return None
        wv = p.inputs[1]
        n_out = p.outputs[0].shape[1]
        w = _weights(ctx, wv, 0 if at["trans_b"] else 1, n_out)
        if w is not None and at["trans_b"]:
            w = (np.ascontiguousarray(w[0].T), w[1])
        if len(p.inputs) > 2:
            bias = _float_const(ctx, p.inputs[2])
            if bias is None or bias.size not in (1, n_out) or (bias.ndim == 2 and bias.shape[0] != 1):
                return None
            bias = np.broadcast_to(bias.reshape(-1), (n_out,)) * at["beta"]
    else:
        if p.inputs[1].type.rank != 2:
            return None
        w = _weights(ctx, p.inputs[1], 1, p.inputs[1].shape[1])
    if w is None:
        return None
    return (_linear(ctx, p, a, w, bias, out, "qgemm", {}),)


def fold_qdq(g: Graph) -> Graph:
    """The fold_qdq pass as a function (see FoldQdq)."""
    if not any(n.op == "quantize_linear" for n in g.nodes):
        return g
    return rewrite(g, {"quantize_linear": [_fold]})


@register_pass
@dataclass(frozen=True)
class FoldQdq(Pass):
    """Matches quantize_linear nodes closing a QDQ pattern (see the module doc) and replaces the
    dequantize -> op -> quantize chain by the integer layer. Leaves every other node alone; a
    graph without quantize_linear is returned unchanged."""

    name: ClassVar[str] = "fold_qdq"

    def run(self, g: Graph) -> Graph:
        return fold_qdq(g)
