"""Element-wise kernels: one broadcasting map over the scalar table both LLVM targets share
(irc.targets.llvm.elementwise.SCALAR), so that cpu and cuda compute the same thing by
construction; transcendental functions resolve to ``devmath``.

One thread per output element over a grid-stride loop. Dimensions are collapsed wherever every
operand walks them contiguously (a same-shape add is one flat index, a bias add over NCHW two),
so most kernels do one or two constant divisions per element to find their inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.registry import cuda_kernel
from irc.targets.llvm.elementwise import (
    SCALAR,
    broadcast_strides,
    chain_fn,
    collapse,
    inplace_rule,
    same_shape_inputs,
    scalar_fn,
)

MAP_THREADS = 256


def emit_map(k: GpuKernel, fn: Callable[..., object], in_dtypes: Sequence[DType] | None = None) -> Launch:
    """out[i] = fn(*ins[broadcast(i)]) in compute types; returns the launch."""
    out = k.outs[0]
    ins = k.ins
    in_dtypes = in_dtypes or [b.dtype for b in ins]
    all_strides = [broadcast_strides(b.shape, out.shape) for b in ins] + [out.strides]
    dims, strides = collapse(out.shape, all_strides)
    with k.grid_stride(out.size) as i:
        idx = k.unravel(i, dims)
        vals = [k.load(b, k.offset(idx, strides[j]), in_dtypes[j]) for j, b in enumerate(ins)]
        k.store(out, k.offset(idx, strides[-1]), fn(*vals))
    return grid1d(out.size, MAP_THREADS)


def _check_scalar(node: Node, arch) -> str | None:
    if node.op not in SCALAR:
        return f"no scalar semantics for '{node.op}'"
    return None


def _emit_op(k: GpuKernel, node: Node) -> Launch:
    return emit_map(k, scalar_fn(k, node))


for _op in SCALAR:
    cuda_kernel(_op, kind="elementwise", inplace=inplace_rule(_op),
                check=None if _op in ("cast", "where") else _check_scalar)(_emit_op)


@cuda_kernel("elementwise_chain", kind="elementwise", inplace=same_shape_inputs)
def _chain(k: GpuKernel, node: Node) -> Launch:
    """The chain's sub-graph evaluated per element, every intermediate in a register."""
    return emit_map(k, chain_fn(k, node))
