"""Fusion of GEMM/convolution with their epilogues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from irc.ir.graph import Graph, Node, Value
from irc.ir.ops.activation import activation_of
from irc.passes.registry import Pass, register_pass
from irc.passes.rewrite import RewriteContext, rewrite

_FUSED = ("conv_fused", "gemm_fused")


def _conv(node: Node, ctx: RewriteContext):
    """conv -> conv_fused with no epilogue yet (later patterns grow it)."""
    return (ctx.make("conv_fused", node.inputs, **node.attrs),)


def _transposed(ctx: RewriteContext, v: Value) -> Value:
    c = ctx.const(v)
    if c is not None:
        return ctx.param(np.ascontiguousarray(c.T), v.name + "_t")
    return ctx.make("transpose", [v], perm=(1, 0))


def _gemm(node: Node, ctx: RewriteContext):
    """gemm -> gemm_fused(a', b', bias) when alpha/beta fold into constants and C is a row
    vector (a bias) or absent. trans_a/trans_b become transposes (of constants: at compile time)."""
    a, b, *rest = node.inputs
    at = node.attrs
    if at["act"] != "none":
        return None
    c = rest[0] if rest else None
    n = node.outputs[0].shape[1]
    bias = None
    if c is not None:
        cc = ctx.const(c)
        if cc is None or cc.size != n or (c.type.rank == 2 and c.shape[0] != 1):
            return None
        bias = cc.reshape(n) * cc.dtype.type(at["beta"])
    if at["alpha"] != 1.0 and not ctx.is_const(b):
        return None
    if at["trans_a"]:
        a = _transposed(ctx, a)
    if at["trans_b"]:
        b = _transposed(ctx, b)
    if at["alpha"] != 1.0:
        bc = ctx.const(b)
        b = ctx.param(bc * bc.dtype.type(at["alpha"]), "b_scaled")
    ins = [a, b] + ([ctx.param(bias.astype(node.outputs[0].dtype.numpy), "bias")] if bias is not None else [])
    return (ctx.make("gemm_fused", ins),)


def _matmul(node: Node, ctx: RewriteContext):
    a, b = node.inputs
    if a.type.rank != 2 or b.type.rank != 2:
        return None
    return (ctx.make("gemm_fused", [a, b]),)


def _fusable(ctx: RewriteContext, v: Value) -> Node | None:
    """The fused producer of v if it has no activation yet and v is read only here."""
    p = ctx.producer(v)
    if p is None or p.op not in _FUSED or p.attrs["act"] != "none" or not ctx.single_use(v):
        return None
    return p


def _with(ctx: RewriteContext, p: Node, inputs, **changes) -> tuple[Value]:
    return (ctx.make(p.op, inputs, **{**p.attrs, **changes}),)


def _bias_shape_ok(p: Node, c: np.ndarray) -> np.ndarray | None:
    """c as a per-channel vector if it broadcasts like the fused op's bias would."""
    out = p.outputs[0].type
    channels = out.shape[1]
    if p.op == "conv_fused":
        want = [(channels,) + (1,) * (out.rank - 2), (1, channels) + (1,) * (out.rank - 2)]
    else:
        want = [(channels,), (1, channels)]
    return c.reshape(channels) if tuple(c.shape) in want else None


def _add(node: Node, ctx: RewriteContext):
    """add(fused, constant per-channel) -> bias; add(fused, same-shape value) -> residual."""
    for side in (0, 1):
        p = _fusable(ctx, node.inputs[side])
        if p is None:
            continue
        other = node.inputs[1 - side]
        has_bias, has_res = len(p.inputs) > 2, len(p.inputs) > 3
        c = ctx.const(other)
        if c is not None and not has_res and (vec := _bias_shape_ok(p, c)) is not None:
            if has_bias:
                old = ctx.const(p.inputs[2])
                if old is None:
                    continue
                vec = old + vec
            return _with(ctx, p, [p.inputs[0], p.inputs[1], ctx.param(vec.astype(c.dtype), "bias")])
        if other.type == node.outputs[0].type == p.outputs[0].type and not has_res:
            bias = p.inputs[2] if has_bias else ctx.param(np.zeros(p.outputs[0].shape[1], other.dtype.numpy), "bias")
            return _with(ctx, p, [p.inputs[0], p.inputs[1], bias, other])
    return None


def _act(node: Node, ctx: RewriteContext):
    """activation(fused) -> fused with that activation as its epilogue."""
    p = _fusable(ctx, node.inputs[0])
    spec = activation_of(node.op, node.attrs)
    if p is None or spec is None:
        return None
    act, alpha, beta = spec
    return _with(ctx, p, p.inputs, act=act, act_alpha=alpha, act_beta=beta)


_ACTS = ["relu", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish"]


def fuse(g: Graph) -> Graph:
    """The fuse pass as a function (see Fuse)."""
    patterns = {"conv": [_conv], "gemm": [_gemm], "matmul": [_matmul], "add": [_add]}
    patterns.update({a: [_act] for a in _ACTS})
    return rewrite(g, patterns)


@register_pass
@dataclass(frozen=True)
class Fuse(Pass):
    """Matches conv, gemm and 2-D matmul and grows them into conv_fused / gemm_fused whose
    epilogue takes the following per-channel bias add, residual add (a same-shape add) and one
    activation: act(conv(x, w) + bias + residual), one kernel on every target. An op is only
    absorbed when its input is used nowhere else, so no work is ever duplicated."""

    name: ClassVar[str] = "fuse"

    def run(self, g: Graph) -> Graph:
        return fuse(g)
