"""Matrix products: ``gemm`` (ONNX Gemm, plus an activation slot) and ``matmul`` (numpy matmul).

These carry almost all of a network's arithmetic, so they are what the im2col lowering produces
and what the fusion pass grows: ``gemm`` takes an activation (``act``, ``act_alpha``,
``act_beta``: irc/ir/ops/activation.py) that a backend applies to the result before writing it,
so GEMM + bias + activation is one kernel.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.activation import ACTIVATION_OPS, act_attrs, apply_activation
from irc.ir.ops.conv import accumulator
from irc.ir.ops.registry import Attr, Trait, broadcast_shapes, defop, same_dtype
from irc.ir.types import DType, TensorType


def _numeric(t: TensorType, what: str) -> None:
    if t.dtype is DType.bool:
        raise ShapeError(f"{what} must be numeric, got {t}")


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Unidirectional broadcasting: ``shape`` stretches to ``target`` without changing it."""
    return len(shape) <= len(target) and all(d in (1, t) for d, t in zip(shape[::-1], target[::-1]))


@defop(
    "gemm",
    ("a", "b", "c?"),
    {
        "alpha": Attr("float", 1.0),
        "beta": Attr("float", 1.0),
        "trans_a": Attr("int", 0, (0, 1)),
        "trans_b": Attr("int", 0, (0, 1)),
        **act_attrs(ACTIVATION_OPS),
    },
    traits=(Trait.LINALG, Trait.BATCH_FREE),
)
class Gemm:
    """y = act(alpha * A' @ B' + beta * C) with A' = A.T if trans_a, B' = B.T if trans_b;
    A and B are matrices, C broadcasts one way to the [M, N] result (as ONNX Gemm)."""

    def infer(a, b, c=None, *, alpha, beta, trans_a, trans_b, act, act_alpha, act_beta):
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

    def reference(a, b, c=None, *, alpha, beta, trans_a, trans_b, act, act_alpha, act_beta):
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
        return apply_activation(y, act, act_alpha, act_beta)

    def cost(n):
        """M*N*K: output elements times K (a is [M, K] or [K, M])."""
        m = n.outputs[0].shape[0] if n.outputs[0].shape else 1
        return costs.contraction(n, costs.out_size(n) * (n.inputs[0].type.size // max(m, 1)))


@defop("matmul", ("a", "b"), traits=(Trait.LINALG, Trait.BATCH_FREE))
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

    cost = costs.matmul
