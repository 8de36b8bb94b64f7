"""The integer arithmetic of int8 quantization: the one definition every target follows.

A quantized tensor holds integers q standing for reals ``scale * (q - zero_point)``. Integer
layers (irc.ir.ops.quant) accumulate exactly in 32 bits and come back to 8 bits through
**requantize**, defined here once; the interpreter, the CPU kernels, the HLS and RTL flows all
compute exactly this, bit for bit:

    requantize(acc, M0, shift, zp, lo, hi) = clamp(zp + ((acc * M0 + 2**(shift-1)) >> shift), lo, hi)

- ``acc`` is the int32 accumulator (sum of products plus the int32 bias);
- ``M0 * 2**-shift`` is the real rescale factor (input scale * weight scale / output scale) as a
  fixed-point number: ``M0`` a 31-bit multiplier, normally in [2**30, 2**31), ``shift`` in
  [1, 62] (see :func:`quantize_multiplier`);
- the product ``acc * M0`` is formed in 64 bits (|acc| < 2**31, M0 < 2**31: it cannot overflow),
  the rounding constant ``2**(shift-1)`` is added in 64 bits, and ``>>`` is an arithmetic shift
  (floor division by 2**shift). Together that is **round half up**: to the nearest integer,
  ties toward +infinity (2.5 -> 3, -2.5 -> -2). This is not TFLite's rounding (ties away from
  zero, with a doubling high multiply); one 64-bit multiply-add-shift is simpler for every target;
- ``zp`` is added after the shift, then the result is **saturated** to ``[lo, hi]`` (in 64 bits,
  before narrowing to 8 bits). ``lo``/``hi`` are the output type's range, narrowed by a folded
  activation: ReLU is ``lo = zp`` (real 0), clip(a, b) is ``lo = zp + round(a/scale)``,
  ``hi = zp + round(b/scale)`` (:func:`saturation_bounds`).

Float <-> int conversions at the edges of a quantized region follow ONNX QuantizeLinear /
DequantizeLinear: ``q = saturate(round_half_even(x / scale) + zp)`` computed in float32, and
``x = (q - zp) * scale`` in float32.

Weights are int8, symmetric (zero point 0) per output channel in [-127, 127]; activations are
per tensor, u8 with a zero point (asymmetric) or i8 with zero point 0 (symmetric).
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.types import DType

#: The multiplier has 31 significant bits: M0 in [2**30, 2**31) for normal scales.
MULTIPLIER_BITS = 31
MAX_SHIFT = 62
#: Symmetric weights use [-127, 127] so that negation never overflows.
WEIGHT_MAX = 127
#: Integer weights of qadd: the larger input scale becomes 2**ADD_BITS units.
ADD_BITS = 14

QTYPES = (DType.u8, DType.i8)


def qrange(dt: DType) -> tuple[int, int]:
    """(min, max) of an 8-bit quantized type."""
    if dt is DType.u8:
        return 0, 255
    if dt is DType.i8:
        return -128, 127
    raise ShapeError(f"quantized tensors are u8 or i8, got {dt}")


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(M0, shift) with ``real ~= M0 * 2**-shift``, M0 in [2**30, 2**31) and shift in [1, 62].

    M0 is ``real`` normalised to [0.5, 1) and rounded to 31 bits (ties up); the relative error
    is below 2**-31. Scales below 2**-32 cannot be normalised within shift <= 62: M0 is then
    ``round(real * 2**62)`` (< 2**30, possibly 0) with shift 62. Scales of 2**30 or more are
    refused (no sane layer has them)."""
    real = float(real)
    if not math.isfinite(real) or real < 0:
        raise ShapeError(f"a requantization scale must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, MAX_SHIFT
    m, e = math.frexp(real)  # real = m * 2**e, m in [0.5, 1)
    m0 = int(math.floor(m * (1 << MULTIPLIER_BITS) + 0.5))
    if m0 == 1 << MULTIPLIER_BITS:
        m0 //= 2
        e += 1
    shift = MULTIPLIER_BITS - e
    if shift < 1:
        raise ShapeError(f"requantization scale {real} is too large (must be below 2**30)")
    if shift > MAX_SHIFT:
        m0 = int(math.floor(math.ldexp(real, MAX_SHIFT) + 0.5))
        shift = MAX_SHIFT
    return m0, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel :func:`quantize_multiplier`: (M0 as int32 array, shift as int32 array)."""
    pairs = [quantize_multiplier(r) for r in np.asarray(reals, np.float64).reshape(-1)]
    m0 = np.array([p[0] for p in pairs], np.int32)
    shift = np.array([p[1] for p in pairs], np.int32)
    return m0, shift


def requantize(acc, multiplier, shift, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """The contract above, element-wise, as int64 results in [lo, hi]; ``multiplier`` and
    ``shift`` broadcast against ``acc`` (per channel: shape them [C, 1, ...])."""
    acc = np.asarray(acc, np.int64)
    m = np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    rounding = np.left_shift(np.int64(1), s - 1)
    y = np.right_shift(acc * m + rounding, s) + np.int64(zero_point)
    return np.clip(y, lo, hi)


def saturation_bounds(dt: DType, scale: float, zero_point: int, act: str = "none",
                      act_min: float = -math.inf, act_max: float = math.inf) -> tuple[int, int]:
    """(lo, hi) for an output of type ``dt``: the type's range, narrowed by a folded activation
    ('relu': lo = zp; 'clip': [act_min, act_max] rounded to the nearest representable values)."""
    lo, hi = qrange(dt)
    if act == "relu":
        lo = max(lo, zero_point)
    elif act == "clip":
        if math.isfinite(act_min):
            lo = max(lo, zero_point + int(np.round(act_min / scale)))
        if math.isfinite(act_max):
            hi = min(hi, zero_point + int(np.round(act_max / scale)))
        hi = max(hi, lo)
    elif act != "none":
        raise ShapeError(f"activation '{act}' cannot be folded into saturation (only relu and clip)")
    return lo, hi


def quantize_float(x: np.ndarray, scale, zero_point, dt: DType) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) in float32.
    ``scale`` and ``zero_point`` broadcast against x. NaN becomes the zero point."""
    lo, hi = qrange(dt)
    x = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        r = np.rint(x / np.asarray(scale, np.float32))
        r = np.where(np.isnan(r), 0, r)
        y = np.clip(r + np.asarray(zero_point, np.float32), lo, hi)
    return y.astype(dt.numpy)


def dequantize(q: np.ndarray, scale, zero_point) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    d = (np.asarray(q, np.int64) - np.asarray(zero_point, np.int64)).astype(np.float32)
    return d * np.asarray(scale, np.float32)


def choose_qparams(lo: float, hi: float, dt: DType) -> tuple[float, int]:
    """(scale, zero_point) representing the real range [lo, hi] in ``dt``. The range is widened
    to contain 0 (so that real 0, e.g. padding, is exact). i8 is symmetric (zero point 0, scale
    max|x|/127); u8 is asymmetric (zero point chosen so that lo and hi are both reachable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = qrange(dt)
    if dt is DType.i8:
        amax = max(-lo, hi)
        scale = amax / 127.0 if amax > 0 else 1.0
        return _f32(scale), 0
    if hi - lo <= 0:
        return 1.0, 0
    scale = _f32((hi - lo) / (qmax - qmin))
    zp = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    return scale, zp


def _f32(v: float) -> float:
    """v as the nearest float32 (scales are stored as f32; use that exact value everywhere)."""
    return float(np.float32(v)) or float(np.finfo(np.float32).tiny)


def quantize_weights(w: np.ndarray, axis: int = 0, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights: (w_q int8 in [-127, 127], scales f32 per channel
    along ``axis``), scale = max|w| / 127 over the channel (1 for an all-zero channel). With
    ``bits`` < 8 the range is [-(2**(bits-1) - 1), 2**(bits-1) - 1] (7 bits: [-63, 63], which
    AVX2's vpmaddubsw multiplies without saturating)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ShapeError(f"weight bits must be an integer from 2 to 8, got {bits!r}")
    wmax = min(WEIGHT_MAX, 2 ** (bits - 1) - 1)
    w = np.asarray(w, np.float32)
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.abs(w).max(axis=red) if w.size else np.zeros(w.shape[axis], np.float32)
    scales = np.where(amax > 0, amax / np.float32(wmax), np.float32(1)).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scales.reshape(shape)), -wmax, wmax).astype(np.int8)
    return q, scales


def quantize_bias(b: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """int32 bias at scale input_scale * weight_scale (per channel), round half even,
    saturated to int32."""
    s = np.float64(np.float32(input_scale)) * np.asarray(weight_scales, np.float64)
    q = np.rint(np.asarray(b, np.float64) / s)
    return np.clip(q, -(2**31), 2**31 - 1).astype(np.int32)


def add_multipliers(a_scale: float, b_scale: float, y_scale: float) -> tuple[int, int, int, int]:
    """Integer form of y = a_scale*(a-za) + b_scale*(b-zb) on y's scale, for qadd:
    (ka, kb, M0, shift) with acc = ka*(a-za) + kb*(b-zb) and y = requantize(acc, M0, shift, ...).
    The common unit is max(a_scale, b_scale) / 2**ADD_BITS, so ka, kb <= 2**14 and |acc| < 2**23."""
    unit = max(a_scale, b_scale) / (1 << ADD_BITS)
    ka = int(round(a_scale / unit))
    kb = int(round(b_scale / unit))
    m0, shift = quantize_multiplier(unit / y_scale)
    return ka, kb, m0, shift


def symmetric_weights(w: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray | None:
    """Integer weights with their zero point (a scalar, or one per channel along ``axis``)
    subtracted, as int8: the symmetric form integer layers take. None if a difference falls
    outside [-128, 127] (u8 weights with a zero point far from 128, say)."""
    d = np.asarray(w).astype(np.int64)
    if zero_point is not None:
        zp = np.asarray(zero_point).astype(np.int64)
        if zp.size > 1:
            shape = [1] * d.ndim
            shape[axis] = -1
            zp = zp.reshape(shape)
        else:
            zp = zp.reshape(())
        d = d - zp
    if d.size and (d.min() < -128 or d.max() > 127):
        return None
    return d.astype(np.int8)
