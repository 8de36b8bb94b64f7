"""Ops whose output is decided by element positions: trilu (keep a triangle of each matrix) and
one_hot (a value per position, "on" where it equals the index)."""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, defop, norm_axis
from irc.ir.types import DType


@defop("trilu", ("x",), {"upper": Attr("int", 1, (0, 1)), "k": Attr("int", 0)})
class Trilu:
    """The upper (j - i >= k) or lower (j - i <= k) triangle of each matrix in the last two axes
    of x; other elements are 0. ONNX's k input must be a constant."""

    def infer(x, *, upper, k):
        if x.rank < 2:
            raise ShapeError(f"input must have rank >= 2 (a batch of matrices), got {x}")
        return x

    def reference(x, *, upper, k):
        out = np.triu(x, k) if upper else np.tril(x, k)
        return out.astype(x.dtype, copy=False)

    cost = costs.free  # a selection: no arithmetic


def _one_hot_axis(indices, axis: int) -> int:
    return norm_axis(axis, indices.rank + 1)


@defop("one_hot", ("indices", "values"), {"depth": Attr("int"), "axis": Attr("int", -1)})
class OneHot:
    """values[1] where the position along the new axis ``axis`` (of size ``depth``) equals the
    index, values[0] elsewhere. Indices of any numeric type are truncated to integers; negative
    ones count from ``depth``; one outside [-depth, depth) sets nothing ("off" everywhere). ONNX's
    depth input must be a constant."""

    def resolve(indices, values, *, depth, axis):
        return {"depth": depth, "axis": _one_hot_axis(indices, axis)}

    def infer(indices, values, *, depth, axis):
        if indices.dtype is DType.bool:
            raise ShapeError(f"indices must be numeric, got {indices}")
        if values.size != 2 or values.rank > 1:
            raise ShapeError(f"values must hold two elements [off, on], got {values}")
        if depth < 1:
            raise ShapeError(f"depth must be >= 1, got {depth}")
        return values.with_shape(indices.shape[:axis] + (depth,) + indices.shape[axis:])

    def reference(indices, values, *, depth, axis):
        with np.errstate(invalid="ignore"):
            idx = indices.astype(np.int64) if indices.dtype.kind != "f" else np.trunc(indices).astype(np.int64)
        ok = (idx >= -depth) & (idx < depth)
        idx = np.where(ok, idx % depth, -1)
        positions = np.arange(depth).reshape((1,) * axis + (depth,) + (1,) * (indices.ndim - axis))
        hit = np.expand_dims(idx, axis) == positions
        values = values.reshape(2)
        return np.where(hit, values[1], values[0]).astype(values.dtype)

    cost = costs.free  # a selection: no arithmetic
