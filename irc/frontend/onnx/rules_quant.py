"""ONNX <-> irc rules for quantization: QuantizeLinear, DequantizeLinear, QLinearConv,
QLinearMatMul, ConvInteger, MatMulInteger in; QDQ ONNX out.

Import keeps QuantizeLinear/DequantizeLinear as nodes (never folded, so int8 weights stay int8);
the fold_qdq pass later turns DQ -> float op -> Q patterns into integer layers. QLinearConv and
QLinearMatMul become ``qconv``/``qgemm`` when their weights are constant and symmetric (a
weight zero point is subtracted at import when the difference still fits int8); otherwise they
are imported as dequantize -> float op -> quantize, which computes the same reals in float.

Export writes an irc-quantized graph as QDQ ONNX, the form onnxruntime fuses back into its
integer kernels: every integer layer becomes DequantizeLinear on its inputs (weights per output
channel, the int32 bias at scale x_scale * w_scale), the float op, the folded activation (Relu
or Clip) and QuantizeLinear on its output. Weight scales are recovered from the fixed-point
multipliers: w_scale = M0 * 2**-shift * y_scale / x_scale.
"""

from __future__ import annotations

import numpy as np

from irc.errors import UnsupportedOpError
from irc.frontend.onnx.rules import ExportContext, NodeContext, export_rule, import_rule
from irc.frontend.onnx.rules_nn import conv_window_attrs
from irc.ir import quant_arith as qa
from irc.ir.graph import Node, Value
from irc.ir.types import DType

# ----------------------------------------------------------------------------------------
# Import


def _scale(ctx: NodeContext, i: int) -> Value:
    s = ctx.input(i)
    return s if s.dtype is DType.f32 else ctx.op("cast", s, to=DType.f32)


def _zero_point(ctx: NodeContext, i: int, default: DType = DType.u8) -> Value:
    if ctx.has_input(i):
        return ctx.input(i)
    return ctx.constant(np.zeros((), default.numpy))


@import_rule("QuantizeLinear", op="quantize_linear")
def _quantize(ctx: NodeContext):
    if ctx.attr("block_size", 0):
        raise UnsupportedOpError("blocked quantization (block_size) is not supported")
    zp = _zero_point(ctx, 2)
    if zp.dtype not in qa.QTYPES:
        raise UnsupportedOpError(f"quantizing to {zp.dtype} is not supported (u8 and i8 are)")
    x = ctx.input(0)
    return ctx.op("quantize_linear", x, _scale(ctx, 1), zp, axis=ctx.attr("axis", 1) if x.type.rank else 0)


@import_rule("DequantizeLinear", op="dequantize_linear")
def _dequantize(ctx: NodeContext):
    if ctx.attr("block_size", 0):
        raise UnsupportedOpError("blocked quantization (block_size) is not supported")
    x = ctx.input(0)
    if x.dtype not in (DType.u8, DType.i8, DType.i32):
        raise UnsupportedOpError(f"dequantizing {x.dtype} is not supported (u8, i8 and i32 are)")
    ins = [x, _scale(ctx, 1)] + ([ctx.input(2)] if ctx.has_input(2) else [])
    return ctx.op("dequantize_linear", *ins, axis=ctx.attr("axis", 1) if x.type.rank else 0)


def _scalar(ctx: NodeContext, i: int) -> float | int | None:
    c = ctx.const(i)
    if c is None or c.size != 1:
        return None
    return c.reshape(-1)[0].item()


def _per_channel(a: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(a, np.float64).reshape(-1), (n,)).copy()


def _float_fallback(ctx: NodeContext, w_axis: int, make) -> Value:
    """dequantize x (input 0) and w (input 3, per channel along ``w_axis``), the float op
    (``make(x, w)``), quantize to the output's parameters (inputs 6 and 7)."""
    def dq(i, axis):
        ins = [ctx.input(i), _scale(ctx, i + 1)] + ([ctx.input(i + 2)] if ctx.has_input(i + 2) else [])
        return ctx.op("dequantize_linear", *ins, axis=axis if ctx.input(i).type.rank else 0)

    y = make(dq(0, 1), dq(3, w_axis))
    return ctx.op("quantize_linear", y, _scale(ctx, 6), _zero_point(ctx, 7), axis=1)


