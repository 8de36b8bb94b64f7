"""cumsum: running sums along one axis.

The sum runs in the input's own type, one element after another, as ONNX's reference and numpy's
``cumsum`` do (integers wrap; f16 rounds at every step), so every target can match it exactly.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.registry import Attr, defop, norm_axis
from irc.ir.types import DType


@defop("cumsum", ("x",), {"axis": Attr("int", 0), "exclusive": Attr("int", 0, (0, 1)),
                          "reverse": Attr("int", 0, (0, 1))})
class CumSum:
    """y[..., i, ...] = sum of x[..., j, ...] along ``axis`` for j <= i (j < i with ``exclusive``;
    j >= i, or j > i, with ``reverse``). ONNX's run-time axis input must be a constant."""

    def resolve(x, *, axis, exclusive, reverse):
        return {"axis": norm_axis(axis, x.rank), "exclusive": exclusive, "reverse": reverse}

    def infer(x, *, axis, exclusive, reverse):
        if x.dtype is DType.bool or x.rank == 0:
            raise ShapeError(f"input must be a numeric tensor of rank >= 1, got {x}")
        return x

    def reference(x, *, axis, exclusive, reverse):
        y = np.flip(x, axis) if reverse else x
        with np.errstate(over="ignore"):
            s = np.cumsum(y, axis=axis, dtype=x.dtype)
        if exclusive:
            s = np.concatenate([np.zeros_like(np.take(s, [0], axis=axis)),
                                np.take(s, range(s.shape[axis] - 1), axis=axis)], axis=axis)
        return np.ascontiguousarray(np.flip(s, axis) if reverse else s).astype(x.dtype)

    cost = costs.per_output  # one add per element
