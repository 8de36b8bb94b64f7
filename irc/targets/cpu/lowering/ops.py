"""The ops only the CPU lowering makes: GEMMs whose constant operand is re-laid out at compile
time into the panels the CPU's micro-kernels stream through.

- ``gemm_packed`` / ``conv_gemm`` (lowering/im2col_gemm.py): the f32 ``gemm_fused`` /
  ``conv_fused`` with packed weights; ``conv_gemm`` computes the convolution as im2col + GEMM,
  the im2col done while packing. ``pack_conv_weights`` packs run-time weights (a train step's)
  for it; ``conv_transpose_gemm`` is a strided conv_transpose as GEMM + col2im; ``conv_dot`` a
  convolution whose window outgrows its output (a weight gradient) as dot products.
- ``qgemm_packed`` / ``qconv_gemm`` (lowering/int8_gemm.py): ``qgemm`` / ``qconv`` on the
  u8 x s8 -> s32 GEMM.

They register in the one op registry when this module is imported (by the CPU target), so the
interpreter, the verifier and the text form know them; other targets never see them. Each keeps
a numpy reference, so the interpreter checks every lowering.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.activation import EPILOGUE_ATTRS
from irc.ir.ops.fused import CONV_ATTRS, apply_epilogue, check_extra
from irc.ir.ops.quant import (
    QCONV_ATTRS,
    REQUANT_ATTRS,
    check_bounds,
    conv_acc,
    expect_q,
    per_channel,
    requant_epilogue,
)
from irc.ir.ops.registry import Attr, Trait, defop, get_op, same_dtype
from irc.ir.types import DType, TensorType

# ---------------------------------------------------------------------------- float: gemm_packed, conv_gemm


def pack_panels(mat: np.ndarray, width: int) -> np.ndarray:
    """[R, K] -> [ceil(R/width), K, width]: row panels, zero padded, K-major inside a panel."""
    r, k = mat.shape
    panels = math.ceil(r / width) if r else 0
    out = np.empty((panels, k, width), mat.dtype)  # written once: no padded copy of ``mat`` first
    full = r // width
    out[:full] = mat[:full * width].reshape(full, width, k).transpose(0, 2, 1)
    if full < panels:
        out[full] = 0
        out[full, :, :r - full * width] = mat[full * width:].T
    return out


def unpack_panels(packed: np.ndarray, rows: int) -> np.ndarray:
    """Inverse of pack_panels: [P, K, width] -> [rows, K]."""
    p, k, width = packed.shape
    return packed.transpose(0, 2, 1).reshape(p * width, k)[:rows]


@defop("gemm_packed", ("a", "bp", "bias?", "residual?"), {"n": Attr("int"), **EPILOGUE_ATTRS},
       traits=(Trait.LINALG, Trait.FUSED, Trait.LOWERED))
class GemmPacked:
    """act(a @ B + bias + residual) with B [K, n] stored packed: bp = pack_panels(B.T, NR), i.e.
    [ceil(n/NR), K, NR]. The micro-kernel streams one NR-wide panel of B per tile."""

    def infer(a, bp, bias=None, residual=None, *, n, act, act_alpha, act_beta):
        same_dtype(a, bp, *(t for t in (bias, residual) if t is not None))
        if a.rank != 2 or bp.rank != 3 or bp.shape[1] != a.shape[1] or bp.shape[0] * bp.shape[2] < n:
            raise ShapeError(f"a [M, K] and packed b [panels, K, NR] covering {n} columns expected, got {a} and {bp}")
        out = TensorType((a.shape[0], n), a.dtype)
        check_extra(out, bias, residual, n)
        return out

    cost = costs.matmul

    def reference(a, bp, bias=None, residual=None, *, n, act, act_alpha, act_beta):
        b = unpack_panels(bp, n).T
        y = get_op("matmul").reference(a, np.ascontiguousarray(b))
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


@defop("conv_gemm", ("x", "wp", "bias?", "residual?"),
       {"kernel_shape": Attr("ints"), "cout": Attr("int"), **CONV_ATTRS, **EPILOGUE_ATTRS},
       traits=(Trait.CONV, Trait.FUSED, Trait.LOWERED))
class ConvGemm:
    """A 2-D convolution as im2col + GEMM: per group g, W_g [Cout/group, Cin/group*kh*kw] is the
    GEMM's left operand stored packed, wp[g] = pack_panels(W_g, MR) -> wp [group, panels, K, MR];
    the im2col matrix of x is the right operand (formed while packing, never stored whole)."""

    def infer(x, wp, bias=None, residual=None, *, kernel_shape, cout, strides, pads, dilations, group,
              act, act_alpha, act_beta):
        if x.rank != 4 or wp.rank != 4 or len(kernel_shape) != 2:
            raise ShapeError(f"conv_gemm is 2-D: x [N, C, H, W] and wp [group, panels, K, MR], got {x} and {wp}")
        cin_g = x.shape[1] // group
        k = cin_g * kernel_shape[0] * kernel_shape[1]
        if wp.shape[0] != group or wp.shape[2] != k or wp.shape[1] * wp.shape[3] < cout // group:
            raise ShapeError(f"packed weights {wp} do not match {group} group(s) of {cout // group} rows x {k}")
        w = TensorType((cout, cin_g, *kernel_shape), x.dtype)
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=strides, pads=pads, dilations=dilations, group=group))
        same_dtype(x, wp, *(t for t in (bias, residual) if t is not None))
        check_extra(out, bias, residual, cout)
        return out

    cost = costs.conv_gemm

    def reference(x, wp, bias=None, residual=None, *, kernel_shape, cout, strides, pads, dilations, group,
                  act, act_alpha, act_beta):
        cin_g = x.shape[1] // group
        w = np.concatenate([unpack_panels(wp[g], cout // group) for g in range(group)])
        w = w.reshape(cout, cin_g, *kernel_shape)
        y = get_op("conv").reference(x, w, strides=strides, pads=pads, dilations=dilations, group=group)
        return apply_epilogue(y, bias, residual, act, act_alpha, act_beta, 1)


#: How pack_conv_weights reads its weights (see conv_weight_matrices).
PACK_LAYOUTS = ("conv", "flipped", "taps")


@defop("pack_conv_weights", ("w",), {"mr": Attr("int"), "group": Attr("int", 1),
                                     "layout": Attr("str", "conv", PACK_LAYOUTS)},
       traits=(Trait.LOWERED,))
class PackConvWeights:
    """Run-time weights of a convolution packed as a GEMM's left operand, [group, panels, K, MR]
    (pack_panels of each group's matrix; ``layout`` names the matrix, see conv_weight_matrices).
    A train step's weights change every step, so they are packed once per step: Cout*K copies
    against the GEMM's N*P*Cout*K multiply-adds."""

    cost = costs.free  # a copy: no arithmetic (its bytes are the GEMM's weights, read once more)

    def infer(w, *, mr, group, layout):
        if w.rank != 4 or mr < 1 or group < 1 or (w.shape[0] % group):
            raise ShapeError(f"pack_conv_weights takes 2-D conv weights [O, I, kh, kw] with O divisible by "
                             f"{group} group(s) and mr >= 1, got {w} and mr {mr}")
        rows, k = conv_matrix_shape(w.shape, group, layout)
        return TensorType((group, -(-rows // mr), k, mr), w.dtype)

    def reference(w, *, mr, group, layout):
        return np.stack([pack_panels(m, mr) for m in conv_weight_matrices(w, group, layout)])


def conv_matrix_shape(shape, group: int, layout: str) -> tuple[int, int]:
    """(rows, K) of one group's GEMM weight matrix (see conv_weight_matrices)."""
    o, i, kh, kw = shape
    if layout == "conv":
        return o // group, i * kh * kw
    if layout == "flipped":
        return i, (o // group) * kh * kw
    return i * kh * kw, o // group


def conv_weight_matrices(w: np.ndarray, group: int, layout: str) -> list[np.ndarray]:
    """Each group's GEMM weight matrix W_g:

    - ``conv``: conv weights w [Cout, Cin/g, kh, kw] as rows, W_g [Cout/g, Cin/g*kh*kw];
    - ``flipped``: a stride-1 conv_transpose's weights w [C, M/g, kh, kw] as those of the equal
      convolution, W_g[m, (c, dy, dx)] = w[g*C/g + c, m, kh-1-dy, kw-1-dx];
    - ``taps``: a conv_transpose's weights as the GEMM that makes its columns before col2im,
      W_g[(m, dy, dx), c] = w[g*C/g + c, m, dy, dx]."""
    o, i = w.shape[:2]
    og = o // group
    if layout == "conv":
        return [w[g * og:(g + 1) * og].reshape(og, -1) for g in range(group)]
    if layout == "flipped":
        flipped = w[:, :, ::-1, ::-1]
        return [np.ascontiguousarray(flipped[g * og:(g + 1) * og].transpose(1, 0, 2, 3)).reshape(i, -1)
                for g in range(group)]
    return [np.ascontiguousarray(w[g * og:(g + 1) * og].reshape(og, -1).T) for g in range(group)]


@defop("conv_transpose_gemm", ("x", "wp", "bias?"),
       {"kernel_shape": Attr("ints"), "cout": Attr("int"), **CONV_ATTRS, "output_padding": Attr("ints")},
       traits=(Trait.CONV, Trait.LOWERED))
class ConvTransposeGemm:
    """A 2-D conv_transpose as GEMM + col2im: per image and group, the columns [M/g*kh*kw, H*W] =
    W_g @ x_g (W_g the ``taps`` matrix of conv_weight_matrices, stored packed: wp [group, panels,
    C/g, MR]), then each column row added into the output at its tap's offset (col2im)."""

    def infer(x, wp, bias=None, *, kernel_shape, cout, strides, pads, dilations, group, output_padding):
        if x.rank != 4 or wp.rank != 4 or len(kernel_shape) != 2:
            raise ShapeError(f"conv_transpose_gemm is 2-D: x [N, C, H, W] and wp [group, panels, K, MR], got {x} and {wp}")
        cg = x.shape[1] // group
        rows = cout // group * kernel_shape[0] * kernel_shape[1]
        if wp.shape[0] != group or wp.shape[2] != cg or wp.shape[1] * wp.shape[3] < rows:
            raise ShapeError(f"packed weights {wp} do not match {group} group(s) of {rows} rows x {cg}")
        w = TensorType((x.shape[1], cout // group, *kernel_shape), x.dtype)
        args = [x, w] + ([bias] if bias is not None else [])
        _, (out,) = get_op("conv_transpose").type_check(args, dict(strides=strides, pads=pads, dilations=dilations,
                                                                   group=group, output_padding=output_padding))
        same_dtype(x, wp)
        return out

    cost = costs.conv_gemm

    def reference(x, wp, bias=None, *, kernel_shape, cout, strides, pads, dilations, group, output_padding):
        mg, kh, kw = cout // group, *kernel_shape
        mats = [unpack_panels(wp[g], mg * kh * kw) for g in range(group)]  # [(m, dy, dx), c]
        w = np.concatenate([m.T.reshape(-1, mg, kh, kw) for m in mats])
        return get_op("conv_transpose").reference(x, w, *([bias] if bias is not None else []), strides=strides,
                                                  pads=pads, dilations=dilations, group=group,
                                                  output_padding=output_padding)


@defop("conv_dot", ("x", "w"), dict(CONV_ATTRS), traits=(Trait.CONV, Trait.LOWERED))
class ConvDot:
    """A 2-D convolution whose kernel window is larger than its output (the weight-gradient
    convolutions of a train step: dy is the kernel, the kernel taps the output), computed as dot
    products along the window: y[b, m, q] = sum over (c, t) of w[m, c, t] * x_window(b, q)[c, t],
    rows of w read in place, the windows of x gathered into a buffer chunk by chunk."""

    def infer(x, w, *, strides, pads, dilations, group):
        if x.rank != 4:
            raise ShapeError(f"conv_dot is 2-D: x [N, C, H, W], got {x}")
        _, (out,) = get_op("conv").type_check([x, w], dict(strides=strides, pads=pads, dilations=dilations, group=group))
        return out

    cost = costs.conv

    def reference(x, w, *, strides, pads, dilations, group):
        return get_op("conv").reference(x, w, strides=strides, pads=pads, dilations=dilations, group=group)


# ----------------------------------------------------------------------------------------
# int8: qgemm_packed, qconv_gemm (lowering/int8_gemm.py): weights packed for the u8 x s8 -> s32 GEMM micro-kernel.
#
# The GEMM takes unsigned bytes u on one side and signed bytes on the other (x86's vpdpbusd /
# pmaddwd). An i8 activation becomes u = x + 128 (``*_offset`` = 128; u8 inputs have offset 0)
# and the zero point moves into the bias: sum((x - zp) * w) = sum(u * w) - (zp + offset) * sum(w),
# so ``bias`` here is the effective bias, bias - (zp + offset) * sum(w) per output channel.
# Products of 4 consecutive k are summed into one int32 lane, so K is padded to K4 = ceil(K/4)
# groups of 4 (with zero weights) and weights are stored [.., K4, lanes, 4].


def pack_rows4(w: np.ndarray, mr: int) -> np.ndarray:
    """[R, K] int8 -> [ceil(R/mr), K4, mr, 4]: row panels of mr rows, k in groups of 4, zero padded."""
    r, k = w.shape
    k4 = -(-k // 4)
    panels = -(-r // mr) if r else 0
    padded = np.zeros((panels * mr, k4 * 4), np.int8)
    padded[:r, :k] = w
    return np.ascontiguousarray(padded.reshape(panels, mr, k4, 4).transpose(0, 2, 1, 3))


def unpack_rows4(p: np.ndarray, rows: int, k: int) -> np.ndarray:
    """Inverse of pack_rows4: [panels, K4, mr, 4] -> [rows, k]."""
    panels, k4, mr, _ = p.shape
    return p.transpose(0, 2, 1, 3).reshape(panels * mr, k4 * 4)[:rows, :k]


def _check_offset(t: TensorType, offset: int, what: str) -> None:
    if offset != (128 if t.dtype is DType.i8 else 0):
        raise ShapeError(f"{what} must be 128 for i8 and 0 for u8 data, got {offset} for {t}")


@defop("qgemm_packed", ("a", "wp", "bias", "multiplier", "shift"),
       {"n": Attr("int"), "a_offset": Attr("int", 0), "isa": Attr("str", "vnni512"), **REQUANT_ATTRS},
       traits=(Trait.LINALG, Trait.QUANT, Trait.LOWERED))
class QGemmPacked:
    """qgemm for the CPU: acc[i, j] = sum_k (a[i, k] + a_offset) * W[k, j] + bias[j] (int32), W
    [K, n] stored column panels wp = pack_rows4(W.T, NR) [ceil(n/NR), K4, NR, 4]; bias, multiplier,
    shift padded to ceil(n/NR)*NR; y = requantize(acc, multiplier[j], shift[j], ...). ``isa``
    names the micro-kernel (vnni512 or pmaddwd512/256/128)."""

    def infer(a, wp, bias, multiplier, shift, *, n, a_offset, isa, y_zero_point, y_dtype, y_min, y_max, y_scale):
        expect_q(a, "a")
        _check_offset(a, a_offset, "a_offset")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        if a.rank != 2 or wp.dtype is not DType.i8 or wp.rank != 4 or wp.shape[1] != -(-a.shape[1] // 4) \
                or wp.shape[3] != 4 or wp.shape[0] * wp.shape[2] < n:
            raise ShapeError(f"a [M, K] and packed weights i8[panels, ceil(K/4), NR, 4] covering {n} columns "
                             f"expected, got {a} and {wp}")
        for t, what in ((bias, "bias"), (multiplier, "multiplier"), (shift, "shift")):
            per_channel(t, wp.shape[0] * wp.shape[2], what)
        return TensorType((a.shape[0], n), y_dtype)

    cost = costs.matmul

    def reference(a, wp, bias, multiplier, shift, *, n, a_offset, isa, y_zero_point, y_dtype, y_min, y_max,
                  y_scale):
        w = unpack_rows4(wp, n, a.shape[1]).T
        acc = (a.astype(np.float64) + a_offset) @ w.astype(np.float64)
        acc = acc.astype(np.int64) + bias[:n].astype(np.int64)
        return requant_epilogue(acc, multiplier[:n], shift[:n], 1, 2, y_zero_point, y_min, y_max, y_dtype)


@defop("qconv_gemm", ("x", "wp", "bias", "multiplier", "shift"),
       {"kernel_shape": Attr("ints"), "cout": Attr("int"), **QCONV_ATTRS, "x_offset": Attr("int", 0),
        "pad_value": Attr("int", 0), "isa": Attr("str", "vnni512"), **REQUANT_ATTRS},
       traits=(Trait.CONV, Trait.QUANT, Trait.LOWERED))
class QConvGemm:
    """qconv for the CPU as im2col + GEMM (2-D): u = x + x_offset, padded with ``pad_value``
    (the zero point plus the offset: real zero); acc[n, m] = sum(u * w) + bias[m] (int32), y =
    requantize(acc, multiplier[m], shift[m], ...). Per group g the weights W_g [Cout/group, K]
    (K = Cin/group*kh*kw) are stored wp[g] = pack_rows4(W_g, MR): wp [group, panels, K4, MR, 4]."""

    def infer(x, wp, bias, multiplier, shift, *, kernel_shape, cout, strides, pads, dilations, group, x_offset,
              pad_value, isa, y_zero_point, y_dtype, y_min, y_max, y_scale):
        expect_q(x, "x")
        _check_offset(x, x_offset, "x_offset")
        if x.rank != 4 or len(kernel_shape) != 2 or wp.rank != 5 or wp.dtype is not DType.i8 or wp.shape[4] != 4:
            raise ShapeError(f"qconv_gemm is 2-D: x [N, C, H, W] and wp i8[group, panels, K4, MR, 4], got {x} and {wp}")
        if not 0 <= pad_value <= 255:
            raise ShapeError(f"pad_value {pad_value} must be an unsigned byte")
        check_bounds(y_min, y_max, y_zero_point, y_dtype)
        cin_g = x.shape[1] // group
        k4 = -(-(cin_g * kernel_shape[0] * kernel_shape[1]) // 4)
        if wp.shape[0] != group or wp.shape[2] != k4 or wp.shape[1] * wp.shape[3] < cout // group:
            raise ShapeError(f"packed weights {wp} do not match {group} group(s) of {cout // group} rows x {k4} k-groups")
        w = TensorType((cout, cin_g, *kernel_shape), DType.f32)
        _, (out,) = get_op("conv").type_check([x.with_dtype(DType.f32), w],
                                              dict(strides=strides, pads=pads, dilations=dilations, group=group))
        for t, what in ((bias, "bias"), (multiplier, "multiplier"), (shift, "shift")):
            per_channel(t, cout, what)
        return out.with_dtype(y_dtype)

    cost = costs.conv_gemm

    def reference(x, wp, bias, multiplier, shift, *, kernel_shape, cout, strides, pads, dilations, group, x_offset,
                  pad_value, isa, y_zero_point, y_dtype, y_min, y_max, y_scale):
        cin_g = x.shape[1] // group
        k = cin_g * kernel_shape[0] * kernel_shape[1]
        w = np.concatenate([unpack_rows4(wp[g], cout // group, k) for g in range(group)])
        w = w.reshape(cout, cin_g, *kernel_shape)
        acc = conv_acc(x, -x_offset, w, strides=strides, pads=pads, dilations=dilations, group=group,
                       pad_value=pad_value - x_offset)
        acc = acc.astype(np.int64) + bias.astype(np.int64).reshape(-1, 1, 1)
        return requant_epilogue(acc, multiplier, shift, 1, 4, y_zero_point, y_min, y_max, y_dtype)
