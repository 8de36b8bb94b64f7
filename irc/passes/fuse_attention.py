"""Scaled dot-product attention recognised and made one ``attention`` node.

Transformer exports write attention as separate nodes whose [..., Sq, Sk] intermediates each go
to memory and back: MatMul(Q, K^T), a scale, an additive mask, Softmax, MatMul with V. This pass
matches that chain backwards from the last MatMul in the forms exporters produce:

- K^T as a Transpose that swaps the last two axes (possibly folded with the head split, e.g.
  perm [0, 2, 3, 1] of [b, s, h, d]), or any other value, which gets a Transpose back;
- the scale as Mul or Div by a scalar constant after the product, or on Q and/or on K (torch
  scales each by d^-1/4), any number of them, multiplied together;
- an optional Add of a mask (constant or run-time) that broadcasts to the scores without
  changing their shape;
- Softmax on the last axis (LogSoftmax is not attention).

Every intermediate must be read only by the next node of the chain, so no work is duplicated.
In a training step the backward pass reads the softmax output, so the chain stays unfused
there; a forward-only chain that autodiff left alone is fused, which is correct because the
pass runs after autodiff. Only f32 and f64 chains are fused: the half types' chains round after
every node, which one kernel accumulating in f32 would not reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.types import DType
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite

_FLOATS = (DType.f32, DType.f64)


def _scalar_factor(ctx: RewriteContext, node: Node, x: Value) -> float | None:
    """The factor ``node`` (mul or div) multiplies ``x`` by when its other operand is a scalar
    constant that leaves x's shape alone; else None."""
    if node.op not in ("mul", "div") or node.outputs[0].type != x.type:
        return None
    side = node.inputs.index(x) if x in node.inputs else -1
    if side < 0 or (node.op == "div" and side != 0) or node.inputs[0] is node.inputs[1]:
        return None
    c = ctx.const(node.inputs[1 - side])
    if c is None or c.size != 1:
        return None
    f = float(np.asarray(c, np.float64).reshape(()))
    if node.op == "div":
        return None if f == 0.0 else 1.0 / f
    return f


def _strip_scales(ctx: RewriteContext, v: Value) -> tuple[Value, float]:
    """(x, f) with v = x * f through a chain of scalar mul/div nodes each read only once."""
    f = 1.0
    while (p := ctx.producer(v)) is not None and ctx.single_use(v):
        for x in p.inputs:
            g = _scalar_factor(ctx, p, x)
            if g is not None and not ctx.is_const(x):
                break
        else:
            break
        v, f = x, f * g
    return v, f


def _key(ctx: RewriteContext, kt: Value) -> tuple[Value, float]:
    """(K, factor) with kt = factor * K^T over the last two axes, making a transpose if needed."""
    kt, f = _strip_scales(ctx, kt)
    rank = kt.type.rank
    p = ctx.producer(kt)
    if p is not None and p.op == "transpose":
        perm = tuple(p.attrs["perm"])
        src = p.inputs[0]
        if ctx.single_use(kt):
            src, g = _strip_scales(ctx, src)
            f *= g
        perm = (*perm[:-2], perm[-1], perm[-2])
        if perm == tuple(range(rank)):
            return src, f
        return ctx.make("transpose", [src], perm=perm), f
    swap = (*range(rank - 2), rank - 1, rank - 2)
    c = ctx.const(kt)
    if c is not None:
        return ctx.param(np.ascontiguousarray(np.transpose(c, swap)), kt.name + "_t"), f
    return ctx.make("transpose", [kt], perm=swap), f


def _masked(ctx: RewriteContext, scores: Value) -> list[tuple[Value, Value | None]]:
    """The ways to read ``scores`` as (scaled product, mask): an add of the two, whose output has
    the product's shape (either operand may be the product), or no mask at all."""
    p = ctx.producer(scores)
    if p is None or p.op != "add":
        return [(scores, None)]
    a, b = p.inputs
    return [(s, m) for s, m in ((a, b), (b, a)) if s.type == scores.type and ctx.single_use(s)]


def _product(ctx: RewriteContext, scores: Value) -> tuple[Node, float] | None:
    """(matmul, scale) with scores = scale * matmul(q, k^T), the matmul read only here."""
    scores, scale = _strip_scales(ctx, scores)
    mm = ctx.producer(scores)
    if mm is None or mm.op != "matmul" or not ctx.single_use(scores) or min(x.type.rank for x in mm.inputs) < 2:
        return None
    return mm, scale


def _attention(node: Node, ctx: RewriteContext):
    """matmul(softmax(scale * matmul(q, k^T) + mask, axis=-1), v) -> attention(q, k, v, mask)."""
    probs, v = node.inputs
    sm = ctx.producer(probs)
    if (sm is None or sm.op != "softmax" or not ctx.single_use(probs) or probs.type.dtype not in _FLOATS
            or probs.type.rank < 2 or sm.attrs["axis"] != probs.type.rank - 1 or v.type.rank < 2
            or probs.type.shape[-1] == 0 or not ctx.single_use(sm.inputs[0])):
        return None
    for scores, mask in _masked(ctx, sm.inputs[0]):
        found = _product(ctx, scores)
        if found is None:
            continue
        mm, scale = found
        q, fq = _strip_scales(ctx, mm.inputs[0])
        k, fk = _key(ctx, mm.inputs[1])
        out = ctx.make("attention", [q, k, v, *([mask] if mask is not None else [])], scale=scale * fq * fk)
        return (out,) if out.type == node.outputs[0].type else None
    return None


def fuse_attention(g: Graph) -> Graph:
    """The fuse_attention pass as a function (see FuseAttention)."""
    return rewrite(g, {"matmul": [_attention]})


@register_pass
@dataclass(frozen=True)
class FuseAttention(Pass):
    """Matches MatMul(Q, K^T) -> scalar scale -> optional additive mask -> Softmax(last axis)
    -> MatMul(., V), its intermediates used nowhere else, and replaces it by one ``attention``
    node (see the module docstring for the forms it accepts)."""

    name: ClassVar[str] = "fuse_attention"

    def run(self, g: Graph) -> Graph:
        return fuse_attention(g)
