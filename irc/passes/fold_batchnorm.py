"""Batch normalisation folded into the preceding convolution or matrix product."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir.graph import Graph, Node
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite


def _bn_affine(node: Node, ctx: RewriteContext):
    """(scale, shift) with batch_norm(x) = x * scale + shift per channel, or None if the
    statistics are not constants. Computed in float64, returned in x's dtype."""
    x, *stats = node.inputs
    arrays = [ctx.const(v) for v in stats]
    if any(a is None for a in arrays):
        return None
    gamma, beta, mean, var = (a.astype(np.float64) for a in arrays)
    scale = gamma / np.sqrt(var + node.attrs["epsilon"])
    shift = beta - mean * scale
    dt = x.dtype.numpy
    return scale.astype(dt), shift.astype(dt), scale, shift


def _into_conv(node: Node, ctx: RewriteContext):
    """batch_norm(conv(x, w, b)) -> conv(x, w * s, b * s + t), the conv used nowhere else."""
    conv = ctx.producer(node.inputs[0])
    if conv is None or conv.op != "conv" or not ctx.single_use(conv.outputs[0]):
        return None
    w = ctx.const(conv.inputs[1])
    affine = _bn_affine(node, ctx)
    if w is None or affine is None or (len(conv.inputs) > 2 and not ctx.is_const(conv.inputs[2])):
        return None
    _, _, s64, t64 = affine
    b64 = ctx.const(conv.inputs[2]).astype(np.float64) if len(conv.inputs) > 2 else 0.0
    w2 = (w.astype(np.float64) * s64.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b2 = (b64 * s64 + t64).astype(w.dtype)
    return (ctx.make("conv", [conv.inputs[0], ctx.param(w2, "w_bn"), ctx.param(b2, "b_bn")], **conv.attrs),)


def _into_affine(node: Node, ctx: RewriteContext):
    """Any other batch_norm with constant statistics -> x * s + t (two element-wise ops)."""
    affine = _bn_affine(node, ctx)
    if affine is None:
        return None
    s, t, _, _ = affine
    x = node.inputs[0]
    shape = (-1,) + (1,) * (x.type.rank - 2)
    y = ctx.make("mul", [x, ctx.param(s.reshape(shape), "bn_scale")])
    return (ctx.make("add", [y, ctx.param(t.reshape(shape), "bn_shift")]),)


def fold_batchnorm(g: Graph) -> Graph:
    """The fold_batchnorm pass as a function (see FoldBatchnorm)."""
    return rewrite(g, {"batch_norm": [_into_conv, _into_affine]})


@register_pass
@dataclass(frozen=True)
class FoldBatchnorm(Pass):
    """Matches inference batch_norm with constant statistics. After a conv used only by it:
    folds into the conv's weights and bias (computed in float64). Elsewhere: rewrites it as a
    per-channel multiply and add, which element-wise fusion and every target handle."""

    name: ClassVar[str] = "fold_batchnorm"

    def run(self, g: Graph) -> Graph:
        return fold_batchnorm(g)