@import_rule("QLinearConv", op="qconv")
def _qlinear_conv(ctx: NodeContext):
    from irc.frontend.onnx.rules_nn import _kernel_from_weights, _window_attrs

    x, w = ctx.input(0), ctx.input(3)
    attrs = {**_window_attrs(ctx, x, _kernel_from_weights(ctx, w)), "group": ctx.attr("group", 1)}
    xs, xz, ys, yz = (_scalar(ctx, i) for i in (1, 2, 6, 7))
    wc, ws, wz = ctx.const(3), ctx.const(4), ctx.const(5)
    bias = ctx.const(8) if ctx.has_input(8) else np.zeros(w.shape[0], np.int32)
    wq = qa.symmetric_weights(wc, wz, 0) if wc is not None else None
    if any(v is None for v in (xs, xz, ys, yz, ws, bias, wq)):
        def conv(xf, wf):
            ins = [xf, wf]
            if ctx.has_input(8):
                b = ctx.input(8)
                bs = ctx.op("mul", _scale(ctx, 1), _scale(ctx, 4))
                ins.append(ctx.op("dequantize_linear", b, bs, axis=0))
            return ctx.op("conv", *ins, **attrs)

        return _float_fallback(ctx, 0, conv)
    m = w.shape[0]
    yt = ctx.input(7).dtype if ctx.has_input(7) else DType.u8
    lo, hi = qa.qrange(yt)
    m0, shift = qa.quantize_multipliers(np.float64(np.float32(xs)) * _per_channel(ws, m) / np.float64(np.float32(ys)))
    b = ctx.builder
    return ctx.op("qconv", x, b.param("w_q", wq), b.param("bias", bias.astype(np.int32)), b.param("m0", m0),
                  b.param("shift", shift), **attrs, x_zero_point=int(xz), x_scale=float(np.float32(xs)),
                  y_zero_point=int(yz), y_dtype=yt, y_min=lo, y_max=hi, y_scale=float(np.float32(ys)))


@import_rule("QLinearMatMul", op="qgemm")
def _qlinear_matmul(ctx: NodeContext):
    a = ctx.input(0)
    as_, az, ys, yz = (_scalar(ctx, i) for i in (1, 2, 6, 7))
    bc, bs, bz = ctx.const(3), ctx.const(4), ctx.const(5)
    bq = qa.symmetric_weights(bc, bz, 1) if bc is not None and bc.ndim == 2 else None
    if a.type.rank != 2 or any(v is None for v in (as_, az, ys, yz, bs, bq)) or (bs.size > 1 and bs.ndim != 1):
        return _float_fallback(ctx, 1, lambda af, bf: ctx.op("matmul", af, bf))
    n = bc.shape[1]
    yt = ctx.input(7).dtype if ctx.has_input(7) else DType.u8
    lo, hi = qa.qrange(yt)
    m0, shift = qa.quantize_multipliers(np.float64(np.float32(as_)) * _per_channel(bs, n) / np.float64(np.float32(ys)))
    b = ctx.builder
    return ctx.op("qgemm", a, b.param("b_q", bq), b.param("bias", np.zeros(n, np.int32)), b.param("m0", m0),
                  b.param("shift", shift), a_zero_point=int(az), a_scale=float(np.float32(as_)),
                  y_zero_point=int(yz), y_dtype=yt, y_min=lo, y_max=hi, y_scale=float(np.float32(ys)))


