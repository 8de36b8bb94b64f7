"""Kernel of cumsum: x as [outer, n, inner]; step t along the axis adds row t (or t-1, when
exclusive) of x to the output row written at step t-1. Each step is a contiguous row of
``inner`` elements, which LLVM vectorises; the sum runs in the element type, as the reference's.
"""

from __future__ import annotations

import math

from irc.ir.graph import Node
from irc.targets.cpu.kernel import KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.cpu.kernels.strided import add, parallel_nest
from irc.targets.llvm.scalar import Scalar


@cpu_kernel("cumsum")
def _cumsum(k: KernelBuilder, node: Node) -> None:
    out, x = k.outs[0], k.ins[0]
    if out.size == 0:
        return
    axis, exclusive, reverse = node.attrs["axis"], node.attrs["exclusive"], node.attrs["reverse"]
    outer, n, inner = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])

    def row(o, t):
        """Element offset of row ``t`` in scan order (reversed rows when ``reverse``)."""
        b = k.b
        pos = b.sub(k.i64(n - 1), t) if reverse else t
        return b.mul(b.add(b.mul(o, k.i64(n)), pos), k.i64(inner))

    with parallel_nest(k, [outer], n * inner, name="c") as (o,):
        s = Scalar(k, x.dtype)
        first = row(o, k.i64(0))
        with k.loop(inner, name="j") as j:
            k.store(out, add(k, first, j), s.c(0) if exclusive else k.load(x, add(k, first, j)))
        if n > 1:
            with k.loop(n, start=1, name="t") as t:
                cur, prev = row(o, t), row(o, k.b.sub(t, k.i64(1)))
                with k.loop(inner, name="j") as j:
                    term = k.load(x, add(k, prev if exclusive else cur, j))
                    k.store(out, add(k, cur, j), s.add(k.load(out, add(k, prev, j)), term))
