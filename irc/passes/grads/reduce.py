"""Gradients of the reductions: the cotangent broadcast back over the reduced axes, times the
derivative of the reduction at each element (1 for sum, 1/count for mean, the share of the
maxima for max and min: tied maxima split the cotangent equally)."""

from __future__ import annotations

import math

import numpy as np

from irc.frontend.trace import broadcast_to
from irc.passes.grads.common import grad_rule, keep_axes


def _reduction(op):
    def wrap(fn):
        def rule(n, xs, ys, dys):
            x = xs[0]
            axes, keep = n.attrs["axes"], n.attrs["keepdims"]
            dy = keep_axes(dys[0], x.shape, axes, keep)
            y = keep_axes(ys[0], x.shape, axes, keep)
            return [broadcast_to(fn(x, y, dy, axes), x.shape)]

        grad_rule(op)(rule)
        return fn

    return wrap


@_reduction("reduce_sum")
def _sum(x, y, dy, axes):
    return dy


@_reduction("reduce_mean")
def _mean(x, y, dy, axes):
    return dy * (1.0 / math.prod(x.shape[a] for a in axes))


def _extreme(x, y, dy, axes):
    hit = (x == y).astype(x.dtype)
    return dy * hit / hit.sum(axis=axes, keepdims=True)


_reduction("reduce_max")(_extreme)
_reduction("reduce_min")(_extreme)


@_reduction("reduce_prod")
def _prod(x, y, dy, axes):
    return dy * y / x


@_reduction("reduce_l1")
def _l1(x, y, dy, axes):
    return dy * np.sign(x)


@_reduction("reduce_l2")
def _l2(x, y, dy, axes):
    return dy * x / y


@_reduction("reduce_sum_square")
def _sum_square(x, y, dy, axes):
    return dy * x * 2.0


@_reduction("reduce_log_sum")
def _log_sum(x, y, dy, axes):
    return dy * np.exp(-y)


@_reduction("reduce_log_sum_exp")
def _log_sum_exp(x, y, dy, axes):
    return dy * np.exp(x - y)
