"""Convolutions over N spatial dimensions: ``conv`` and ``conv_transpose`` (layout N, C, spatial...).

Attributes are always explicit once a node exists: ``strides``, ``dilations`` (one per spatial
axis), ``pads`` in ONNX layout ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` and ``group``.
ONNX's auto_pad, output_shape and missing kernel_shape are turned into these at import, so a
backend never re-derives padding. The references double as the oracle for the im2col lowering:
conv pads, takes every window as a strided view and contracts with einsum (as JAX's
``lax_reference._conv``); conv_transpose is its adjoint, a scatter-add of per-tap products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, Trait, defop, expect_float, same_dtype
from irc.ir.types import DType, TensorType

# ----------------------------------------------------------------------------------------
# Helpers shared with pool.py (spatial attributes, output sizes, window views).


def spatial_rank(x: TensorType, what: str = "input") -> int:
    """Number of spatial axes of an (N, C, spatial...) tensor; ShapeError below rank 3."""
    if x.rank < 3:
        raise ShapeError(f"{what} must be (N, C, spatial...) with at least one spatial axis, got {x}")
    return x.rank - 2


def fill_spatial(n: int, strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int]) -> dict:
    """strides, pads and dilations with empty (unset) ones filled with their defaults."""
    return {
        "strides": tuple(strides) or (1,) * n,
        "pads": tuple(pads) or (0,) * (2 * n),
        "dilations": tuple(dilations) or (1,) * n,
    }


def check_spatial(n: int, strides, pads, dilations, kernel=None) -> None:
    """ShapeError unless each spatial attribute has one (pads: two) positive entries per axis."""
    for name, vals, want, lo in (("strides", strides, n, 1), ("dilations", dilations, n, 1), ("pads", pads, 2 * n, 0)):
        if len(vals) != want:
            raise ShapeError(f"{name} {list(vals)} must have {want} entries ({n} spatial axes)")
        if any(v < lo for v in vals):
            raise ShapeError(f"{name} {list(vals)} must all be >= {lo}")
    if kernel is not None:
        if len(kernel) != n:
            raise ShapeError(f"kernel_shape {list(kernel)} must have {n} entries ({n} spatial axes)")
        if any(k < 1 for k in kernel):
            raise ShapeError(f"kernel_shape {list(kernel)} must all be >= 1")


def dilated(k: int, d: int) -> int:
    """Extent of a kernel of k taps spaced d apart."""
    return (k - 1) * d + 1


def window_count(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool = False) -> int:
    """Number of windows along one axis: floor (or ceil) of (size + pads - dilated kernel) / stride + 1.
    With ceil_mode a last window that would start past the input and its left padding is dropped
    (ONNX and onnxruntime agree on this)."""
    span = size + pb + pe - dilated(k, d)
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + pb:
        out -= 1
    return out


def windows(x: np.ndarray, kernel, strides, pads, dilations, out, fill) -> np.ndarray:
    """A view (N, C, out..., kernel...) of every window of ``x`` padded with ``fill``: element
    [n, c, o..., j...] is x[n, c, o*s - pad_begin + j*d] (``fill`` outside the input)."""
    n = len(kernel)
    need = [(o - 1) * s + dilated(k, d) for o, k, s, d in zip(out, kernel, strides, dilations)]
    widths = [(0, 0), (0, 0)]
    crop = [slice(None), slice(None)]
    for i in range(n):
        pb, size = pads[i], x.shape[2 + i]
        end = need[i] - size - pb  # < 0 when the last window ends before the input does
        widths.append((pb, max(end, 0)))
        crop.append(slice(0, need[i]))
    if any(w != (0, 0) for w in widths):
        x = np.pad(x, widths, constant_values=fill)
    x = x[tuple(crop)]
    v = sliding_window_view(x, [dilated(k, d) for k, d in zip(kernel, dilations)], axis=tuple(range(2, 2 + n)))
    sel = (slice(None), slice(None), *(slice(None, None, s) for s in strides), *(slice(None, None, d) for d in dilations))
    return v[sel]


def is_float(dt: np.dtype) -> bool:
    """True for every float type numpy knows, bfloat16 (a numpy 'V' kind) included."""
    return DType.from_numpy(dt).is_float


def accumulator(dt: np.dtype) -> np.dtype:
    """Half-precision data is accumulated in float32, as every backend does."""
    return np.dtype(np.float32) if is_float(dt) and np.dtype(dt).itemsize < 4 else np.dtype(dt)


def _check_operands(x: TensorType, w: TensorType, b: TensorType | None, layout: str, strides, pads, dilations) -> int:
    """Checks shared by conv and conv_transpose (weights laid out as ``layout``); the spatial rank."""
    n = spatial_rank(x)
    expect_float(x)
    same_dtype(x, w, *([b] if b is not None else []))
    if w.rank != x.rank:
        raise ShapeError(f"weights must be ({layout}, kernel...) of rank {x.rank} like x {x}, got {w}")
    check_spatial(n, strides, pads, dilations)
    return n


def _check_bias(b: TensorType | None, m: int) -> None:
    if b is not None and b.shape != (m,):
        raise ShapeError(f"bias {b} must have shape [{m}] (one value per output channel)")


_CONV_ATTRS = {
    "strides": Attr("ints", ()),
    "pads": Attr("ints", ()),
    "dilations": Attr("ints", ()),
    "group": Attr("int", 1),
}


@defop("conv", ("x", "w", "b?"), _CONV_ATTRS, traits=(Trait.CONV, Trait.BATCH_FREE))
class Conv:
    """Cross-correlation of x (N, C, spatial...) with w (M, C/group, kernel...), plus bias b (M);
    channels split into ``group`` independent groups (group = C is depthwise)."""

    def resolve(x, w, b=None, *, strides, pads, dilations, group):
        return {**fill_spatial(spatial_rank(x), strides, pads, dilations), "group": group}

    def infer(x, w, b=None, *, strides, pads, dilations, group):
        n = _check_operands(x, w, b, "M, C/group", strides, pads, dilations)
        c, m, kernel = x.shape[1], w.shape[0], w.shape[2:]
        if group < 1 or c % group or m % group:
            raise ShapeError(f"group {group} must divide both the input channels ({c}) and the output channels ({m})")
        if w.shape[1] * group != c:
            raise ShapeError(
                f"weights {w} have {w.shape[1]} input channels per group; x has {c} channels in {group} "
                f"group(s), so expected {c // group}"
            )
        _check_bias(b, m)
        out = []
        for i in range(n):
            o = window_count(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[n + i], dilations[i])
            if o < 1:
                raise ShapeError(
                    f"spatial axis {i}: kernel extent {dilated(kernel[i], dilations[i])} exceeds the padded "
                    f"input ({x.shape[2 + i]} + pads {pads[i]}+{pads[n + i]})"
                )
            out.append(o)
        return TensorType((x.shape[0], m, *out), x.dtype)

    def reference(x, w, b=None, *, strides, pads, dilations, group):
        n = x.ndim - 2
        acc = accumulator(x.dtype)
        kernel = w.shape[2:]
        out = [window_count(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[n + i], dilations[i]) for i in range(n)]
        win = windows(x.astype(acc, copy=False), kernel, strides, pads, dilations, out, 0)
        nb, c = x.shape[:2]
        m = w.shape[0]
        win = win.reshape(nb, group, c // group, *win.shape[2:])
        wg = w.astype(acc, copy=False).reshape(group, m // group, c // group, *kernel)
        # Subscripts: 0 batch, 1 group, 2 in-channel, 3 out-channel, then spatial out, then kernel taps.
        so = list(range(4, 4 + n))
        sk = list(range(4 + n, 4 + 2 * n))
        y = np.einsum(win, [0, 1, 2, *so, *sk], wg, [1, 3, 2, *sk], [0, 1, 3, *so], optimize=True)
        y = y.reshape(nb, m, *out)
        if b is not None:
            y = y + b.astype(acc, copy=False).reshape(m, *(1,) * n)
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))

    cost = costs.conv


@defop("conv_transpose", ("x", "w", "b?"), {**_CONV_ATTRS, "output_padding": Attr("ints", ())},
       traits=(Trait.CONV, Trait.BATCH_FREE))
class ConvTranspose:
    """The adjoint of conv (a.k.a. deconvolution): x (N, C, spatial...), w (C, M/group, kernel...),
    bias b (M). Output size per axis: stride*(in-1) + output_padding + dilated kernel - pads."""

    def resolve(x, w, b=None, *, strides, pads, dilations, group, output_padding):
        n = spatial_rank(x)
        return {**fill_spatial(n, strides, pads, dilations), "group": group,
                "output_padding": tuple(output_padding) or (0,) * n}

    def infer(x, w, b=None, *, strides, pads, dilations, group, output_padding):
        n = _check_operands(x, w, b, "C, M/group", strides, pads, dilations)
        if len(output_padding) != n or any(p < 0 for p in output_padding):
            raise ShapeError(f"output_padding {list(output_padding)} must have {n} entries >= 0")
        c, kernel = x.shape[1], w.shape[2:]
        if group < 1 or c % group:
            raise ShapeError(f"group {group} must divide the input channels ({c})")
        if w.shape[0] != c:
            raise ShapeError(f"weights {w} must have {c} input channels first (x is {x}), got {w.shape[0]}")
        m = w.shape[1] * group
        _check_bias(b, m)
        out = []
        for i in range(n):
            full = strides[i] * (x.shape[2 + i] - 1) + output_padding[i] + dilated(kernel[i], dilations[i])
            o = full - pads[i] - pads[n + i]
            if o < 1:
                raise ShapeError(f"spatial axis {i}: pads {pads[i]}+{pads[n + i]} leave no output of the {full} computed")
            out.append(o)
        return TensorType((x.shape[0], m, *out), x.dtype)

    def reference(x, w, b=None, *, strides, pads, dilations, group, output_padding):
        n = x.ndim - 2
        acc = accumulator(x.dtype)
        nb, c = x.shape[:2]
        size, kernel = x.shape[2:], w.shape[2:]
        mg = w.shape[1]
        xg = x.astype(acc, copy=False).reshape(nb, group, c // group, *size)
        wg = w.astype(acc, copy=False).reshape(group, c // group, mg, *kernel)
        # Every input element times every tap, then each tap's products added at its offset.
        ss = list(range(4, 4 + n))
        sk = list(range(4 + n, 4 + 2 * n))
        taps = np.einsum(xg, [0, 1, 2, *ss], wg, [1, 2, 3, *sk], [0, 1, 3, *sk, *ss], optimize=True)
        full = [s * (i - 1) + op + dilated(k, d) for s, i, op, k, d in zip(strides, size, output_padding, kernel, dilations)]
        y = np.zeros((nb, group, mg, *full), acc)
        for tap in np.ndindex(*kernel):
            dst = tuple(slice(j * d, j * d + s * (i - 1) + 1, s) for j, d, s, i in zip(tap, dilations, strides, size))
            y[(slice(None),) * 3 + dst] += taps[(slice(None),) * 3 + tap]
        y = y.reshape(nb, group * mg, *full)
        y = y[(slice(None), slice(None), *(slice(pads[i], full[i] - pads[n + i]) for i in range(n)))]
        if b is not None:
            y = y + b.astype(acc, copy=False).reshape(group * mg, *(1,) * n)
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))

    def cost(n):
        """Weight (Cin, Cout/group, *kernel): each input element scatters into Cout/group * prod(kernel)."""
        return costs.contraction(n, n.inputs[0].type.size * math.prod(n.inputs[1].shape[1:]))
