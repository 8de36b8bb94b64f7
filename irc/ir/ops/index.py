"""Ops that select elements by position: slice, gather, gather_elements, argmax, argmin.

``slice`` is resolved to one start, end and step per axis, already clamped as ONNX clamps
them, so a backend computes element i of an axis as ``start + i * step`` with no bounds logic.
Gather indices are data: an index outside [-n, n) selects nothing and gives 0 (ONNX leaves it
undefined; irc defines it so that no backend reads out of bounds and all agree).
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, Trait, defop, norm_axes, norm_axis
from irc.ir.types import DType, TensorType

INDEX_DTYPES = (DType.i32, DType.i64)


def slice_count(start: int, end: int, step: int) -> int:
    """Elements selected on one axis by a clamped (start, end, step)."""
    if step < 0 and end < 0:
        end = -1
    if step > 0:
        return max(0, -(-(end - start) // step))
    return max(0, -(-(start - end) // -step))


def clamp_slice(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX's clamping of a (start, end) on an axis of size ``dim``: negative values count from
    the end, then positive steps clamp to [0, dim], negative ones to [0, dim-1] and [-1, dim-1]
    ('through index 0', written -dim-1 so that clamping it again changes nothing)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    end = min(max(end, -1), dim - 1)
    return min(max(start, 0), dim - 1), -dim - 1 if end == -1 else end


@defop("slice", ("x",), {"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints", ()),
                          "steps": Attr("ints", ())})
class Slice:
    """Every ``steps[i]``-th element of axis ``axes[i]`` from ``starts[i]`` up to, not including,
    ``ends[i]``. Resolved, the node names every axis in order with clamped bounds."""

    def resolve(x, *, starts, ends, axes, steps):
        axes = norm_axes(axes or range(len(starts)), x.rank)
        steps = tuple(steps) or (1,) * len(axes)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ShapeError(f"starts {list(starts)}, ends {list(ends)}, axes {list(axes)} and steps "
                             f"{list(steps)} must have one entry per sliced axis")
        if 0 in steps:
            raise ShapeError(f"steps {list(steps)} contain 0")
        s, e, t = [0] * x.rank, list(x.shape), [1] * x.rank
        for a, st, en, sp in zip(axes, starts, ends, steps):
            s[a], e[a] = clamp_slice(x.shape[a], st, en, sp)
            t[a] = sp
        return {"starts": s, "ends": e, "axes": range(x.rank), "steps": t}

    def infer(x, *, starts, ends, axes, steps):
        return x.with_shape(tuple(slice_count(*b) for b in zip(starts, ends, steps)))

    cost = costs.free  # data movement

    def reference(x, *, starts, ends, axes, steps):
        return np.array(x[tuple(slice(s, None if e < 0 else e, t) for s, e, t in zip(starts, ends, steps))], order="C")


def _expect_indices(t: TensorType) -> None:
    if t.dtype not in INDEX_DTYPES:
        raise ShapeError(f"indices must be i32 or i64, got {t}")


def _take(x: np.ndarray, idx: np.ndarray, axis: int, take) -> np.ndarray:
    """``take(x, wrapped_idx)`` with out-of-range indices giving 0."""
    n = x.shape[axis]
    idx = idx.astype(np.int64)
    ok = (idx >= -n) & (idx < n)
    out = take(np.where(ok, idx % max(n, 1), 0))
    return out, ok


@defop("gather", ("x", "indices"), {"axis": Attr("int", 0)})
class Gather:
    """Entries of axis ``axis`` of ``x`` picked by ``indices``: the output has x's shape with
    that axis replaced by the indices' shape (numpy's ``take``)."""

    def resolve(x, indices, *, axis):
        return {"axis": norm_axis(axis, x.rank)}

    def infer(x, indices, *, axis):
        _expect_indices(indices)
        if x.shape[axis] == 0 and indices.size:
            raise ShapeError(f"cannot gather from the empty axis {axis} of {x}")
        return x.with_shape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])

    cost = costs.free  # data movement

    def reference(x, indices, *, axis):
        out, ok = _take(x, indices, axis, lambda i: np.take(x, i, axis=axis))
        mask = ok.reshape((1,) * axis + ok.shape + (1,) * (x.ndim - axis - 1))
        return np.where(mask, out, np.zeros((), x.dtype)).astype(x.dtype)


@defop("gather_elements", ("x", "indices"), {"axis": Attr("int", 0)})
class GatherElements:
    """out[..., i_axis, ...] = x[..., indices[..., i_axis, ...], ...]: indices has x's rank and
    the output its shape (numpy's ``take_along_axis``)."""

    def resolve(x, indices, *, axis):
        return {"axis": norm_axis(axis, x.rank)}

    def infer(x, indices, *, axis):
        _expect_indices(indices)
        if indices.rank != x.rank or any(i > d for k, (i, d) in enumerate(zip(indices.shape, x.shape)) if k != axis):
            raise ShapeError(f"indices {indices} must have the rank of {x} and fit inside it off axis {axis}")
        if x.shape[axis] == 0 and indices.size:
            raise ShapeError(f"cannot gather from the empty axis {axis} of {x}")
        return x.with_shape(indices.shape)

    cost = costs.free  # data movement

    def reference(x, indices, *, axis):
        sub = x[tuple(slice(0, d) if k != axis else slice(None) for k, d in enumerate(indices.shape))]
        out, ok = _take(sub, indices, axis, lambda i: np.take_along_axis(sub, i, axis=axis))
        return np.where(ok, out, np.zeros((), x.dtype)).astype(x.dtype)


def _arg_infer(x, *, axis, keepdims, select_last_index):
    if x.shape[axis] == 0:
        raise ShapeError(f"arg-reduction over the empty axis {axis} of {x}")
    if x.dtype is DType.bool:
        raise ShapeError(f"input must be numeric, got {x}")
    shape = x.shape[:axis] + ((1,) if keepdims else ()) + x.shape[axis + 1:]
    return TensorType(shape, DType.i64)


def _arg(fn):
    def reference(x, *, axis, keepdims, select_last_index):
        if select_last_index:
            flipped = np.flip(x, axis)
            idx = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            idx = fn(x, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if keepdims else idx

    return reference


_ARG_ATTRS = {"axis": Attr("int", 0), "keepdims": Attr("int", 1, (0, 1)), "select_last_index": Attr("int", 0, (0, 1))}


def _arg_resolve(x, *, axis, **rest):
    return {"axis": norm_axis(axis, x.rank), **rest}


@defop("argmax", ("x",), _ARG_ATTRS, traits=(Trait.ZERO_GRAD,))
class ArgMax:
    """Index (i64) of the largest element along ``axis``: the first of equal ones, or the last
    with ``select_last_index``. A NaN is larger than everything (numpy's rule)."""

    resolve = _arg_resolve
    infer = _arg_infer
    reference = _arg(np.argmax)
    cost = costs.per_input


@defop("argmin", ("x",), _ARG_ATTRS, traits=(Trait.ZERO_GRAD,))
class ArgMin:
    """Index (i64) of the smallest element along ``axis`` (ties as argmax)."""

    resolve = _arg_resolve
    infer = _arg_infer
    reference = _arg(np.argmin)
    cost = costs.per_input
