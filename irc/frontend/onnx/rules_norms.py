"""ONNX GroupNormalization and RMSNormalization, lowered at import to ops irc already has.

Both are a standardization followed by a scale, as ONNX's own function bodies define them, so
the lowering reuses layer_norm (group norm standardizes each group as one layer) and the
element-wise and reduction ops, and every target, autodiff and ONNX export get them with no new
kernel:

- GroupNormalization: x (N, C, ...) reshaped to (N, G, C/G * spatial), layer_norm over the last
  axis, reshaped back, then times scale and plus bias per channel (opset 21's form).
- RMSNormalization: x / sqrt(mean(x*x over axes [axis, rank)) + epsilon) * scale, in float32
  for half-precision inputs (stash_type=1, the default) and rounded back once at the end.
"""

from __future__ import annotations

import math

import numpy as np

from irc.errors import ShapeError, UnsupportedOpError
from irc.frontend.onnx.rules import NodeContext, import_rule
from irc.ir.ops.registry import norm_axis
from irc.ir.types import DType


@import_rule("GroupNormalization")
def _group_norm(ctx: NodeContext):
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    groups = int(ctx.attr("num_groups"))
    if x.type.rank < 2 or groups < 1 or x.shape[1] % groups:
        raise ShapeError(f"x {x.type} must be (N, C, ...) with C a multiple of num_groups = {groups}")
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    one = ctx.constant(np.ones(1, x.dtype.numpy))
    y = ctx.op("reshape", x, shape=(n, groups, c // groups * math.prod(spatial)))
    y = ctx.op("layer_norm", y, one, axis=2, epsilon=ctx.attr("epsilon", 1e-5))
    y = ctx.op("reshape", y, shape=x.shape)
    view = (c,) + (1,) * len(spatial)
    for what, p in (("scale", scale), ("bias", bias)):
        if p.shape != (c,):
            raise ShapeError(f"{what} {p.type} must have one value per channel, shape [{c}] (opset 21; opset 18's "
                             "one value per group is deprecated by ONNX)")
    y = ctx.op("mul", y, ctx.op("reshape", scale, shape=view))
    return ctx.op("add", y, ctx.op("reshape", bias, shape=view))


_STASH = {1: DType.f32, 11: DType.f64}


@import_rule("RMSNormalization")
def _rms_norm(ctx: NodeContext):
    x, scale = ctx.input(0), ctx.input(1)
    if not x.dtype.is_float:
        raise ShapeError(f"X must be a float tensor, got {x.type}")
    stash = ctx.attr("stash_type", 1)
    if stash not in _STASH:
        raise UnsupportedOpError(f"stash_type {stash} is not supported (1: float32, 11: float64)")
    axis = norm_axis(ctx.attr("axis", -1), x.type.rank)
    acc = _STASH[stash] if x.dtype.itemsize < _STASH[stash].itemsize else x.dtype
    xa = x if x.dtype is acc else ctx.op("cast", x, to=acc)
    ms = ctx.op("reduce_mean", ctx.op("mul", xa, xa), axes=tuple(range(axis, x.type.rank)), keepdims=1)
    eps = ctx.constant(np.array(ctx.attr("epsilon", 1e-5), acc.numpy))
    y = ctx.op("div", xa, ctx.op("sqrt", ctx.op("add", ms, eps)))
    y = ctx.op("mul", y, scale if scale.dtype is acc else ctx.op("cast", scale, to=acc))
    return y if acc is x.dtype else ctx.op("cast", y, to=x.dtype)
