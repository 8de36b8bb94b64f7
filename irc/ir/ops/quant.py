"""Quantization ops: float <-> int8 conversions and the integer layers of a quantized graph.

- ``quantize_linear`` / ``dequantize_linear``: ONNX's QuantizeLinear / DequantizeLinear, per
  tensor or per axis, u8 or i8 (dequantize also takes the int32 of a bias).
- ``qconv``, ``qgemm``: int8 x int8 -> int32 accumulate (+ int32 bias), then the requantize
  epilogue with per-output-channel fixed-point multipliers: ``y = requantize(acc, M0[c], shift[c],
  y_zero_point, y_min, y_max)`` (irc.ir.quant_arith). An activation is folded into the
  saturation bounds ``y_min``/``y_max`` (ReLU: y_min = y_zero_point).
- ``qadd`` (residual adds) and ``qglobal_average_pool``: the same requantize contract with
  integer weights; ``max_pool`` needs no int8 form (the max of integers on one scale is exact).
- ``conv_integer``, ``matmul_integer``: ONNX ConvInteger / MatMulInteger (int32 out).

Integer semantics: activations enter as ``x - x_zero_point`` (padding is real zero, i.e. the
zero point); weights are symmetric (zero point 0). The accumulator is the exact sum of products
plus the bias, taken modulo 2**32 (the wrap-around of 32-bit adders, which every target has;
the quantize pass never lets it wrap). References compute it in float64, exact because every
partial sum stays far below 2**53, then requantize with quant_arith.requantize.

``x_scale``/``y_scale`` (and ``a_scale``...) attributes record the real scales the integers stand
for. They are for export (QDQ ONNX) and reports; the arithmetic never reads them.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir import quant_arith as qa
from irc.ir.ops import costs
from irc.ir.ops.conv import spatial_rank
from irc.ir.ops.registry import Attr, Trait, defop, get_op, norm_axis
from irc.ir.types import DType, TensorType

_QT = (DType.u8, DType.i8)
_INT32_MIN = -(2**31)


def expect_q(t: TensorType, what: str, dtypes=_QT) -> None:
    if t.dtype not in dtypes:
        want = " or ".join(d.value for d in dtypes)
        raise ShapeError(f"{what} must be {want}, got {t}")


def _check_zp(zp: int, dt: DType, what: str) -> None:
    lo, hi = qa.qrange(dt)
    if not lo <= zp <= hi:
        raise ShapeError(f"{what} {zp} is outside the range of {dt} [{lo}, {hi}]")


def check_bounds(y_min: int, y_max: int, y_zero_point: int, dt: DType) -> None:
    lo, hi = qa.qrange(dt)
    _check_zp(y_zero_point, dt, "y_zero_point")
    if not lo <= y_min <= y_max <= hi:
        raise ShapeError(f"saturation bounds [{y_min}, {y_max}] must lie in [{lo}, {hi}] with y_min <= y_max")


def per_channel(t: TensorType, channels: int, what: str, dt: DType = DType.i32) -> None:
    if t.dtype is not dt or t.shape != (channels,):
        raise ShapeError(f"{what} must be {dt}[{channels}] (one per output channel), got {t}")


def wrap32(acc: np.ndarray) -> np.ndarray:
    """int64 (or exact float64) accumulators taken modulo 2**32, as int64 values in int32 range."""
    a = np.asarray(acc)
    if a.dtype.kind == "f":
        a = a.astype(np.int64)
    return ((a.astype(np.int64) - _INT32_MIN) % (1 << 32)) + _INT32_MIN


def requant_epilogue(acc, multiplier, shift, axis: int, ndim: int, y_zero_point, y_min, y_max, y_dtype) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    y = qa.requantize(wrap32(acc), multiplier.reshape(shape), shift.reshape(shape), y_zero_point, y_min, y_max)
    return np.require(y.astype(y_dtype.numpy), requirements="C")


REQUANT_ATTRS = {
    "y_zero_point": Attr("int", 0),
    "y_dtype": Attr("dtype", DType.u8, _QT),
    "y_min": Attr("int"),
    "y_max": Attr("int"),
    "y_scale": Attr("float", 1.0),
}

# ----------------------------------------------------------------------------------------
# Conversions


def _qparam_shape(x: TensorType, scale: TensorType, zp: TensorType | None, axis: int) -> None:
    for t, what in ((scale, "scale"), (zp, "zero_point")):
        if t is None:
            continue
        if t.rank == 0 or t.shape == (1,):
            continue
        if t.rank != 1 or x.rank == 0 or t.shape[0] != x.shape[axis]:
            raise ShapeError(f"{what} {t} must be a scalar or have one entry per index of axis {axis} of {x}")


def _resolve_axis(x: TensorType, scale: TensorType, axis: int) -> dict:
    """The axis made non-negative; with a scalar scale (per tensor) it is irrelevant, and an
    out-of-range one (ONNX's default 1 on a vector) becomes 0."""
    if scale.size == 1 and not -x.rank <= axis < max(x.rank, 1):
        return {"axis": 0}
    return {"axis": norm_axis(axis, x.rank) if x.rank else 0}


def _axis_view(p: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return p.reshape(shape)


@defop("quantize_linear", ("x", "scale", "zero_point"), {"axis": Attr("int", 1)}, foldable=False,
       traits=(Trait.QUANT,))
class QuantizeLinear:
    """q = saturate(round_half_even(x / scale) + zero_point) (ONNX QuantizeLinear); the output
    type is the zero point's (u8 or i8). scale/zero_point: scalars, or one per index of ``axis``."""

    def resolve(x, scale, zero_point, *, axis):
        return _resolve_axis(x, scale, axis)

    def infer(x, scale, zero_point, *, axis):
        if not x.dtype.is_float or scale.dtype is not DType.f32:
            raise ShapeError(f"x must be float and scale f32, got {x} and {scale}")
        expect_q(zero_point, "zero_point")
        _qparam_shape(x, scale, zero_point, axis)
        return x.with_dtype(zero_point.dtype)

    cost = costs.per_output

    def reference(x, scale, zero_point, *, axis):
        dt = DType.from_numpy(zero_point.dtype)
        return qa.quantize_float(x.astype(np.float32), _axis_view(scale, x.ndim, axis),
                                 _axis_view(zero_point, x.ndim, axis), dt)


@defop("dequantize_linear", ("x", "scale", "zero_point?"), {"axis": Attr("int", 1)}, foldable=False,
       traits=(Trait.QUANT,))
class DequantizeLinear:
    """y = (x - zero_point) * scale in f32 (ONNX DequantizeLinear); x is u8, i8 or i32 (an int32
    bias: zero point 0). Kept out of constant folding so quantized weights stay visible."""

    def resolve(x, scale, zero_point=None, *, axis):
        return _resolve_axis(x, scale, axis)

    def infer(x, scale, zero_point=None, *, axis):
        expect_q(x, "x", (DType.u8, DType.i8, DType.i32))
        if scale.dtype is not DType.f32:
            raise ShapeError(f"scale must be f32, got {scale}")
        if zero_point is not None and zero_point.dtype is not x.dtype:
            raise ShapeError(f"zero_point {zero_point} must have x's type {x.dtype}")
        _qparam_shape(x, scale, zero_point, axis)
        return x.with_dtype(DType.f32)

    cost = costs.per_output

    def reference(x, scale, zero_point=None, *, axis):
        zp = 0 if zero_point is None else _axis_view(zero_point, x.ndim, axis)
        return qa.dequantize(x, _axis_view(scale, x.ndim, axis), zp)


# ----------------------------------------------------------------------------------------
# Integer layers

QCONV_ATTRS = {
    "strides": Attr("ints", ()),
    "pads": Attr("ints", ()),
    "dilations": Attr("ints", ()),
    "group": Attr("int", 1),
}


def conv_acc(x: np.ndarray, x_zero_point: int, w: np.ndarray, *, strides, pads, dilations, group,
             pad_value: int | None = None) -> np.ndarray:
    """Exact sum over windows of (x - x_zero_point) * w, as float64 [N, M, out...]. Padding holds
    ``pad_value`` (default: the zero point, i.e. real zero)."""
    xs = x.astype(np.float64) - float(x_zero_point)
    conv = get_op("conv").reference
    if pad_value is not None and pad_value != x_zero_point and any(pads):
        n = x.ndim - 2
        widths = [(0, 0), (0, 0)] + [(pads[i], pads[n + i]) for i in range(n)]
        xs = np.pad(xs, widths, constant_values=float(pad_value - x_zero_point))
        pads = (0,) * (2 * n)
    return conv(xs, w.astype(np.float64), strides=strides, pads=pads, dilations=dilations, group=group)


@defop("qconv", ("x", "w", "bias", "multiplier", "shift"),
       {**QCONV_ATTRS, "x_zero_point": Attr("int", 0), "x_scale": Attr("float", 1.0), **REQUANT_ATTRS},
       traits=(Trait.CONV, Trait.QUANT))
class QConv:
    """Quantized convolution: acc[n, m] = sum((x - x_zero_point) * w) + bias[m] (int32), then
    y = requantize(acc, multiplier[m], shift[m], y_zero_point, y_min, y_max). x u8/i8, w i8
    (M, C/group, kernel...) symmetric, bias/multiplier/shift i32 [M]."""

    def resolve(x, w, bias, multiplier, shift, *, strides, pads, dilations, group, **rest):
        return {"strides": strides, "pads": pads, "dilations": dilations, "group": group, **rest,
                **get_op("conv").resolve(x.with_dtype(DType.f32), w.with_dtype(DType.f32), strides=strides,
                                         pads=pads, dilations=dilations, group=group)}

    def infer(x, w, bias, multiplier, shift, *, strides, pads, dilations, group, x_zero_point, x_scale,
              y_zero_point, y_dtype, y_min, y_max, y_scale):
        expect_q(x, "x")
        expect_q(w, "w", (DType.i8,))
        _check_zp(x_zero_point, x.dtype, "x_zero_point")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        _, (out,) = get_op("conv").type_check([x.with_dtype(DType.f32), w.with_dtype(DType.f32)],
                                              dict(strides=strides, pads=pads, dilations=dilations, group=group))
        m = w.shape[0]
        for t, what in ((bias, "bias"), (multiplier, "multiplier"), (shift, "shift")):
            per_channel(t, m, what)
        return out.with_dtype(y_dtype)

    cost = costs.conv

    def reference(x, w, bias, multiplier, shift, *, strides, pads, dilations, group, x_zero_point, x_scale,
                  y_zero_point, y_dtype, y_min, y_max, y_scale):
        acc = conv_acc(x, x_zero_point, w, strides=strides, pads=pads, dilations=dilations, group=group)
        acc = acc.astype(np.int64) + bias.astype(np.int64).reshape((-1,) + (1,) * (x.ndim - 2))
        return requant_epilogue(acc, multiplier, shift, 1, x.ndim, y_zero_point, y_min, y_max, y_dtype)


@defop("qgemm", ("a", "b", "bias", "multiplier", "shift"),
       {"a_zero_point": Attr("int", 0), "a_scale": Attr("float", 1.0), **REQUANT_ATTRS},
       traits=(Trait.LINALG, Trait.QUANT))
class QGemm:
    """Quantized matrix product: acc[i, j] = sum_k (a[i, k] - a_zero_point) * b[k, j] + bias[j]
    (int32), y = requantize(acc, multiplier[j], shift[j], ...). a u8/i8 [M, K], b i8 [K, N]."""

    def infer(a, b, bias, multiplier, shift, *, a_zero_point, a_scale, y_zero_point, y_dtype, y_min, y_max,
              y_scale):
        expect_q(a, "a")
        expect_q(b, "b", (DType.i8,))
        _check_zp(a_zero_point, a.dtype, "a_zero_point")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        if a.rank != 2 or b.rank != 2 or a.shape[1] != b.shape[0]:
            raise ShapeError(f"a and b must be matrices with a's columns equal to b's rows, got {a} and {b}")
        n = b.shape[1]
        for t, what in ((bias, "bias"), (multiplier, "multiplier"), (shift, "shift")):
            per_channel(t, n, what)
        return TensorType((a.shape[0], n), y_dtype)

    cost = costs.matmul

    def reference(a, b, bias, multiplier, shift, *, a_zero_point, a_scale, y_zero_point, y_dtype, y_min, y_max,
                  y_scale):
        acc = (a.astype(np.float64) - a_zero_point) @ b.astype(np.float64)
        acc = acc.astype(np.int64) + bias.astype(np.int64)
        return requant_epilogue(acc, multiplier, shift, 1, 2, y_zero_point, y_min, y_max, y_dtype)


@defop("qadd", ("a", "b"),
       {"a_zero_point": Attr("int", 0), "b_zero_point": Attr("int", 0), "a_mult": Attr("int"), "b_mult": Attr("int"),
        "multiplier": Attr("int"), "shift": Attr("int"), "a_scale": Attr("float", 1.0),
        "b_scale": Attr("float", 1.0), **REQUANT_ATTRS},
       traits=(Trait.QUANT,))
class QAdd:
    """Quantized add of two same-shape tensors: acc = a_mult*(a - a_zero_point) +
    b_mult*(b - b_zero_point), y = requantize(acc, multiplier, shift, ...). The integer weights
    a_mult, b_mult (<= 2**14) carry the ratio of the input scales (quant_arith.add_multipliers)."""

    def infer(a, b, *, a_zero_point, b_zero_point, a_mult, b_mult, multiplier, shift, a_scale, b_scale,
              y_zero_point, y_dtype, y_min, y_max, y_scale):
        expect_q(a, "a")
        expect_q(b, "b")
        if a.shape != b.shape:
            raise ShapeError(f"qadd takes two tensors of one shape, got {a} and {b}")
        _check_zp(a_zero_point, a.dtype, "a_zero_point")
        _check_zp(b_zero_point, b.dtype, "b_zero_point")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        if not (0 <= a_mult <= 1 << 16 and 0 <= b_mult <= 1 << 16 and 0 <= multiplier < 1 << 31
                and 1 <= shift <= qa.MAX_SHIFT):
            raise ShapeError(f"integer weights a_mult={a_mult}, b_mult={b_mult} must be in [0, 2**16] and "
                             f"multiplier={multiplier}, shift={shift} in [0, 2**31) and [1, {qa.MAX_SHIFT}]")
        return a.with_dtype(y_dtype)

    cost = costs.per_output_times(3)  # the requantize: bias, multiplier and shift per output

    def reference(a, b, *, a_zero_point, b_zero_point, a_mult, b_mult, multiplier, shift, a_scale, b_scale,
                  y_zero_point, y_dtype, y_min, y_max, y_scale):
        acc = a_mult * (a.astype(np.int64) - a_zero_point) + b_mult * (b.astype(np.int64) - b_zero_point)
        y = qa.requantize(acc, multiplier, shift, y_zero_point, y_min, y_max)
        return np.require(y.astype(y_dtype.numpy), requirements="C")


@defop("qglobal_average_pool", ("x",),
       {"x_zero_point": Attr("int", 0), "multiplier": Attr("int"), "shift": Attr("int"),
        "x_scale": Attr("float", 1.0), **REQUANT_ATTRS},
       traits=(Trait.POOL, Trait.QUANT))
class QGlobalAveragePool:
    """Quantized mean over the spatial axes: acc = sum(x - x_zero_point) over the H*W... window,
    y = requantize(acc, multiplier, shift, ...) where multiplier * 2**-shift stands for
    x_scale / (y_scale * window size). Output (N, C, 1, ...)."""

    def infer(x, *, x_zero_point, multiplier, shift, x_scale, y_zero_point, y_dtype, y_min, y_max, y_scale):
        expect_q(x, "x")
        spatial_rank(x)
        _check_zp(x_zero_point, x.dtype, "x_zero_point")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        if not (0 <= multiplier < 1 << 31 and 1 <= shift <= qa.MAX_SHIFT):
            raise ShapeError(f"multiplier {multiplier} and shift {shift} must be in [0, 2**31) and [1, {qa.MAX_SHIFT}]")
        return TensorType((*x.shape[:2], *(1,) * (x.rank - 2)), y_dtype)

    cost = costs.reduce_mean

    def reference(x, *, x_zero_point, multiplier, shift, x_scale, y_zero_point, y_dtype, y_min, y_max, y_scale):
        acc = (x.astype(np.int64) - x_zero_point).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
        y = qa.requantize(acc, multiplier, shift, y_zero_point, y_min, y_max)
        return np.require(y.astype(y_dtype.numpy), requirements="C")


# ----------------------------------------------------------------------------------------
# ONNX's integer ops (int32 results)


def _zp_of(zp: np.ndarray | None, ndim: int, axis: int) -> np.ndarray | float:
    if zp is None:
        return 0.0
    return _axis_view(zp.astype(np.float64), ndim, axis)


@defop("conv_integer", ("x", "w", "x_zero_point?", "w_zero_point?"), QCONV_ATTRS, traits=(Trait.CONV, Trait.QUANT))
class ConvInteger:
    """ONNX ConvInteger: sum((x - x_zero_point) * (w - w_zero_point)) as int32 (modulo 2**32);
    x_zero_point a scalar, w_zero_point a scalar or one per output channel."""

    def resolve(x, w, x_zero_point=None, w_zero_point=None, *, strides, pads, dilations, group):
        return get_op("conv").resolve(x.with_dtype(DType.f32), w.with_dtype(DType.f32), strides=strides, pads=pads,
                                      dilations=dilations, group=group)

    def infer(x, w, x_zero_point=None, w_zero_point=None, *, strides, pads, dilations, group):
        expect_q(x, "x")
        expect_q(w, "w")
        for zp, t, what in ((x_zero_point, x, "x_zero_point"), (w_zero_point, w, "w_zero_point")):
            if zp is not None and (zp.dtype is not t.dtype or zp.size not in (1, w.shape[0] if t is w else 1)):
                raise ShapeError(f"{what} must be a scalar (or per output channel, for w) of {t.dtype}, got {zp}")
        _, (out,) = get_op("conv").type_check([x.with_dtype(DType.f32), w.with_dtype(DType.f32)],
                                              dict(strides=strides, pads=pads, dilations=dilations, group=group))
        return out.with_dtype(DType.i32)

    cost = costs.conv

    def reference(x, w, x_zero_point=None, w_zero_point=None, *, strides, pads, dilations, group):
        zx = int(x_zero_point.reshape(-1)[0]) if x_zero_point is not None else 0
        ws = w.astype(np.float64) - _zp_of(w_zero_point, w.ndim, 0)
        acc = conv_acc(x, zx, ws, strides=strides, pads=pads, dilations=dilations, group=group)
        return wrap32(acc).astype(np.int32)


@defop("matmul_integer", ("a", "b", "a_zero_point?", "b_zero_point?"), traits=(Trait.LINALG, Trait.QUANT))
class MatMulInteger:
    """ONNX MatMulInteger on matrices: (a - a_zero_point) @ (b - b_zero_point) as int32 (modulo
    2**32); a_zero_point a scalar or one per row of a, b_zero_point a scalar or one per column."""

    def infer(a, b, a_zero_point=None, b_zero_point=None):
        expect_q(a, "a")
        expect_q(b, "b")
        if a.rank != 2 or b.rank != 2 or a.shape[1] != b.shape[0]:
            raise ShapeError(f"a and b must be matrices with a's columns equal to b's rows, got {a} and {b}")
        for zp, t, n, what in ((a_zero_point, a, a.shape[0], "a_zero_point"), (b_zero_point, b, b.shape[1], "b_zero_point")):
            if zp is not None and (zp.dtype is not t.dtype or zp.size not in (1, n) or zp.rank > 1):
                raise ShapeError(f"{what} must be a scalar or a vector of {n} {t.dtype}, got {zp}")
        return TensorType((a.shape[0], b.shape[1]), DType.i32)

    cost = costs.matmul

    def reference(a, b, a_zero_point=None, b_zero_point=None):
        za = 0.0 if a_zero_point is None else a_zero_point.astype(np.float64).reshape(-1, 1)
        zb = 0.0 if b_zero_point is None else b_zero_point.astype(np.float64).reshape(1, -1)
        acc = (a.astype(np.float64) - za) @ (b.astype(np.float64) - zb)
        return wrap32(acc).astype(np.int32)
