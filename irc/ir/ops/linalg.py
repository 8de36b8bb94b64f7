"""Matrix products: ``gemm`` (ONNX Gemm, plus a fused epilogue slot) and ``matmul`` (numpy matmul).

These carry almost all of a network's arithmetic, so they are what the im2col lowering produces
and what the fusion pass grows: ``gemm`` has an ``epilogue`` attribute naming an activation that a
backend applies to the result before writing it, so GEMM + bias + activation is one kernel.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ModelError, ShapeError
from irc.ir.ops.conv import accumulator
from irc.ir.ops.registry import REGISTRY, REQUIRED, Attr, broadcast_shapes, defop, same_dtype
from irc.ir.types import DType, TensorType


def _numeric(t: TensorType, what: str) -> None:
    if t.dtype is DType.bool:
        raise ShapeError(f"{what} must be numeric, got {t}")


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Unidirectional broadcasting: ``shape`` stretches to ``target`` without changing it."""
    return len(shape) <= len(target) and all(d in (1, t) for d, t in zip(shape[::-1], target[::-1]))


def _epilogue_op(name: str):
    """The op an epilogue names: 'none', or a unary element-wise activation taking its default attributes."""
    if name == "none":
        return None
    op = REGISTRY.get(name)
    if op is None or not {"activation", "unary"} <= op.tags or any(a.default is REQUIRED for a in op.attrs.values()):
        raise ModelError(f"epilogue '{name}' is not 'none' or the name of a unary activation op (e.g. 'relu')")
    return op


@defop(
    "gemm",
    ("a", "b", "c?"),
    {
        "alpha": Attr("float", 1.0),
        "beta": Attr("float", 1.0),
        "trans_a": Attr("int", 0, (0, 1)),
        "trans_b": Attr("int", 0, (0, 1)),
        "epilogue": Attr("str", "none"),
    },
    tags=("linalg",),
)
class Gemm:
    """y = epilogue(alpha * A' @ B' + beta * C) with A' = A.T if trans_a, B' = B.T if trans_b;
    A and B are matrices, C broadcasts one way to the [M, N] result (as ONNX Gemm)."""

    def infer(a, b, c=None, *, alpha, beta, trans_a, trans_b, epilogue):
        _epilogue_op(epilogue)
        dt = same_dtype(a, b, *([c] if c is not None else []))
        _numeric(a, "A")
        if a.rank != 2 or b.rank != 2:
            raise ShapeError(f"A and B must be matrices (rank 2), got {a} and {b}")
        m, k = a.shape[::-1] if trans_a else a.shape
        k2, n = b.shape[::-1] if trans_b else b.shape
        if k != k2:
            ta, tb = ("^T" if trans_a else ""), ("^T" if trans_b else "")
            raise ShapeError(
                f"inner dimensions differ: A{ta} is {m}x{k} and B{tb} is {k2}x{n}; expected B{tb} to have {k} rows"
            )
        if c is not None and not broadcasts_to(c.shape, (m, n)):
            raise ShapeError(f"C {c} must broadcast to the result shape [{m}, {n}]")
        return TensorType((m, n), dt)

    def reference(a, b, c=None, *, alpha, beta, trans_a, trans_b, epilogue):
        dt = a.dtype
        acc = accumulator(dt)
        a = (a.T if trans_a else a).astype(acc, copy=False)
        b = (b.T if trans_b else b).astype(acc, copy=False)
        y = a @ b
        if alpha != 1.0:
            y = y * acc.type(alpha)
        if c is not None and beta != 0.0:
            cc = c.astype(acc, copy=False)
            y = y + (cc if beta == 1.0 else cc * acc.type(beta))
        y = np.require(y.astype(dt, copy=False), requirements="C")
        op = _epilogue_op(epilogue)
        if op is not None:
            y = op.evaluate([y], op.check_attrs({}))[0]
        return y


@defop("matmul", ("a", "b"), tags=("linalg",))
class MatMul:
    """numpy matmul: a 1-D operand is promoted to a matrix (and that axis dropped from the
    result); leading batch dimensions broadcast."""

    def infer(a, b):
        dt = same_dtype(a, b)
        _numeric(a, "inputs")
        if a.rank == 0 or b.rank == 0:
            raise ShapeError(f"inputs must have rank >= 1, got {a} and {b}")
        ash = (1, *a.shape) if a.rank == 1 else a.shape
        bsh = (*b.shape, 1) if b.rank == 1 else b.shape
        if ash[-1] != bsh[-2]:
            raise ShapeError(
                f"inner dimensions differ: {a} and {b}; expected the second operand's "
                f"{'length' if b.rank == 1 else 'second-to-last dimension'} to be {ash[-1]}"
            )
        batch = broadcast_shapes(ash[:-2], bsh[:-2])
        out = (*batch, *(() if a.rank == 1 else (ash[-2],)), *(() if b.rank == 1 else (bsh[-1],)))
        return TensorType(out, dt)

    def reference(a, b):
        acc = accumulator(a.dtype)
        return np.asarray(np.matmul(a.astype(acc, copy=False), b.astype(acc, copy=False))).astype(a.dtype, copy=False)
