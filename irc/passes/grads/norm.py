"""Gradients of the normalizations and softmaxes.

- batch_norm is the inference form (statistics are inputs), so every input gets an element-wise
  gradient: irc.nn's training-mode batch norm is traced from reductions and element-wise ops;
- layer_norm and instance_norm standardize over their axes: with x_hat = (x - mean) / sigma and
  g = dy * scale, dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma over the same axes;
- softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy), both along the
  axis: the cross-entropy of log_softmax thus gets the stable (softmax - target) gradient.
"""

from __future__ import annotations

import numpy as np

from irc.frontend.trace import reshape
from irc.passes.grads.common import grad_rule, unbroadcast


def _per_channel(t, rank):
    return reshape(t, (t.shape[0], *(1,) * (rank - 2)))


@grad_rule("batch_norm")
def _batch_norm(n, xs, ys, dys):
    x, scale, bias, mean, var = xs
    dy = dys[0]
    r = x.ndim
    axes = (0, *range(2, r))
    inv = 1.0 / np.sqrt(var + n.attrs["epsilon"])
    s, m, i = _per_channel(scale, r), _per_channel(mean, r), _per_channel(inv, r)
    d = x - m
    sum_dy = dy.sum(axis=axes)
    sum_dyd = (dy * d).sum(axis=axes)
    dx = dy * (s * i)
    dscale = sum_dyd * inv
    dmean = -(sum_dy * scale * inv)
    dvar = sum_dyd * scale * (inv * inv * inv) * -0.5
    return [dx, dscale, sum_dy, dmean, dvar]


def _standardize_grad(x, dy, scale_b, axes, epsilon):
    """(dx, x_hat) of y = x_hat * scale over ``axes``; ``scale_b`` broadcasts to x."""
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    var = (d * d).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + epsilon)
    xhat = d * inv
    g = dy * scale_b
    dx = (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True)) * inv
    return dx, xhat


@grad_rule("layer_norm")
def _layer_norm(n, xs, ys, dys):
    x, scale = xs[0], xs[1]
    dy = dys[0]
    axes = tuple(range(n.attrs["axis"], x.ndim))
    dx, xhat = _standardize_grad(x, dy, scale, axes, n.attrs["epsilon"])
    grads = [dx, unbroadcast(dy * xhat, scale.shape)]
    if len(xs) > 2:
        grads.append(unbroadcast(dy, xs[2].shape))
    return grads


@grad_rule("instance_norm")
def _instance_norm(n, xs, ys, dys):
    x, scale, bias = xs
    dy = dys[0]
    r = x.ndim
    axes = tuple(range(2, r))
    dx, xhat = _standardize_grad(x, dy, _per_channel(scale, r), axes, n.attrs["epsilon"])
    return [dx, (dy * xhat).sum(axis=(0, *axes)), dy.sum(axis=(0, *axes))]


@grad_rule("softmax")
def _softmax(n, xs, ys, dys):
    y, dy = ys[0], dys[0]
    return [y * (dy - (dy * y).sum(axis=n.attrs["axis"], keepdims=True))]


@grad_rule("log_softmax")
def _log_softmax(n, xs, ys, dys):
    y, dy = ys[0], dys[0]
    return [dy - np.exp(y) * dy.sum(axis=n.attrs["axis"], keepdims=True)]

