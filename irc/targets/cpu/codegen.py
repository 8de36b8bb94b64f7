"""One LLVM module per graph: a kernel function per node and an entry function that runs
the schedule over the caller's input/output pointers, one arena and the weights blob.

    void <prefix>_entry(void **inputs, void **outputs, uint8_t *arena, const uint8_t *weights)

Identical kernels (same op, attributes, types and aliasing) are emitted once and shared. An
output that no node writes (a graph input, a parameter, or a value another output also holds)
is copied into the caller's buffer after the nodes run (MemoryPlan.output_copies).
When the graph asks for flushed denormals the entry sets FTZ/DAZ in MXCSR and restores the
caller's value before returning (parallel bodies do the same on each pool thread).
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from irc.errors import TargetError, UnsupportedOpError
from irc.ir.graph import Graph, Node
from irc.passes.memory_plan import Location, MemoryPlan, plan_memory
from irc.targets.cpu.kernel import KernelBuilder, ModuleState, enter_ftz, leave_ftz
from irc.targets.cpu.kernels import KERNELS
from irc.targets.cpu.kernels.registry import CpuContext
from irc.targets.llvm import lltypes as T


@dataclass
class Codegen:
    module: ir.Module
    plan: MemoryPlan
    entry_name: str
    threads_global: str


def check_legal(g: Graph) -> None:
    """Every op must have a CPU kernel that implements the node; one error lists the ops
    without a kernel, another the nodes a kernel declines (its ``check`` says why)."""
    bad: dict[str, list[str]] = {}
    declined: list[str] = []
    for n in g.nodes:
        kdef = KERNELS.get(n.op)
        if kdef is None:
            bad.setdefault(n.op, []).append(n.label)
        elif kdef.check is not None and (why := kdef.check(n)):
            declined.append(f"{n.op} node {n.label}: {why}")
    if bad:
        parts = "; ".join(f"{op} (nodes: {', '.join(nodes[:5])})" for op, nodes in sorted(bad.items()))
        raise UnsupportedOpError(f"the cpu target has no kernel for: {parts}")
    if declined:
        raise TargetError("the cpu target cannot compile " + "; ".join(declined[:5]))


def memory_plan_for_cpu(g: Graph, ctx: CpuContext) -> MemoryPlan:
    def kdef(n: Node):
        return KERNELS[n.op]

    return plan_memory(
        g,
        is_view=lambda n: kdef(n).view,
        inplace_inputs=lambda n: kdef(n).inplace(n) if kdef(n).inplace else [],
        scratch_bytes=lambda n: kdef(n).scratch(n, ctx) if kdef(n).scratch else 0,
    )


def generate(g: Graph, *, prefix: str, threads: int, triple: str, data_layout: str = "",
             vector_bits: int = 512) -> Codegen:
    check_legal(g)
    ctx = CpuContext(threads=max(1, threads), vector_bits=vector_bits)
    plan = memory_plan_for_cpu(g, ctx)
    module = ir.Module(name=prefix)
    module.triple = triple
    if data_layout:
        module.data_layout = data_layout
    threads_global = ir.GlobalVariable(module, T.I32, f"{prefix}_num_threads")
    threads_global.initializer = ir.Constant(T.I32, max(1, threads))
    state = ModuleState(module, threads_global=threads_global if threads > 0 else None,
                        ftz=bool(g.meta.get("flush_denormals")), ctx=ctx)
    entry = ir.Function(module, ir.FunctionType(T.VOID, [T.PTR] * 4), f"{prefix}_entry")
    ins_arr, outs_arr, arena, weights = entry.args
    for a, n in zip(entry.args, ("inputs", "outputs", "arena", "weights")):
        a.name = n
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    saved = enter_ftz(state, b) if state.ftz else None

    def pointer(loc: Location) -> ir.Value:
        if loc.kind in ("input", "output"):
            arr = ins_arr if loc.kind == "input" else outs_arr
            return b.load(b.gep(arr, [ir.Constant(T.I64, loc.index)], inbounds=True, source_etype=T.PTR), typ=T.PTR)
        base = weights if loc.kind == "param" else arena
        return b.gep(base, [ir.Constant(T.I64, loc.offset)], inbounds=True, source_etype=T.I8)

    for i, n in enumerate(g.nodes):
        if i in plan.views:
            continue
        locs = [plan.where(v) for v in (*n.outputs, *n.inputs)]
        nout = len(n.outputs)
        noalias = [all(locs[j] != locs[o] for o in range(nout) if o != j) if j < nout
                   else all(locs[j] != locs[o] for o in range(nout)) for j in range(len(locs))]
        scratch = i in plan.scratch
        fn = _kernel(state, n, noalias, scratch)
        args = [pointer(loc) for loc in locs]
        if scratch:
            args.append(pointer(Location("arena", -1, plan.scratch[i])))
        b.call(fn, args)
    if plan.output_copies:
        # outputs no node writes (a graph input, a parameter, a value another output holds)
        # memmove: a state output may be the very buffer of its input (irc.targets.state)
        memmove = module.declare_intrinsic("llvm.memmove", [T.PTR, T.PTR, T.I64])
        for i in plan.output_copies:
            v = g.outputs[i]
            dst = b.load(b.gep(outs_arr, [ir.Constant(T.I64, i)], inbounds=True, source_etype=T.PTR), typ=T.PTR)
            b.call(memmove, [dst, pointer(plan.where(v)), ir.Constant(T.I64, v.type.nbytes), ir.Constant(T.I1, 0)])
    if saved is not None:
        leave_ftz(state, b, saved)
    b.ret_void()
    return Codegen(module, plan, entry.name, threads_global.name)


def _kernel(state: ModuleState, n: Node, noalias: list[bool], scratch: bool) -> ir.Function:
    key = (n.op, _attr_key(n.attrs), tuple(v.type for v in n.outputs), tuple(v.type for v in n.inputs),
           tuple(noalias), scratch)
    fn = state.kernels.get(key)
    if fn is None:
        k = KernelBuilder(state, f"k_{n.op}", [v.type for v in n.outputs], [v.type for v in n.inputs],
                          noalias=noalias, scratch=scratch)
        KERNELS[n.op].emit(k, n)
        fn = k.finish()
        state.kernels[key] = fn
    return fn


def _attr_key(attrs: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in attrs.items()))


