"""Gradients of the element-wise ops: activations and math functions (from the input x or the
output y, whichever is cheaper), and the broadcasting binary ops (whose cotangents are summed
back over the broadcast axes)."""

from __future__ import annotations

import math

import numpy as np

from irc.frontend.trace import where
from irc.ir.types import DType
from irc.passes.grads.common import grad_rule, scalar, unbroadcast


def _unary(*ops):
    """Rule from ``fn(node, x, y, dy) -> dx`` for one-input ops."""

    def wrap(fn):
        def rule(node, xs, ys, dys):
            return [fn(node, xs[0], ys[0], dys[0])]

        grad_rule(*ops)(rule)
        return fn

    return wrap


@_unary("neg")
def _neg(n, x, y, dy):
    return -dy


@_unary("abs")
def _abs(n, x, y, dy):
    return dy * np.sign(x)


@_unary("sqrt")
def _sqrt(n, x, y, dy):
    return dy * scalar(y, 0.5) / y


@_unary("exp")
def _exp(n, x, y, dy):
    return dy * y


@_unary("log")
def _log(n, x, y, dy):
    return dy / x


@_unary("erf")
def _erf(n, x, y, dy):
    return dy * scalar(x, 2 / math.sqrt(math.pi)) * np.exp(-(x * x))


@_unary("reciprocal")
def _reciprocal(n, x, y, dy):
    return -(dy * y * y)


@_unary("sin")
def _sin(n, x, y, dy):
    return dy * np.cos(x)


@_unary("cos")
def _cos(n, x, y, dy):
    return -(dy * np.sin(x))


@_unary("tanh")
def _tanh(n, x, y, dy):
    return dy * (1.0 - y * y)


@_unary("sigmoid")
def _sigmoid(n, x, y, dy):
    return dy * (y * (1.0 - y))


@_unary("softplus")
def _softplus(n, x, y, dy):
    return dy * x.tracer.op("sigmoid", x)


@_unary("softsign")
def _softsign(n, x, y, dy):
    d = 1.0 + np.abs(x)
    return dy / (d * d)


@_unary("relu")
def _relu(n, x, y, dy):
    # From the output (y > 0 exactly where x > 0): the pre-activation then has no reader but
    # the relu, so the relu fuses into the GEMM or convolution before it.
    return where(y > 0, dy, 0.0)


@_unary("leaky_relu")
def _leaky_relu(n, x, y, dy):
    return where(x >= 0, dy, dy * n.attrs["alpha"])


@_unary("elu")
def _elu(n, x, y, dy):
    return where(x > 0, dy, dy * (y + n.attrs["alpha"]))


@_unary("selu")
def _selu(n, x, y, dy):
    alpha, gamma = n.attrs["alpha"], n.attrs["gamma"]
    return where(x > 0, dy * gamma, dy * (y + alpha * gamma))


@_unary("hard_sigmoid")
def _hard_sigmoid(n, x, y, dy):
    alpha, beta = n.attrs["alpha"], n.attrs["beta"]
    z = x * alpha + beta
    return where((z > 0) & (z < 1), dy * alpha, 0.0)


@_unary("hard_swish")
def _hard_swish(n, x, y, dy):
    # y = x * clip(x/6 + 1/2, 0, 1); inside (-3, 3) dy/dx = x/3 + 1/2, above it 1, below 0.
    inner = where((x > -3.0) & (x < 3.0), x * (1 / 3) + 0.5, 0.0)
    return dy * where(x >= 3.0, 1.0, inner)


@_unary("clip")
def _clip(n, x, y, dy):
    return where((x >= n.attrs["min"]) & (x <= n.attrs["max"]), dy, 0.0)


@_unary("identity")
def _identity(n, x, y, dy):
    return dy


@grad_rule("cast")
def _cast(n, xs, ys, dys):
    x = xs[0]
    if not (x.value.dtype.is_float and n.attrs["to"].is_float):
        return [None]
    return [dys[0].astype(x.dtype)]


# ---------------------------------------------------------------------------- binary


@grad_rule("add")
def _add(n, xs, ys, dys):
    a, b = xs
    return [unbroadcast(dys[0], a.shape), unbroadcast(dys[0], b.shape)]


@grad_rule("sub")
def _sub(n, xs, ys, dys):
    a, b = xs
    return [unbroadcast(dys[0], a.shape), unbroadcast(-dys[0], b.shape)]


@grad_rule("mul")
def _mul(n, xs, ys, dys):
    a, b = xs
    dy = dys[0]
    return [unbroadcast(dy * b, a.shape), unbroadcast(dy * a, b.shape)]


@grad_rule("div")
def _div(n, xs, ys, dys):
    a, b = xs
    if not a.value.dtype.is_float:
        return [None, None]
    da = dys[0] / b
    return [unbroadcast(da, a.shape), unbroadcast(-(da * ys[0]), b.shape)]


@grad_rule("pow")
def _pow(n, xs, ys, dys):
    a, b = xs
    dy, y = dys[0], ys[0]
    if not a.value.dtype.is_float:
        return [None, None]
    # d/da a**b = b * a**(b-1), written b * y / a only where a != 0 would divide by zero.
    da = dy * b * (a ** (b - 1.0))
    db = dy * y * np.log(where(a > 0, a, 1.0))  # real only for a > 0; 0 elsewhere, as PyTorch
    return [unbroadcast(da, a.shape), unbroadcast(db, b.shape)]


def _select(first_wins):
    def rule(n, xs, ys, dys):
        a, b = xs
        dy = dys[0]
        pick_a = first_wins(a, b)
        return [unbroadcast(where(pick_a, dy, 0.0), a.shape), unbroadcast(where(pick_a, 0.0, dy), b.shape)]

    return rule


# Ties send the whole cotangent to the first operand.
grad_rule("max")(_select(lambda a, b: a >= b))
grad_rule("min")(_select(lambda a, b: a <= b))


@grad_rule("prelu")
def _prelu(n, xs, ys, dys):
    x, s = xs
    dy = dys[0]
    pos = x >= 0
    return [unbroadcast(where(pos, dy, dy * s), x.shape), unbroadcast(where(pos, 0.0, dy * x), s.shape)]


@grad_rule("where", inputs=(1, 2))
def _where(n, xs, ys, dys):
    cond, a, b = xs
    dy = dys[0]
    if a.value.dtype is DType.bool or not a.value.dtype.is_float:
        return [None, None, None]
    return [None, unbroadcast(where(cond, dy, 0.0), a.shape), unbroadcast(where(cond, 0.0, dy), b.shape)]
