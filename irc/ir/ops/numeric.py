"""Element-wise ops that classify floats or take remainders: isnan, isinf, mod.

Torch exporters lower attention's softmax to ``where(isnan(p), 0, p)`` (a fully masked row gives
NaN) and causal masks to ``mod`` of index ranges, so these sit on the path of every transformer.
They are element-wise (the fuse pass chains them) and every target computes them from the shared
scalar table (``irc.targets.llvm.elementwise.SCALAR``).
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops.costs import per_output
from irc.ir.ops.registry import Attr, Trait, broadcast_shapes, defop, expect_float, same_dtype
from irc.ir.types import DType, TensorType

_CLASSIFY = (Trait.ELEMENTWISE, Trait.UNARY, Trait.ZERO_GRAD)


@defop("isnan", ("x",), traits=_CLASSIFY)
class IsNaN:
    """x != x: true where x is a NaN (bool output)."""

    def infer(x):
        expect_float(x)
        return x.with_dtype(DType.bool)

    def reference(x):
        return np.isnan(x)

    cost = per_output


@defop("isinf", ("x",), {"detect_negative": Attr("int", 1, (0, 1)), "detect_positive": Attr("int", 1, (0, 1))},
       traits=_CLASSIFY)
class IsInf:
    """True where x is +inf (with ``detect_positive``) or -inf (with ``detect_negative``)."""

    def infer(x, *, detect_negative, detect_positive):
        expect_float(x)
        return x.with_dtype(DType.bool)

    def reference(x, *, detect_negative, detect_positive):
        pos = np.isposinf(x) if detect_positive else np.zeros(x.shape, bool)
        neg = np.isneginf(x) if detect_negative else np.zeros(x.shape, bool)
        return pos | neg

    cost = per_output


@defop("mod", ("a", "b"), {"fmod": Attr("int", 0, (0, 1))}, traits=(Trait.ELEMENTWISE, Trait.BINARY))
class Mod:
    """Remainder of a / b, broadcasting. ``fmod=0``: the sign of the divisor (Python's %, numpy's
    mod; a zero remainder takes b's sign); ``fmod=1``: the sign of the dividend (C's fmod). An
    integer remainder by 0 is 0 (ONNX leaves it undefined; irc defines it so no target traps)."""

    def infer(a, b, *, fmod):
        dt = same_dtype(a, b)
        if dt is DType.bool:
            raise ShapeError(f"inputs must be numeric, got {a} and {b}")
        return TensorType(broadcast_shapes(a.shape, b.shape), dt)

    def reference(a, b, *, fmod):
        with np.errstate(all="ignore"):
            if a.dtype.kind in "iu":
                safe = np.where(b == 0, np.ones_like(b), b)
                r = (np.fmod if fmod else np.mod)(a, safe)
                return np.where(b == 0, np.zeros_like(r), r).astype(a.dtype)
            if a.dtype.itemsize < 4:  # f16 and bf16 through f32, as the targets compute them
                return (np.fmod if fmod else np.mod)(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
            return np.asarray((np.fmod if fmod else np.mod)(a, b)).astype(a.dtype)

    cost = per_output
