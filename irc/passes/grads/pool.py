"""Gradients of pooling. Max pooling routes each cotangent to its window's winner (the
max_pool_grad op); average pooling spreads dy/count over the window, which is a depthwise
conv_transpose of dy/count with a kernel of ones (counts are constants: they depend on shapes
only); the global forms broadcast dy back."""

from __future__ import annotations

import numpy as np

from irc.frontend.trace import broadcast_to, pad
from irc.ir.ops.conv import dilated
from irc.ir.ops.pool import _out_sizes, _outer, _taps_inside
from irc.passes.grads.common import grad_rule


def _pool_attrs(at):
    return {k: at[k] for k in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode")}


@grad_rule("max_pool")
def _max_pool(n, xs, ys, dys):
    x = xs[0]
    return [x.tracer.op("max_pool_grad", x, dys[0], **_pool_attrs(n.attrs))]


@grad_rule("global_max_pool")
def _global_max_pool(n, xs, ys, dys):
    x = xs[0]
    sp = x.ndim - 2
    return [x.tracer.op("max_pool_grad", x, dys[0], kernel_shape=x.shape[2:], strides=(1,) * sp,
                        pads=(0,) * (2 * sp), dilations=(1,) * sp, ceil_mode=0)]


@grad_rule("average_pool")
def _average_pool(n, xs, ys, dys):
    x, dy = xs[0], dys[0]
    at = n.attrs
    kernel, strides, pads, dilations = at["kernel_shape"], at["strides"], at["pads"], at["dilations"]
    sp = x.ndim - 2
    c = x.shape[1]
    shape = tuple(x.shape)
    out = _out_sizes(np.empty(shape, np.uint8), kernel, strides, pads, dilations, at["ceil_mode"])
    count = _outer(_taps_inside(shape, kernel, strides, pads, dilations, out, bool(at["count_include_pad"])))
    inv = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0).astype(x.dtype)
    scaled = dy * inv  # (out...) broadcasts over N and C
    ones = np.ones((c, 1, *kernel), x.dtype)
    # conv_transpose's output covers [0, stride*(o-1) + dilated kernel) minus the begin pads;
    # what it lacks of x (rows no window reached) is zero, what it has past x (ceil_mode's last
    # window in the end padding) is cropped.
    full = [strides[i] * (out[i] - 1) + dilated(kernel[i], dilations[i]) - pads[i] for i in range(sp)]
    dx = x.tracer.op("conv_transpose", scaled, x.tracer.const(ones), strides=strides, dilations=dilations,
                     pads=(*pads[:sp], *(0,) * sp), group=c)
    widths = [(0, 0), (0, 0)] + [(0, shape[2 + i] - full[i]) for i in range(sp)]
    if any(w != (0, 0) for w in widths):
        dx = pad(dx, widths)
    return [dx]


@grad_rule("global_average_pool")
def _global_average_pool(n, xs, ys, dys):
    x = xs[0]
    count = int(np.prod(x.shape[2:]))
    return [broadcast_to(dys[0] * (1.0 / count), x.shape)]
