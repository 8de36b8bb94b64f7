"""Gradients of gemm and matmul: products with the other operand, transposed through gemm's
trans flags (no transpose nodes needed) or matmul's swapped last axes, summed over broadcast
batch axes."""

from __future__ import annotations

from irc.frontend.trace import reshape, transpose
from irc.ir.ops import get_op
from irc.ir.ops.activation import activation_node
from irc.passes.grads.common import grad_rule, unbroadcast


@grad_rule("gemm")
def _gemm(n, xs, ys, dys):
    a, b = xs[0], xs[1]
    c = xs[2] if len(xs) > 2 else None
    tr = a.tracer
    at = n.attrs
    alpha, beta, ta, tb = at["alpha"], at["beta"], at["trans_a"], at["trans_b"]
    dy = dys[0]
    spec = activation_node(at["act"], at["act_alpha"], at["act_beta"])
    if spec is not None:
        # y = act(z): recompute z without the activation and go through the activation's rule.
        act, act_attrs = get_op(spec[0]), spec[1]
        z = tr.op("gemm", *xs, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb)
        node = type(n)(act.name, (z.value,), (ys[0].value,), act_attrs)
        dy = act.grad(node, [z], ys, [dy])[0]
    # With A' = op(A), B' = op(B): dA' = alpha dy B'^T and dB' = alpha A'^T dy.
    if not ta:
        da = tr.op("gemm", dy, b, alpha=alpha, trans_b=1 - tb)
    else:
        da = tr.op("gemm", b, dy, alpha=alpha, trans_a=tb, trans_b=1)
    if not tb:
        db = tr.op("gemm", a, dy, alpha=alpha, trans_a=1 - ta)
    else:
        db = tr.op("gemm", dy, a, alpha=alpha, trans_a=1, trans_b=ta)
    grads = [da, db]
    if c is not None:
        dc = dy if beta == 1.0 else dy * beta
        grads.append(unbroadcast(dc, c.shape))
    return grads


def _swap_last(t):
    perm = list(range(t.ndim))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return transpose(t, perm)


@grad_rule("matmul")
def _matmul(n, xs, ys, dys):
    a, b = xs
    dy = dys[0]
    # Promote 1-D operands as matmul does, so the result has both matrix axes.
    a2 = reshape(a, (1, *a.shape)) if a.ndim == 1 else a
    b2 = reshape(b, (*b.shape, 1)) if b.ndim == 1 else b
    out = (*dy.shape[: dy.ndim - (a.ndim > 1) - (b.ndim > 1)], a2.shape[-2], b2.shape[-1])
    dy2 = reshape(dy, out)
    da = unbroadcast(dy2 @ _swap_last(b2), a2.shape)
    db = unbroadcast(_swap_last(a2) @ dy2, b2.shape)
    return [reshape(da, a.shape), reshape(db, b.shape)]
