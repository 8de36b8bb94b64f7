"""Ops that only backward graphs use: the gradients that cannot be written exactly with other ops.

Most gradient rules (passes/grads) are compositions of ordinary ops: a conv's data gradient is a
conv_transpose, its weight gradient a conv over the batch axis, an average pool's gradient a
depthwise conv_transpose of ones. Max pooling is the exception: its gradient routes each output's
cotangent to the one input element that won its window, which no combination of existing ops
expresses exactly when windows overlap or hold ties. ``max_pool_grad`` is that routing.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.conv import is_float, windows
from irc.ir.ops.pool import _WINDOW_ATTRS, _out_sizes, _pool_infer, _pool_resolve
from irc.ir.ops.registry import Trait, defop, expect_float, same_dtype


@defop("max_pool_grad", ("x", "dy"), dict(_WINDOW_ATTRS), traits=(Trait.POOL, Trait.GRAD))
class MaxPoolGrad:
    """Gradient of max_pool (same window attributes) with respect to its input x: dy[n, c, o...]
    is added to dx at the position of the largest element of window o; of equal elements the
    first in row-major window order wins; a window lying wholly in the padding sends nothing.
    dx has x's shape; dy has max_pool(x)'s shape."""

    def resolve(x, dy, *, kernel_shape, strides, pads, dilations, ceil_mode):
        return _pool_resolve(x, kernel_shape, strides, pads, dilations, ceil_mode=ceil_mode)

    def infer(x, dy, *, kernel_shape, strides, pads, dilations, ceil_mode):
        expect_float(x)
        same_dtype(x, dy)
        y = _pool_infer(x, kernel_shape, strides, pads, dilations, ceil_mode)
        if dy.shape != y.shape:
            raise ShapeError(f"dy {dy} must have the shape of max_pool(x), {list(y.shape)}")
        return x

    def reference(x, dy, *, kernel_shape, strides, pads, dilations, ceil_mode):
        n = len(kernel_shape)
        out = _out_sizes(x, kernel_shape, strides, pads, dilations, ceil_mode)
        low = -np.inf if is_float(x.dtype) else np.iinfo(x.dtype).min
        win = windows(x, kernel_shape, strides, pads, dilations, out, low)
        flat = win.reshape(*win.shape[: 2 + n], -1)
        arg = flat.argmax(axis=-1)  # first maximum in row-major tap order
        taps = np.unravel_index(arg, kernel_shape)
        grid = np.meshgrid(*(np.arange(o) for o in out), indexing="ij")
        coords = []
        inside = np.ones(arg.shape, bool)
        for i in range(n):
            pos = grid[i][None, None] * strides[i] - pads[i] + taps[i] * dilations[i]
            inside &= (pos >= 0) & (pos < x.shape[2 + i])
            coords.append(pos)
        # A window entirely in the padding has its "max" at a padding tap: nothing to route.
        inside &= np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0] != low
        nb, c = x.shape[:2]
        bi = np.broadcast_to(np.arange(nb).reshape(nb, 1, *(1,) * n), arg.shape)
        ci = np.broadcast_to(np.arange(c).reshape(1, c, *(1,) * n), arg.shape)
        dx = np.zeros(x.shape, np.float64)
        index = (bi[inside], ci[inside], *(p[inside] for p in coords))
        np.add.at(dx, index, dy.astype(np.float64)[inside])
        return dx.astype(x.dtype)

    def cost(n):
        """Each window element compared once, and one cotangent added per output."""
        return costs.Cost(0, n.inputs[1].type.size * (costs.window(n) + 1))
