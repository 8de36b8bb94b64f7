"""topk: the k largest (or smallest) elements along one axis and their positions.

k is an attribute: the output's shape depends on it, and irc shapes are static, so ONNX's k input
must be a constant at import (a k computed at run time is refused there, naming the node).
Outputs are always sorted, best first (ONNX's ``sorted=0`` allows any order, so sorted is a
valid answer); of equal elements the one at the lower position comes first; a NaN counts as
larger than every number.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, defop, norm_axis
from irc.ir.types import DType


@defop("topk", ("x",), {"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("int", 1, (0, 1)),
                        "sorted": Attr("int", 1, (0, 1))})
class TopK:
    """(values, i64 indices) of the k best elements along ``axis``: the output has x's shape with
    that axis of size k."""

    def resolve(x, *, k, axis, largest, sorted):
        return {"k": k, "axis": norm_axis(axis, x.rank), "largest": largest, "sorted": sorted}

    def infer(x, *, k, axis, largest, sorted):
        if x.dtype is DType.bool or x.rank == 0:
            raise ShapeError(f"input must be a numeric tensor of rank >= 1, got {x}")
        if not 0 <= k <= x.shape[axis]:
            raise ShapeError(f"k = {k} must be in [0, {x.shape[axis]}] (axis {axis} of {x})")
        shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
        return x.with_shape(shape), x.with_shape(shape).with_dtype(DType.i64)

    def reference(x, *, k, axis, largest, sorted):
        # Ranks of the distinct values (NaN last, so largest), negated for descending order; a
        # stable sort of the ranks keeps equal elements in position order.
        _, rank = np.unique(x, return_inverse=True)
        rank = rank.reshape(x.shape).astype(np.int64)
        order = np.argsort(-rank if largest else rank, axis=axis, kind="stable")
        order = np.take(order, range(k), axis=axis)
        return np.take_along_axis(x, order, axis=axis), order.astype(np.int64)

    def cost(n):
        """One comparison per input element and per kept element (the insertion's worst case)."""
        return costs.Cost(0, n.inputs[0].type.size * max(1, n.attrs["k"]))
