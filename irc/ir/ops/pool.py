"""Pooling over the spatial axes of (N, C, spatial...) tensors: windowed max and average, and
their global forms. Windows follow conv's conventions (conv.py): explicit strides, dilations and
ONNX-layout pads. ``ceil_mode`` adds a last, partial window when it starts inside the input or
its left padding; the part of such a window past the padded input counts for nothing, not even
for ``count_include_pad``.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.conv import accumulator, check_spatial, dilated, fill_spatial, is_float, spatial_rank, window_count, windows
from irc.ir.ops.registry import Attr, Trait, defop, expect_float
from irc.ir.types import DType


def _pool_resolve(x, kernel_shape, strides, pads, dilations, **rest):
    return {"kernel_shape": kernel_shape, **fill_spatial(spatial_rank(x), strides, pads, dilations), **rest}


def _pool_infer(x, kernel_shape, strides, pads, dilations, ceil_mode):
    n = spatial_rank(x)
    check_spatial(n, strides, pads, dilations, kernel_shape)
    out = []
    for i in range(n):
        o = window_count(x.shape[2 + i], kernel_shape[i], strides[i], pads[i], pads[n + i], dilations[i], bool(ceil_mode))
        if o < 1:
            raise ShapeError(
                f"spatial axis {i}: window extent {dilated(kernel_shape[i], dilations[i])} exceeds the padded "
                f"input ({x.shape[2 + i]} + pads {pads[i]}+{pads[n + i]})"
            )
        out.append(o)
    return x.with_shape((*x.shape[:2], *out))


def _out_sizes(x, kernel_shape, strides, pads, dilations, ceil_mode):
    n = x.ndim - 2
    return [window_count(x.shape[2 + i], kernel_shape[i], strides[i], pads[i], pads[n + i], dilations[i], bool(ceil_mode))
            for i in range(n)]


def _taps_inside(shape, kernel, strides, pads, dilations, out, include_pad: bool) -> list[np.ndarray]:
    """Per spatial axis, how many taps of each window fall inside the input (or, with
    ``include_pad``, inside the input and its explicit padding). A window is a box, so the count
    for a whole window is the product over axes."""
    n = len(kernel)
    counts = []
    for i in range(n):
        size, pb, pe = shape[2 + i], pads[i], pads[n + i]
        lo, hi = (-pb, size + pe) if include_pad else (0, size)
        pos = np.arange(out[i])[:, None] * strides[i] - pb + np.arange(kernel[i])[None, :] * dilations[i]
        counts.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    return counts


def _outer(counts: list[np.ndarray]) -> np.ndarray:
    total = np.ones((), np.int64)
    for c in counts:
        total = np.multiply.outer(total, c)
    return total


_WINDOW_ATTRS = {
    "kernel_shape": Attr("ints"),
    "strides": Attr("ints", ()),
    "pads": Attr("ints", ()),
    "dilations": Attr("ints", ()),
    "ceil_mode": Attr("int", 0, (0, 1)),
}


@defop("max_pool", ("x",), {**_WINDOW_ATTRS, "storage_order": Attr("int", 0, (0, 1))}, traits=(Trait.POOL, Trait.BATCH_FREE))
class MaxPool:
    """Maximum over each window; padding never wins. ``storage_order`` only matters for ONNX's
    Indices output, which irc does not produce; it is kept so that export gives it back."""

    def resolve(x, *, kernel_shape, strides, pads, dilations, ceil_mode, storage_order):
        return _pool_resolve(x, kernel_shape, strides, pads, dilations, ceil_mode=ceil_mode, storage_order=storage_order)

    def infer(x, *, kernel_shape, strides, pads, dilations, ceil_mode, storage_order):
        if x.dtype is DType.bool:
            raise ShapeError(f"input must be numeric, got {x}")
        return _pool_infer(x, kernel_shape, strides, pads, dilations, ceil_mode)

    def reference(x, *, kernel_shape, strides, pads, dilations, ceil_mode, storage_order):
        out = _out_sizes(x, kernel_shape, strides, pads, dilations, ceil_mode)
        low = -np.inf if is_float(x.dtype) else np.iinfo(x.dtype).min
        win = windows(x, kernel_shape, strides, pads, dilations, out, low)
        n = len(kernel_shape)
        y = win.max(axis=tuple(range(-n, 0)))
        # A window holding no input element gives the lowest finite value, as onnxruntime does.
        counts = _taps_inside(x.shape, kernel_shape, strides, pads, dilations, out, False)
        if any((c == 0).any() for c in counts):
            lowest = ml_dtypes.finfo(x.dtype).min if is_float(x.dtype) else low
            y = np.where(_outer(counts) > 0, y, np.asarray(lowest, x.dtype))
        return np.ascontiguousarray(y)

    def cost(n):
        """One compare per window element per output."""
        return costs.Cost(0, n.outputs[0].type.size * costs.window(n))


@defop("average_pool", ("x",), {**_WINDOW_ATTRS, "count_include_pad": Attr("int", 0, (0, 1))},
       traits=(Trait.POOL, Trait.BATCH_FREE))
class AveragePool:
    """Mean over each window: of its input elements only, or (count_include_pad) of its input and
    explicit-padding elements, padding counting as zero."""

    def resolve(x, *, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad):
        return _pool_resolve(x, kernel_shape, strides, pads, dilations, ceil_mode=ceil_mode,
                             count_include_pad=count_include_pad)

    def infer(x, *, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad):
        expect_float(x)
        return _pool_infer(x, kernel_shape, strides, pads, dilations, ceil_mode)

    def reference(x, *, kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad):
        out = _out_sizes(x, kernel_shape, strides, pads, dilations, ceil_mode)
        acc = accumulator(x.dtype)
        n = len(kernel_shape)
        win = windows(x.astype(acc, copy=False), kernel_shape, strides, pads, dilations, out, 0)
        total = win.sum(axis=tuple(range(-n, 0)))
        count = _outer(_taps_inside(x.shape, kernel_shape, strides, pads, dilations, out, bool(count_include_pad)))
        # A window holding no element at all (dilation can step over a short input) averages to 0.
        y = np.where(count > 0, total / np.maximum(count, 1).astype(acc), 0)
        return np.ascontiguousarray(y.astype(x.dtype, copy=False))

    def cost(n):
        """One add per window element plus one divide per output."""
        return costs.Cost(0, n.outputs[0].type.size * (costs.window(n) + 1))


def _global_infer(x):
    spatial_rank(x)
    return x.with_shape((*x.shape[:2], *(1,) * (x.rank - 2)))


@defop("global_average_pool", ("x",), traits=(Trait.POOL, Trait.BATCH_FREE))
class GlobalAveragePool:
    """Mean over all spatial axes, kept as size-1 axes: (N, C, 1, ...)."""

    def infer(x):
        expect_float(x)
        return _global_infer(x)

    def reference(x):
        acc = accumulator(x.dtype)
        y = x.astype(acc, copy=False).mean(axis=tuple(range(2, x.ndim)), keepdims=True)
        return y.astype(x.dtype, copy=False)

    cost = costs.reduce_mean


@defop("global_max_pool", ("x",), traits=(Trait.POOL, Trait.BATCH_FREE))
class GlobalMaxPool:
    """Maximum over all spatial axes, kept as size-1 axes: (N, C, 1, ...)."""

    def infer(x):
        if x.dtype is DType.bool:
            raise ShapeError(f"input must be numeric, got {x}")
        return _global_infer(x)

    def reference(x):
        return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)

    cost = costs.per_input
