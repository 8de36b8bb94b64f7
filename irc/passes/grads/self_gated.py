"""Gradients of the self-gated activations (irc/ir/ops/self_gated.py), from the input x:

    gelu'(x)      = Phi(x) + x phi(x) = 0.5 (1 + erf(x/sqrt 2)) + x exp(-x^2/2) / sqrt(2 pi)
    gelu_tanh'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(...)
    silu'(x)      = s (1 + x (1 - s)),  s = sigmoid(x)
"""

from __future__ import annotations

import math

import numpy as np

from irc.ir.ops.self_gated import GELU_TANH_CUBIC, INV_SQRT2, SQRT_2_OVER_PI
from irc.passes.grads.common import grad_rule


def _rule(op: str):
    def wrap(fn):
        def rule(node, xs, ys, dys):
            return [dys[0] * fn(xs[0])]

        grad_rule(op)(rule)
        return fn

    return wrap


@_rule("gelu")
def _gelu(x):
    cdf = (x.tracer.op("erf", x * INV_SQRT2) + 1.0) * 0.5
    return cdf + x * np.exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))


@_rule("gelu_tanh")
def _gelu_tanh(x):
    t = x.tracer.op("tanh", (x + x * x * x * GELU_TANH_CUBIC) * SQRT_2_OVER_PI)
    return (t + 1.0) * 0.5 + x * (1.0 - t * t) * (0.5 * SQRT_2_OVER_PI) * (x * x * (3 * GELU_TANH_CUBIC) + 1.0)


@_rule("silu")
def _silu(x):
    s = x.tracer.op("sigmoid", x)
    return s * (x * (1.0 - s) + 1.0)
