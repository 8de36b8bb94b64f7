"""Element-wise kernels: one broadcasting map emitter over the shared scalar table
(irc.targets.llvm.elementwise.SCALAR).

The map collapses the output's dimensions wherever every operand is contiguous across them (a
same-shape add becomes one flat loop; a bias add over NCHW becomes two), runs the outermost
collapsed dimension on the thread pool and leaves the innermost contiguous loop for LLVM to
vectorise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernel import KernelBuilder
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
    with k.parallel_loop(dims[0], work_per_iter=inner * cost) as i0:
        with k.nest(dims[1:]) as rest:
            idx = [i0, *rest]
            vals = [k.load(b, k.offset(idx, strides[j]), in_dtypes[j]) for j, b in enumerate(ins)]
            k.store(out, k.offset(idx, strides[-1]), fn(*vals))


def _emit_op(k: KernelBuilder, node: Node) -> None:
    emit_map(k, scalar_fn(k, node), cost=COST[node.op])


for _op in SCALAR:
    cpu_kernel(_op, inplace=inplace_rule(_op))(_emit_op)


@cpu_kernel("elementwise_chain", inplace=same_shape_inputs)
def _chain(k: KernelBuilder, node: Node) -> None:
    """The chain's sub-graph evaluated per element, every intermediate in a register."""
    emit_map(k, chain_fn(k, node), cost=chain_cost(node))
