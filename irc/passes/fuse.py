"""Fusion of GEMM/convolution with their epilogues."""

from __future__ import annotations

import math
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
    vector (a bias) or absent. trans_a/trans_b become transposes (of constants: at compile time),
    except where both operands are run-time values (a train step's gradients): that gemm stays,
    and its kernels read the transposed operand as they pack it."""
    a, b, *rest = node.inputs
    at = node.attrs
    if at["act"] != "none":
        return None
    c = rest[0] if rest else None
    n = node.outputs[0].shape[1]
    bias = None
    if c is not None:
        if c.shape not in ((n,), (1, n)):
            return None
        cc = ctx.const(c)
        if cc is None and at["beta"] != 1.0:
            return None
        # A run-time bias (a train step's) is read as it is; a constant one is scaled by beta.
        bias = _view(ctx, c, (n,)) if cc is None else cc.reshape(n) * cc.dtype.type(at["beta"])
    if at["alpha"] != 1.0 and not ctx.is_const(b):
        return None
    if (at["trans_a"] or at["trans_b"]) and not ctx.is_const(a) and not ctx.is_const(b):
        return None  # both packed at run time: the transposed one is read so (no transpose stored)
    if at["trans_a"]:
        a = _transposed(ctx, a)
    if at["trans_b"]:
        b = _transposed(ctx, b)
    if at["alpha"] != 1.0:
        bc = ctx.const(b)
        b = ctx.param(bc * bc.dtype.type(at["alpha"]), "b_scaled")
    if isinstance(bias, np.ndarray):
        bias = ctx.param(bias.astype(node.outputs[0].dtype.numpy), "bias")
    return (ctx.make("gemm_fused", [a, b] + ([bias] if bias is not None else [])),)


def _add_gemm(node: Node, ctx: RewriteContext):
    """add(gemm(a, b), x) -> gemm(a, b, x) and add(gemm(a, b), x * c) -> gemm(a, b, x, beta=c)
    for a same-shape x: a gemm that ``_gemm`` kept (two run-time operands, one transposed: a
    weight gradient) takes the add as its C, so SGD's ``momentum * velocity + gradient`` is one
    GEMM."""
    for side in (0, 1):
        p = ctx.producer(node.inputs[side])
        if (p is None or p.op != "gemm" or len(p.inputs) != 2 or p.attrs["act"] != "none"
                or not ctx.single_use(node.inputs[side])):
            continue
        x, beta = node.inputs[1 - side], 1.0
        m = ctx.producer(x)
        if m is not None and m.op == "mul" and ctx.single_use(x):
            for j in (0, 1):
                c = ctx.const(m.inputs[j])
                if c is not None and c.size == 1 and m.inputs[1 - j].type == x.type:
                    x, beta = m.inputs[1 - j], float(c.reshape(()))
                    break
        if x.type != node.outputs[0].type or x.type != p.outputs[0].type:
            continue
        return _with(ctx, p, [p.inputs[0], p.inputs[1], x], beta=beta)
    return None


def _matmul(node: Node, ctx: RewriteContext):
    """2-D matmul -> gemm_fused. A batch of rows times a constant matrix (a linear layer:
    [..., K] @ [K, N]) -> reshape to [rows, K], gemm_fused, reshape back: the reshapes are views,
    and the GEMM's epilogue can then take the bias, residual and activation that follow."""
    a, b = node.inputs
    if b.type.rank != 2 or a.type.rank < 2 or (a.type.rank > 2 and not ctx.is_const(b)):
        return None
    if a.type.rank == 2:
        return (ctx.make("gemm_fused", [a, b]),)
    rows = _view(ctx, a, (math.prod(a.shape[:-1]), a.shape[-1]))
    return (_view(ctx, ctx.make("gemm_fused", [rows, b]), node.outputs[0].shape),)


def _view(ctx: RewriteContext, v: Value, shape) -> Value:
    """v reshaped to ``shape``, from the source of v's own reshape if it has one (no chains)."""
    p = ctx.producer(v)
    if p is not None and p.op == "reshape":
        v = p.inputs[0]
    return v if v.shape == tuple(shape) else ctx.make("reshape", [v], shape=tuple(shape))


def _fusable(ctx: RewriteContext, v: Value) -> Node | None:
    """The fused producer of v if it has no activation yet and v is read only here."""
    p = ctx.producer(v)
    if p is None or p.op not in _FUSED or p.attrs["act"] != "none" or not ctx.single_use(v):
        return None
    return p


def _row_view(ctx: RewriteContext, v: Value) -> Node | None:
    """The gemm_fused behind v = reshape(gemm_fused(...)) that only splits the rows (what
    ``_matmul`` makes of a linear layer), if both are fusable (read only on this path)."""
    r = ctx.producer(v)
    if r is None or r.op != "reshape" or not ctx.single_use(v):
        return None
    p = _fusable(ctx, r.inputs[0])
    if p is None or p.op != "gemm_fused" or v.type.rank < 2 or v.shape[-1] != p.outputs[0].shape[1]:
        return None
    return p


def _reshape(node: Node, ctx: RewriteContext):
    """reshape(reshape(x)) -> reshape(x) (or x): the views around linear layers do not chain."""
    p = ctx.producer(node.inputs[0])
    if p is None or p.op != "reshape":
        return None
    return (_view(ctx, node.inputs[0], node.outputs[0].shape),)


def _layout_free_transpose(node: Node, ctx: RewriteContext):
    """transpose -> reshape when it moves only size-1 axes (batch-first attention exports swap a
    batch of 1 with the sequence): the bytes keep their order, so it is a view, not a copy, and
    the epilogue patterns see through it."""
    x = node.inputs[0]
    moved = [d for d in node.attrs["perm"] if x.shape[d] != 1]
    if moved != sorted(moved):
        return None
    return (_view(ctx, x, node.outputs[0].shape),)


def _with(ctx: RewriteContext, p: Node, inputs, **changes) -> tuple[Value]:
    return (ctx.make(p.op, inputs, **{**p.attrs, **changes}),)


def _with_rows(ctx: RewriteContext, p: Node, like: Value, inputs, **changes) -> tuple[Value]:
    """``_with`` for a GEMM seen through a row view: the result reshaped back to ``like``."""
    (y,) = _with(ctx, p, inputs, **changes)
    return (_view(ctx, y, like.shape),)


def _bias_shape_ok(p: Node, c: np.ndarray) -> np.ndarray | None:
    """c as a per-channel vector if it broadcasts like the fused op's bias would."""
    out = p.outputs[0].type
    channels = out.shape[1]
    if p.op == "conv_fused":
        want = [(channels,) + (1,) * (out.rank - 2), (1, channels) + (1,) * (out.rank - 2)]
    else:
        want = [(channels,), (1, channels)]
    return c.reshape(channels) if tuple(c.shape) in want else None


def _add_rows(node: Node, ctx: RewriteContext):
    """add(reshape(gemm_fused), ...) for a linear layer on [..., K] rows: a bias [N] (or
    [1, ..., 1, N]) or a residual of the output's shape (read as [rows, N], a view) joins the
    GEMM's epilogue; the reshape back moves after it."""
    out = node.outputs[0]
    for side in (0, 1):
        p = _row_view(ctx, node.inputs[side])
        if p is None:
            continue
        other = node.inputs[1 - side]
        n = p.outputs[0].shape[1]
        has_bias, has_res = len(p.inputs) > 2, len(p.inputs) > 3
        c = ctx.const(other)
        if has_res:
            continue
        if c is not None and c.size == n and c.ndim <= out.type.rank and c.shape[-1:] == (n,):
            vec = c.reshape(n)
            if has_bias:
                old = ctx.const(p.inputs[2])
                if old is None:
                    continue
                vec = old + vec
            return _with_rows(ctx, p, out, [p.inputs[0], p.inputs[1], ctx.param(vec.astype(c.dtype), "bias")])
        if other.type == out.type == node.inputs[side].type:
            bias = p.inputs[2] if has_bias else ctx.param(np.zeros(n, other.dtype.numpy), "bias")
            res = _view(ctx, other, p.outputs[0].shape)
            return _with_rows(ctx, p, out, [p.inputs[0], p.inputs[1], bias, res])
    return None


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
    """activation(fused) -> fused with that activation as its epilogue (also through the row
    view of a linear layer: the activation is element-wise, so it commutes with the reshape)."""
    spec = activation_of(node.op, node.attrs)
    if spec is None:
        return None
    act, alpha, beta = spec
    p = _fusable(ctx, node.inputs[0])
    if p is not None:
        return _with(ctx, p, p.inputs, act=act, act_alpha=alpha, act_beta=beta)
    p = _row_view(ctx, node.inputs[0])
    if p is not None:
        return _with_rows(ctx, p, node.outputs[0], p.inputs, act=act, act_alpha=alpha, act_beta=beta)
    return None


_ACTS = ["relu", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "gelu", "gelu_tanh", "silu"]


def fuse(g: Graph) -> Graph:
    """The fuse pass as a function (see Fuse)."""
    patterns = {"conv": [_conv], "gemm": [_gemm], "matmul": [_matmul], "add": [_add, _add_rows, _add_gemm],
                "reshape": [_reshape], "transpose": [_layout_free_transpose]}
    patterns.update({a: [_act] for a in _ACTS})
    return rewrite(g, patterns)


@register_pass
@dataclass(frozen=True)
class Fuse(Pass):
    """Matches conv, gemm, 2-D matmul and linear layers (matmul of [..., K] rows by a constant
    [K, N]: gemm_fused between two reshapes) and grows them into conv_fused / gemm_fused whose
    epilogue takes the following per-channel bias add, residual add (a same-shape add) and one
    activation: act(conv(x, w) + bias + residual), one kernel on every target. An op is only
    absorbed when its input is used nowhere else, so no work is ever duplicated. A reshape of a
    reshape reads the first one's source (the views between stacked linear layers do not chain).
    A gemm of two run-time operands, one transposed, stays a gemm and takes a following
    same-shape add (scaled or not) as its C: a train step's weight gradient plus momentum *
    velocity."""

    name: ClassVar[str] = "fuse"

    def run(self, g: Graph) -> Graph:
        return fuse(g)