@import_rule("ConvInteger", op="conv_integer")
def _conv_integer(ctx: NodeContext):
    from irc.frontend.onnx.rules_nn import _kernel_from_weights, _window_attrs

    x, w = ctx.input(0), ctx.input(1)
    attrs = {**_window_attrs(ctx, x, _kernel_from_weights(ctx, w)), "group": ctx.attr("group", 1)}
    ins = [x, w]
    if ctx.has_input(3):
        ins += [_zero_point(ctx, 2, x.dtype), ctx.input(3)]
    elif ctx.has_input(2):
        ins.append(ctx.input(2))
    return ctx.op("conv_integer", *ins, **attrs)


@import_rule("MatMulInteger", op="matmul_integer")
def _matmul_integer(ctx: NodeContext):
    a, b = ctx.input(0), ctx.input(1)
    if a.type.rank != 2 or b.type.rank != 2:
        raise UnsupportedOpError(f"MatMulInteger is supported on matrices, got {a.type} and {b.type}")
    ins = [a, b]
    if ctx.has_input(3):
        ins += [_zero_point(ctx, 2, a.dtype), ctx.input(3)]
    elif ctx.has_input(2):
        ins.append(ctx.input(2))
    return ctx.op("matmul_integer", *ins)


# ----------------------------------------------------------------------------------------
# Export: QDQ


@export_rule("quantize_linear")
def _quantize_out(ctx: ExportContext, n: Node):
    ctx.emit("QuantizeLinear", n.inputs, n.outputs, axis=n.attrs["axis"])


@export_rule("dequantize_linear")
def _dequantize_out(ctx: ExportContext, n: Node):
    ctx.emit("DequantizeLinear", n.inputs, n.outputs, axis=n.attrs["axis"])


@export_rule("conv_integer")
def _conv_integer_out(ctx: ExportContext, n: Node):
    ctx.emit("ConvInteger", n.inputs, n.outputs, **conv_window_attrs(n))


@export_rule("matmul_integer")
def _matmul_integer_out(ctx: ExportContext, n: Node):
    ctx.emit("MatMulInteger", n.inputs, n.outputs)


def _dq(ctx: ExportContext, v: Value, scale, zero_point, hint: str) -> str:
    """DequantizeLinear of activation ``v`` (per tensor)."""
    out = ctx.tmp(hint)
    ctx.emit("DequantizeLinear", [v, ctx.const(np.float32(scale), hint + "_scale"),
                                  ctx.const(np.asarray(zero_point, v.dtype.numpy), hint + "_zp")], [out])
    return out


def _dq_const(ctx: ExportContext, data: np.ndarray, scales: np.ndarray, axis: int, hint: str,
              name: str | None = None) -> str:
    """DequantizeLinear of a constant (weights i8 or bias i32; the initializer ``name`` if it
    already is one) with per-channel scales."""
    out = ctx.tmp(hint)
    src = name if name is not None else ctx.const(data, hint + "_q")
    ctx.emit("DequantizeLinear", [src, ctx.const(scales.astype(np.float32), hint + "_scale"),
                                  ctx.const(np.zeros(scales.shape, data.dtype), hint + "_zp")], [out], axis=axis)
    return out


def _weight_scales(ctx: ExportContext, n: Node, x_scale: float) -> np.ndarray:
    m0 = ctx._exp.g.params.get(n.inputs[3])
    shift = ctx._exp.g.params.get(n.inputs[4])
    if m0 is None or shift is None:
        raise UnsupportedOpError("multipliers must be constants to export as QDQ", node=n.label, op=n.op)
    real = m0.astype(np.float64) * np.ldexp(1.0, -shift.astype(np.int64))
    return (real * n.attrs["y_scale"] / x_scale).astype(np.float32)


