"""Kernel of topk: per row along the axis, an insertion into the k output slots.

The output buffers hold the best elements seen so far, sorted best first. Each new element that
beats the last kept one (or arrives while fewer than k are kept) walks down from the end,
shifting worse ones one slot on, and lands after every element it does not strictly beat: equal
elements therefore stay in position order, as the reference's stable sort keeps them. Work is
n*k in the worst case (an already sorted row), n when most elements lose to the k-th.
"""

from __future__ import annotations

import math

from llvmlite import ir

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, load_raw, parallel_nest, store_raw
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.scalar import Scalar


def beats(s: Scalar, v: ir.Value, w: ir.Value, largest: bool) -> ir.Value:
    """Whether ``v`` ranks strictly before ``w``; a NaN is larger than every number."""
    b = s.b
    if not s.is_float:
        return s._cmp(">" if largest else "<", v, w)
    strict = b.fcmp_ordered(">" if largest else "<", v, w)
    nan_v, nan_w = s.is_nan(v), s.is_nan(w)
    nan_wins = b.and_(nan_v, b.not_(nan_w)) if largest else b.and_(nan_w, b.not_(nan_v))
    return b.or_(strict, nan_wins)


def _slot(k: KernelBuilder, init: ir.Value) -> ir.Value:
    with k.b.goto_entry_block():
        p = k.b.alloca(init.type)
    k.b.store(init, p)
    return p


@cpu_kernel("topk")
def _topk(k: KernelBuilder, node: Node) -> None:
    vals, idxs = k.outs
    x = k.ins[0]
    if vals.size == 0:
        return
    kk, axis, largest = node.attrs["k"], node.attrs["axis"], bool(node.attrs["largest"])
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    with parallel_nest(k, [outer, inner], n * kk, name="k") as (o, j):
        b = k.b
        s = Scalar(k, x.dtype)
        xbase = add(k, b.mul(o, k.i64(n * inner)), j)
        obase = add(k, b.mul(o, k.i64(kk * inner)), j)

        def at(p: ir.Value) -> ir.Value:
            return add(k, obase, b.mul(p, k.i64(inner)))

        count = _slot(k, k.i64(0))
        with k.loop(n, name="n") as t:
            v = k.load(x, add(k, xbase, b.mul(t, k.i64(inner))))
            c = b.load(count, typ=T.I64)
            full = b.icmp_signed(">=", c, k.i64(kk))
            # The last slot is read only when the slots are full (select keeps it unused otherwise).
            enter = b.or_(b.not_(full), beats(s, v, k.load(vals, at(k.i64(kk - 1))), largest))
            with k.if_(enter):
                b.store(b.select(full, c, b.add(c, k.i64(1))), count)
                pos = _slot(k, b.select(full, k.i64(kk - 1), c))
                fn = b.function
                head, check, move, done = (fn.append_basic_block(f"ins.{w}") for w in ("head", "check", "move", "done"))
                b.branch(head)
                b.position_at_end(head)
                p = b.load(pos, typ=T.I64)
                b.cbranch(b.icmp_signed(">", p, k.i64(0)), check, done)
                b.position_at_end(check)
                prev = b.sub(p, k.i64(1))
                b.cbranch(beats(s, v, k.load(vals, at(prev)), largest), move, done)
                b.position_at_end(move)
                store_raw(k, vals, at(p), load_raw(k, vals, at(prev)))
                store_raw(k, idxs, at(p), load_raw(k, idxs, at(prev)))
                b.store(prev, pos)
                b.branch(head)
                b.position_at_end(done)
                p = b.load(pos, typ=T.I64)
                k.store(vals, at(p), v)
                k.store(idxs, at(p), t, DType.i64)
