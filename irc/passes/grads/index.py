"""Gradients of slice and gather.

- slice: the cotangent is put back where the slice took it from, zeros elsewhere: per sliced
  axis, steps are re-inserted as zero rows (reshape + pad) and the rest is padded (or cropped)
  to the input's size; a negative step first reverses dy along that axis;
- gather: a scatter-add, written as a product with the one-hot matrix of the indices
  (``equal(indices, arange(n))``), which adds repeated indices' cotangents as it should and
  gives nothing to indices out of range (they gathered zeros).
"""

from __future__ import annotations

import math

import numpy as np

from irc.frontend.trace import pad, reshape, transpose
from irc.ir.ops.index import slice_count
from irc.passes.grads.common import grad_rule


def _unslice_axis(dy, axis: int, dim: int, start: int, end: int, step: int):
    count = slice_count(start, end, step)
    if count == 0:
        widths = [(0, 0)] * dy.ndim
        widths[axis] = (0, dim)
        return pad(dy, widths)
    if step < 0:
        # Elements were taken at start, start+step, ...: reversed, they ascend from the last one.
        dy = dy.tracer.op("slice", dy, starts=(count - 1,), ends=(-count - 1,), axes=(axis,), steps=(-1,))
        start, step = start + (count - 1) * step, -step
    if step > 1:
        shape = dy.shape
        g = reshape(dy, (*shape[:axis], count, 1, *shape[axis + 1:]))
        widths = [(0, 0)] * g.ndim
        widths[axis + 1] = (0, step - 1)
        g = pad(g, widths)
        dy = reshape(g, (*shape[:axis], count * step, *shape[axis + 1:]))
    widths = [(0, 0)] * dy.ndim
    widths[axis] = (start, dim - start - dy.shape[axis])  # a negative end crops the step padding
    return pad(dy, widths)


@grad_rule("slice")
def _slice(n, xs, ys, dys):
    x, dy = xs[0], dys[0]
    at = n.attrs
    for axis, (s, e, t) in enumerate(zip(at["starts"], at["ends"], at["steps"])):
        if (s, e, t) != (0, x.shape[axis], 1):
            dy = _unslice_axis(dy, axis, x.shape[axis], s, e, t)
    return [dy]


@grad_rule("gather", inputs=(0,))
def _gather(n, xs, ys, dys):
    x, idx = xs
    dy = dys[0]
    tr = x.tracer
    axis = n.attrs["axis"]
    dim = x.shape[axis]
    k = idx.size
    before, after = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    flat = reshape(idx, (k, 1))
    wrapped = tr.op("where", flat < 0, flat + dim, flat)
    onehot = (wrapped == tr.const(np.arange(dim, dtype=idx.dtype).reshape(1, dim))).astype(x.dtype)
    g = transpose(reshape(dy, (before, k, after)), (0, 2, 1))  # (A, B, K)
    dx = transpose(g @ onehot, (0, 2, 1))  # (A, n, B)
    return [reshape(dx, x.shape), None]
