"""One PTX module and one launch plan per (graph, architecture).

Every node that is not a view becomes one kernel launch; identical kernels (same op, attributes,
types and aliasing) are emitted once and launched as often as needed. Memory comes from the
target-independent memory plan with the cuda kernels' rules for views and in-place updates
(no scratch: the GPU kernels form im2col tiles in shared memory, never in global memory).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from irc.errors import IRCError, UnsupportedOpError
from irc.ir.graph import Graph, Node
from irc.passes.memory_plan import MemoryPlan, plan_memory
from irc.targets.cuda import ptx as ptxmod
from irc.targets.cuda.arch import Arch
from irc.targets.cuda.kernel import GpuKernel, GpuModule, Launch
from irc.targets.cuda.kernels import KERNELS
from irc.targets.cuda.plan import LaunchPlan, Step, arg_ref, buffer_table, check_plan, io_table, output_copies


@dataclass
class CudaCode:
    """What codegen makes for one architecture."""

    arch: Arch
    ir: str
    ptx: str
    plan: LaunchPlan
    #: kernel name -> its kind (gemm, conv, elementwise...)
    kinds: dict[str, str]
    ir_seconds: float
    ptx_seconds: float


def check_legal(g: Graph, arch: Arch) -> None:
    """Every node must have a kernel that takes it; one error lists every node that does not."""
    bad: dict[str, list[str]] = {}
    for n in g.nodes:
        kdef = KERNELS.get(n.op)
        if kdef is None:
            from irc.targets.cuda.kernels.registry import UNSUPPORTED

            reason = UNSUPPORTED.get(n.op, "no kernel")
        else:
            reason = kdef.check(n, arch) if kdef.check else None
        if reason:
            bad.setdefault(f"{n.op} ({reason})", []).append(n.label)
    if bad:
        parts = "; ".join(f"{what}: nodes {', '.join(nodes[:5])}" for what, nodes in sorted(bad.items()))
        raise UnsupportedOpError(f"the cuda target ({arch}) cannot run: {parts}")


def memory_plan_for_cuda(g: Graph, mem: str = "mid_mem") -> MemoryPlan:
    """The arena plan at a memory level of irc.CUDA: ``full_mem`` gives every value bytes of its
    own, ``mid_mem`` (and ``low_mem``, which differs only in how a caller splits the batch) reuses
    dead values' bytes."""
    def kdef(n: Node):
        return KERNELS[n.op]

    return plan_memory(g, is_view=lambda n: kdef(n).view,
                       inplace_inputs=lambda n: kdef(n).inplace(n) if kdef(n).inplace else [],
                       reuse=mem != "full_mem")


def generate(g: Graph, arch: Arch, *, ftz: bool = True, plan: MemoryPlan | None = None, emit: bool = True) -> CudaCode:
    """Kernels and launch plan of ``g`` for ``arch``; ``emit=False`` stops before LLVM writes PTX
    (the plan and the kernels' IR only: what planning and its tests need)."""
    check_legal(g, arch)
    plan = plan or memory_plan_for_cuda(g)
    t0 = time.perf_counter()
    mod = GpuModule(_ident(g.name), arch)
    steps: list[Step] = []
    kinds: dict[str, str] = {}
    step_of_node: dict[int, int] = {}
    for i, n in enumerate(g.nodes):
        if i in plan.views:
            continue
        values = (*n.outputs, *n.inputs)
        refs = tuple(arg_ref(plan, v) for v in values)
        nout = len(n.outputs)
        noalias = [all(_disjoint(refs[j], refs[o]) for o in range(nout) if o != j) if j < nout
                   else all(_disjoint(refs[j], refs[o]) for o in range(nout)) for j in range(len(refs))]
        name, launch = _kernel(mod, n, noalias)
        kinds[name] = KERNELS[n.op].kind
        step_of_node[i] = len(steps)
        steps.append(Step(n.label, n.op, name, launch.grid, launch.block, launch.shared_bytes, refs, nout,
                          launch.cover))
    ir_text = mod.ir()
    t1 = time.perf_counter()
    ptx = ptxmod.emit_ptx(ir_text, arch, ftz=ftz) if emit else ""
    t2 = time.perf_counter()
    inputs, outputs = io_table(g)
    buffers, aliases = buffer_table(g, plan, step_of_node)
    lp = LaunchPlan(g.name, arch.name, plan.arena_bytes, plan.weights_bytes, plan.peak_live_bytes, inputs, outputs,
                    steps, buffers, aliases, output_copies(g, plan))
    check_plan(lp)  # a plan that could overwrite a live buffer or miss an output never runs
    return CudaCode(arch, ir_text, ptx, lp, kinds, t1 - t0, t2 - t1)


def _disjoint(a, b) -> bool:
    if a.region != b.region:
        return True
    if a.region in ("input", "output"):
        return a.index != b.index
    return a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset


def _kernel(mod: GpuModule, n: Node, noalias: list[bool]) -> tuple[str, Launch]:
    key = (n.op, _attr_key(n.attrs), tuple(v.type for v in n.outputs), tuple(v.type for v in n.inputs),
           tuple(noalias))
    hit = mod.kernels.get(key)
    if hit is None:
        k = GpuKernel(mod, f"{_ident(n.op)}", [v.type for v in n.outputs], [v.type for v in n.inputs],
                      noalias=noalias)
        try:
            launch = KERNELS[n.op].emit(k, n)
        except IRCError as e:
            raise e.at(n.label, n.op) from None
        hit = (k.finish(), launch)
        mod.kernels[key] = hit
    return hit


def _attr_key(attrs: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in attrs.items()))


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name) or "k"
    return s if not s[0].isdigit() else "k_" + s


def aligned_bytes(n: int, align: int = 256) -> np.ndarray:
    """A zeroed uint8 array of ``n`` bytes whose data pointer is ``align``-aligned."""
    raw = np.zeros(n + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n]


def weights_blob(g: Graph, plan: MemoryPlan) -> np.ndarray:
    """Every parameter at its memory-plan offset in one byte array (what the GPU receives)."""
    blob = aligned_bytes(max(plan.weights_bytes, 1))
    for v, data in g.params.items():
        off = plan.where(v).offset
        blob[off:off + data.nbytes] = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
    return blob