def _requantize_out(ctx: ExportContext, n: Node, y_float: str) -> None:
    """The folded activation (Relu or Clip from the saturation bounds), then QuantizeLinear."""
    a = n.attrs
    s, zp, dt = a["y_scale"], a["y_zero_point"], a["y_dtype"]
    qmin, qmax = qa.qrange(dt)
    if a["y_min"] > qmin or a["y_max"] < qmax:
        act = ctx.tmp(n.outputs[0].name + "_act")
        if a["y_min"] == zp and a["y_max"] == qmax:
            ctx.emit("Relu", [y_float], [act])
        else:
            lo = np.float32((a["y_min"] - zp) * s)
            hi = np.float32((a["y_max"] - zp) * s)
            ctx.emit("Clip", [y_float, ctx.const(lo, "clip_min"), ctx.const(hi, "clip_max")], [act])
        y_float = act
    ctx.emit("QuantizeLinear", [y_float, ctx.const(np.float32(s), "y_scale"), ctx.const(np.asarray(zp, dt.numpy), "y_zp")],
             n.outputs)


def _params(ctx: ExportContext, n: Node, *idx: int) -> list[np.ndarray]:
    out = []
    for i in idx:
        a = ctx._exp.g.params.get(n.inputs[i])
        if a is None:
            raise UnsupportedOpError(f"input {i} must be a constant to export as QDQ", node=n.label, op=n.op)
        out.append(a)
    return out


def _float_operands(ctx: ExportContext, n: Node, x: str, gemm: bool) -> list[str]:
    """Input, weight and bias of a qconv / qgemm (input scale and zero point: the attributes
    ``<x>_scale`` / ``<x>_zero_point``) dequantized, the weight per output channel. A gemm's
    weight is written transposed ([N, K], per channel along axis 0), the layout ONNX quantizers use."""
    a = n.attrs
    w, bias = _params(ctx, n, 1, 2)
    ws = _weight_scales(ctx, n, a[f"{x}_scale"])
    base = n.outputs[0].name
    xf = _dq(ctx, n.inputs[0], a[f"{x}_scale"], a[f"{x}_zero_point"], f"{base}_{x}")
    if gemm:
        wf = _dq_const(ctx, np.ascontiguousarray(w.T), ws, 0, base + "_w")
    else:
        wf = _dq_const(ctx, w, ws, 0, base + "_w", n.inputs[1].name)
    bf = _dq_const(ctx, bias, (np.float32(a[f"{x}_scale"]) * ws).astype(np.float32), 0, base + "_b", n.inputs[2].name)
    return [xf, wf, bf]


@export_rule("qconv")
def _qconv_out(ctx: ExportContext, n: Node):
    ins = _float_operands(ctx, n, "x", gemm=False)
    y = ctx.tmp(n.outputs[0].name + "_conv")
    ctx.emit("Conv", ins, [y], **conv_window_attrs(n))
    _requantize_out(ctx, n, y)


@export_rule("qgemm")
def _qgemm_out(ctx: ExportContext, n: Node):
    ins = _float_operands(ctx, n, "a", gemm=True)
    y = ctx.tmp(n.outputs[0].name + "_gemm")
    ctx.emit("Gemm", ins, [y], transB=1)
    _requantize_out(ctx, n, y)


def _through_float(irc_op: str, onnx_type: str, operands: tuple[str, ...], tag: str) -> None:
    """Register the export of ``irc_op`` as DequantizeLinear of each input (its scale and zero
    point are the attributes ``<operand>_scale`` / ``<operand>_zero_point``), the float op
    ``onnx_type``, and the requantize of its result."""

    @export_rule(irc_op)
    def _out(ctx: ExportContext, n: Node):
        a = n.attrs
        base = n.outputs[0].name
        xs = [_dq(ctx, v, a[f"{p}_scale"], a[f"{p}_zero_point"], f"{base}_{p}") for v, p in zip(n.inputs, operands)]
        y = ctx.tmp(f"{base}_{tag}")
        ctx.emit(onnx_type, xs, [y])
        _requantize_out(ctx, n, y)


_through_float("qadd", "Add", ("a", "b"), "add")
_through_float("qglobal_average_pool", "GlobalAveragePool", ("x",), "pool")
