"""Scaled dot-product attention as one op: softmax(scale * q @ k^T + mask) @ v.

The fuse_attention pass makes it from the MatMul -> scale -> Add(mask) -> Softmax -> MatMul
chain transformer exports write, so a target can run it as one tiled kernel that never writes
the [..., Sq, Sk] scores to memory. K is taken untransposed ([..., Sk, D], the layout the heads
are split into), so the kernel reads K and V row by row alike.

The reference computes in float32 at least, as the unfused chain does, and subtracts each row's
maximum before exp. A row whose every score is -inf gives NaN, as Softmax of such a row does.
"""

from __future__ import annotations

import numpy as np

from irc.errors import ShapeError
from irc.ir.ops import costs
from irc.ir.ops.conv import accumulator
from irc.ir.ops.linalg import broadcasts_to
from irc.ir.ops.registry import Attr, Trait, broadcast_shapes, defop, expect_float, same_dtype
from irc.ir.types import TensorType


def scores_shape(q: TensorType, k: TensorType, v: TensorType) -> tuple[int, ...]:
    """The [..., Sq, Sk] shape of the scores (batch axes of q, k and v broadcast)."""
    batch = broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    return (*batch, q.shape[-2], k.shape[-2])


@defop("attention", ("q", "k", "v", "mask?"), {"scale": Attr("float", 1.0)}, traits=(Trait.FUSED,),
       no_grad="attention exists only after the fuse_attention pass, which runs after autodiff: "
               "differentiate the unfused MatMul-Softmax-MatMul graph")
class Attention:
    """softmax(scale * q @ k^T + mask, axis=-1) @ v for q [..., Sq, D], k [..., Sk, D],
    v [..., Sk, Dv] and an additive mask that broadcasts one way to [..., Sq, Sk]; batch axes
    broadcast. The output is [..., Sq, Dv]."""

    def infer(q, k, v, mask=None, *, scale):
        same_dtype(q, k, v, *([mask] if mask is not None else []))
        expect_float(q)
        if min(q.rank, k.rank, v.rank) < 2:
            raise ShapeError(f"q, k and v must have rank >= 2, got {q}, {k} and {v}")
        if k.shape[-1] != q.shape[-1]:
            raise ShapeError(f"k {k} must have q's last dimension {q.shape[-1]} (k is not transposed)")
        if k.shape[-2] == 0:
            raise ShapeError(f"k {k} has no rows: a softmax over no keys is undefined")
        if v.shape[-2] != k.shape[-2]:
            raise ShapeError(f"v {v} must have as many rows as k {k} ({k.shape[-2]})")
        scores = scores_shape(q, k, v)
        if mask is not None and not broadcasts_to(mask.shape, scores):
            raise ShapeError(f"mask {mask} must broadcast to the scores' shape {list(scores)}")
        return TensorType((*scores[:-1], v.shape[-1]), q.dtype)

    def reference(q, k, v, mask=None, *, scale):
        acc = accumulator(q.dtype)
        s = np.matmul(q.astype(acc, copy=False), np.swapaxes(k.astype(acc, copy=False), -1, -2)) * acc.type(scale)
        if mask is not None:
            s = s + mask.astype(acc, copy=False)
        with np.errstate(invalid="ignore"):
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
        return np.matmul(p, v.astype(acc, copy=False)).astype(q.dtype, copy=False)

    def cost(n):
        """The two products (Sq*Sk*(D + Dv) MACs per batch entry) and, per score, the scale,
        mask, maximum, exp and sum; one divide per output element."""
        q, k, v = (x.type for x in n.inputs[:3])
        scores = scores_shape(q, k, v)
        size = int(np.prod(scores))
        macs = size * (q.shape[-1] + v.shape[-1])
        return costs.Cost(macs, 2 * macs + 5 * size + costs.out_size(n))
