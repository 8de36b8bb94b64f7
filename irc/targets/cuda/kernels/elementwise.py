"""Element-wise kernels: one broadcasting map, with the scalar meaning of every op taken from
the CPU target's table (``irc.targets.cpu.kernels.elementwise.SCALAR``) so that both targets
compute the same thing by construction; transcendental functions resolve to ``devmath``.

One thread per output element over a grid-stride loop. Dimensions are collapsed wherever every
operand walks them contiguously (a same-shape add is one flat index, a bias add over NCHW two),
so most kernels do one or two constant divisions per element to find their inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from irc.ir.graph import Node
from irc.ir.types import DType
from irc.targets.cpu.kernels.elementwise import SCALAR, broadcast_strides, collapse
from irc.targets.cuda.kernel import GpuKernel, Launch, grid1d
from irc.targets.cuda.kernels.registry import cuda_kernel, same_shape_inputs

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


_ELEMENTWISE = [op for op in SCALAR if op != "cast" and op != "where"]


def _check_scalar(node: Node, arch) -> str | None:
    if node.op not in SCALAR:
        return f"no scalar semantics for '{node.op}'"
    return None


def _emit_op(k: GpuKernel, node: Node) -> Launch:
    dts = [b.dtype for b in k.ins]
    return emit_map(k, lambda *v: SCALAR[node.op](k, node.attrs, dts, k.outs[0].dtype, *v))


cuda_kernel(*_ELEMENTWISE, kind="elementwise", inplace=same_shape_inputs, check=_check_scalar)(_emit_op)
cuda_kernel("cast", kind="elementwise",
            inplace=lambda n: [0] if n.inputs[0].type.nbytes == n.outputs[0].type.nbytes else [])(_emit_op)
cuda_kernel("where", kind="elementwise",
            inplace=lambda n: [i for i in (1, 2) if n.inputs[i].type == n.outputs[0].type])(_emit_op)


@cuda_kernel("elementwise_chain", kind="elementwise", inplace=same_shape_inputs)
def _chain(k: GpuKernel, node: Node) -> Launch:
    """The chain's sub-graph evaluated per element, every intermediate in a register."""
    from irc.ir.ops.fused import chain_program

    g = chain_program(node.attrs["program"])

    def body(*vals):
        env = dict(zip(g.inputs, vals))
        for n in g.nodes:
            dts = [v.dtype for v in n.inputs]
            env[n.outputs[0]] = SCALAR[n.op](k, n.attrs, dts, n.outputs[0].dtype, *(env[v] for v in n.inputs))
        return env[g.outputs[0]]

    return emit_map(k, body)
