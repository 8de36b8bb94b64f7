"""One LLVM module per graph: a kernel function per node and an entry function that runs
the schedule over the caller's input/output pointers, one arena and the weights blob.

    void <prefix>_entry(void **inputs, void **outputs, uint8_t *arena, const uint8_t *weights)

Identical kernels are emitted once and shared: nodes with the same op, attributes, types and
aliasing reuse one function, and a kernel whose generated code matches an earlier one's (a
multiply over 16x576x14x14 and one over 16x144x28x28 are the same loop) is dropped for it.
Optimisation effort follows the kernel (see ``effort``): big kernels that run multiply-add loops
of their own keep LLVM's loop unrolling; every other kernel's loops are marked not to be
unrolled (still vectorised), which halves LLVM's time, most of a cold compile.

An output that no node writes (a graph input, a parameter, or a value another output also
holds) is copied into the caller's buffer after the nodes run (MemoryPlan.output_copies).
When the graph asks for flushed denormals the entry sets FTZ/DAZ in MXCSR and restores the
caller's value before returning (parallel bodies do the same on each pool thread).
"""

from __future__ import annotations

import itertools
import re
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


#: Ops whose kernels run their multiply-add loops in their own code: LLVM's loop unrolling is
#: worth its compile time there. The packed-GEMM family (gemm, matmul, conv_gemm, conv_winograd,
#: ...) is not among them: its multiply-adds are micro-kernel functions of their own, optimised
#: in full whatever the kernel calling them; the loops left to the kernel pack panels, transform
#: tiles and move memory. Those, and every other kernel's loops (element-wise, reductions, data
#: movement), run as fast vectorised but not unrolled (ResNet-18's train step and its inference
#: at one thread: the same times within noise) and compile in about half the time. The int8
#: GEMMs keep unrolling (not measured without it).
FULL_EFFORT_OPS = frozenset({
    "attention", "conv", "conv_fused", "conv_integer", "conv_transpose", "matmul_integer", "qconv_gemm",
    "qgemm_packed",
})
#: Below this many elements in and out, even a contraction's loops are left rolled.
FULL_EFFORT_MIN_ELEMENTS = 1 << 16


def effort(n: Node) -> str:
    """``"full"`` (LLVM's O3 as it is) for big kernels of FULL_EFFORT_OPS, ``"light"`` (loops
    not unrolled) for every other kernel."""
    if n.op in FULL_EFFORT_OPS and sum(v.type.size for v in (*n.inputs, *n.outputs)) >= FULL_EFFORT_MIN_ELEMENTS:
        return "full"
    return "light"


def _no_unrolling(module: ir.Module, f: ir.Function) -> None:
    """Marks every loop of ``f`` not to be unrolled: each back edge (a branch to an earlier block:
    kernel loops are emitted header first) gets its own loop ID with llvm.loop.unroll.disable."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    order = {id(b): i for i, b in enumerate(f.blocks)}
    for i, block in enumerate(f.blocks):
        term = block.terminator
        if isinstance(term, (ir.Branch, ir.ConditionalBranch)) and any(
                order.get(id(t), i + 1) <= i for t in term.operands if isinstance(t, ir.Block)):
            loop_id = ir.values.MDValue(module, [], name=str(len(module.metadata)))
            loop_id.operands = (loop_id, disable)  # a loop ID refers to itself
            term.set_metadata("llvm.loop", loop_id)
            term._clear_string_cache()  # its text may have been taken to compare kernels


#: False: every node gets a kernel of its own (what sharing saves, and that it changes no result,
#: can then be measured).
SHARE_KERNELS = True


def _kernel(state: ModuleState, n: Node, noalias: list[bool], scratch: bool) -> ir.Function:
    key = (n.op, _attr_key(n.attrs), tuple(v.type for v in n.outputs), tuple(v.type for v in n.inputs),
           tuple(noalias), scratch)
    fn = state.kernels.get(key) if SHARE_KERNELS else None
    if fn is None:
        before = len(state.module.globals)
        k = KernelBuilder(state, f"k_{n.op}", [v.type for v in n.outputs], [v.type for v in n.inputs],
                          noalias=noalias, scratch=scratch)
        KERNELS[n.op].emit(k, n)
        fn = k.finish()
        own = _own_functions(state.module, fn, before)
        fn = _shared(state, n, noalias, scratch, own) if SHARE_KERNELS else fn
        if fn is own[0] and effort(n) == "light":
            for f in own:
                _no_unrolling(state.module, f)
        state.kernels[key] = fn
    return fn


def _own_functions(module: ir.Module, fn: ir.Function, before: int) -> list[ir.Function]:
    """``fn`` and the functions outlined from it (its parallel bodies), created since the module
    had ``before`` globals; helpers it declared or defined under their own names are not its own."""
    prefix = fn.name + "."
    new = itertools.islice(module.globals.values(), before, None)
    return [fn] + [f for f in new if isinstance(f, ir.Function) and f.name.startswith(prefix)]


def _shared(state: ModuleState, n: Node, noalias: list[bool], scratch: bool, own: list[ir.Function]) -> ir.Function:
    """The kernel ``own[0]``, or an earlier kernel with the same code, in which case ``own``
    leaves the module. Code is compared only between kernels of one op over operands of the
    same sizes (a transpose that moves size-1 axes, a multiply over 16x576x14x14 and one over
    16x144x28x28), so most kernels are never printed."""
    key = (n.op, tuple((v.type.size, v.dtype) for v in (*n.outputs, *n.inputs)), tuple(noalias), scratch)
    group = state.bodies.setdefault(key, [])
    text = _code(own) if group else None
    for entry in group:
        if entry[0] is None:
            entry[0] = _code(entry[1])
        if entry[0] == text:
            for f in own:
                del state.module.globals[f.name]
            return entry[1][0]
    group.append([text, own])
    return own[0]


def _code(own: list[ir.Function]) -> str:
    """The text of a kernel's functions with their own names numbered and loop hints left out."""
    names = {f.name: f"K{i}" for i, f in enumerate(own)}
    pattern = re.compile("|".join(re.escape(f'@"{name}"') for name in names))
    text = pattern.sub(lambda m: "@" + names[m.group(0)[2:-1]], "".join(str(f) for f in own))
    return re.sub(r", !llvm\.loop !\d+", "", text)


def _attr_key(attrs: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in attrs.items()))
