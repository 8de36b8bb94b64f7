"""Element-wise kernels: one broadcasting map emitter over the shared scalar table
(irc.targets.llvm.elementwise.SCALAR).

The map collapses the output's dimensions wherever every operand is contiguous across them (a
same-shape add becomes one flat loop; a bias add over NCHW becomes two), runs the outermost
collapsed dimension on the thread pool and leaves the innermost contiguous loop for LLVM to
vectorise. When that dimension is too short to share evenly (an image's 3 channels over 2
threads would leave one thread twice the work), its rows are cut into blocks of the next
dimension and the blocks are shared instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import PARALLEL_MIN_WORK, KernelBuilder
from irc.targets.cpu.kernels.registry import cpu_kernel
from irc.targets.llvm.elementwise import (
    COST,
    SCALAR,
    broadcast_strides,
    chain_cost,
    chain_fn,
    collapse,
    inplace_rule,
    same_shape_inputs,
    scalar_fn,
)


def emit_map(k: KernelBuilder, fn: Callable[..., object], in_dtypes: Sequence[DType] | None = None,
             cost: int = 1) -> None:
    """out[i] = fn(*ins[broadcast(i)]), values in their compute types."""
    out = k.outs[0]
    ins = k.ins
    in_dtypes = in_dtypes or [b.dtype for b in ins]
    all_strides = [broadcast_strides(b.shape, out.shape) for b in ins] + [out.strides]
    dims, strides = collapse(out.shape, all_strides)
    if out.size == 0:
        return
    inner = math.prod(dims[1:])

    def body(idx: list) -> None:
        vals = [k.load(b, k.offset(idx, strides[j]), in_dtypes[j]) for j, b in enumerate(ins)]
        k.store(out, k.offset(idx, strides[-1]), fn(*vals))

    cuts = row_cuts(dims, k.state.ctx.threads) if out.size * cost >= PARALLEL_MIN_WORK else 1
    if cuts == 1:
        with k.parallel_loop(dims[0], work_per_iter=inner * cost) as i0:
            with k.nest(dims[1:]) as rest:
                body([i0, *rest])
        return
    step = math.ceil(dims[1] / cuts)
    with k.parallel_loop(dims[0] * cuts, work_per_iter=inner // cuts * cost) as u:
        b = k.b
        i0, c = b.sdiv(u, k.i64(cuts)), b.srem(u, k.i64(cuts))
        end = k.i64(dims[1])
        lo = b.mul(c, k.i64(step))
        hi = b.add(lo, k.i64(step))
        lo = b.select(b.icmp_signed("<", lo, end), lo, end)
        hi = b.select(b.icmp_signed("<", hi, end), hi, end)
        with k.loop(hi, start=lo) as i1:
            with k.nest(dims[2:]) as rest:
                body([i0, i1, *rest])


def row_cuts(dims: Sequence[int], threads: int) -> int:
    """Blocks each row of the outermost dimension is cut into so that the rows' blocks share out
    evenly over ``threads`` (1: the rows themselves do): enough that the blocks number at least
    four per thread, each still a run of the next dimension."""
    if threads <= 1 or len(dims) < 2 or dims[0] % threads == 0 or dims[0] >= 4 * threads:
        return 1
    return max(1, min(dims[1], math.ceil(4 * threads / dims[0])))


def _emit_op(k: KernelBuilder, node: Node) -> None:
    emit_map(k, scalar_fn(k, node), cost=COST[node.op])


for _op in SCALAR:
    cpu_kernel(_op, inplace=inplace_rule(_op))(_emit_op)


@cpu_kernel("elementwise_chain", inplace=same_shape_inputs)
def _chain(k: KernelBuilder, node: Node) -> None:
    """The chain's sub-graph evaluated per element, every intermediate in a register."""
    emit_map(k, chain_fn(k, node), cost=chain_cost(node))
