"""KernelBuilder: the small loop-nest language every CPU kernel is written in.

A kernel is one LLVM function over pointers to its tensors (outputs first, then inputs, then
an optional scratch pointer) with every shape a compile-time constant, so LLVM can unroll and
vectorise freely. The base builder (irc.targets.llvm.builder) gives loops, offsets, loads and
stores; this one adds ``parallel_loop``, which outlines its body into a function whose chunks
the process's one thread pool runs (thread_pool.py: persistent workers that claim chunks, the
caller among them). Only buffer pointers cross into a parallel body: kernel code computes
everything else inside it, which keeps outlining trivial and correct. Parallel loops never nest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from llvmlite import ir

from irc.ir.types import TensorType
from irc.targets.cpu import vecmath
from irc.targets.cpu.thread_pool import BODY_TYPE, declare_run
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import KernelBase, ModuleBase

#: Below this many element-operations a loop runs on the calling thread: a parallel region
#: costs a few microseconds to wake the pool.
PARALLEL_MIN_WORK = 1 << 15


class ModuleState(ModuleBase):
    """What kernels of one module share: the module, declared functions, kernel cache, options."""

    def __init__(self, module: ir.Module, *, threads_global: ir.GlobalVariable | None, ftz: bool, ctx=None):
        from irc.targets.cpu.kernels.registry import CpuContext

        super().__init__(module)
        self.ctx = ctx or CpuContext()
        self.threads_global = threads_global
        self.ftz = ftz
        self.kernels: dict[tuple, ir.Function] = {}
        #: kernels by op, operand sizes and aliasing: [code text or None until compared, functions]
        self.bodies: dict[tuple, list[list]] = {}

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """A function by name: f32 and f16 exp, log, tanh, erf, expm1 and log1p (scalar or
        vector) are vecmath's vectorisable definitions; anything else is declared (f64 math is
        libm's)."""
        fn = vecmath.lookup(self, name)
        return fn if fn is not None else self.declare_raw(name, ret, args)

    def vector_libm(self, name: str, t: ir.VectorType) -> ir.Function | None:
        return vecmath.function_for(self, name, t)


class KernelBuilder(KernelBase):
    """Builds one CPU kernel function (internal, never inlined); indices are i64."""

    def __init__(self, state: ModuleState, name: str, out_types: Sequence[TensorType], in_types: Sequence[TensorType],
                 *, noalias: Sequence[bool] | None = None, scratch: bool = False):
        super().__init__(state, state.module, state.unique(name), out_types, in_types, noalias=noalias,
                         extra_args=1 if scratch else 0)
        self.fn.linkage = "internal"
        self.fn.attributes.add("noinline")
        self.scratch_index = len(self.bufs) if scratch else None
        self._parallel_depth = 0
        #: values passed into the current parallel body with ``parallel_chunks(captures=...)``
        self.captured: list[ir.Value] = []

    def scratch_ptr(self) -> ir.Value:
        assert self.scratch_index is not None, "kernel declared no scratch space"
        return self._args[self.scratch_index]

    def memcpy(self, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
        fn = self.state.declare("llvm.memcpy.p0.p0.i64", T.VOID, [T.PTR, T.PTR, T.I64, T.I1])
        self.b.call(fn, [dst, src, self.i64(nbytes), ir.Constant(T.I1, 0)])

    def memset(self, dst: ir.Value, byte: int, nbytes: int) -> None:
        fn = self.state.declare("llvm.memset.p0.i64", T.VOID, [T.PTR, T.I8, T.I64, T.I1])
        self.b.call(fn, [dst, ir.Constant(T.I8, byte), self.i64(nbytes), ir.Constant(T.I1, 0)])

    # ---------------------------------------------------------------- parallel loops
    @contextlib.contextmanager
    def parallel_loop(self, n: int, work_per_iter: int = 1, name: str = "p") -> Iterator[ir.Value]:
        """Like ``loop(n)``, split into one contiguous chunk per thread when the work is large
        enough. Inside the body use ``ptr(buf)`` for buffers; no other outer value is visible."""
        with self.parallel_chunks(n, work_per_iter) as (lo, hi, _tid, _):
            with self.loop(hi, start=lo, name=name) as i:
                yield i

    @contextlib.contextmanager
    def parallel_chunks(self, n: int, work_per_iter: int = 1, *, captures: Sequence[ir.Value] = (),
                        max_workers: int | None = None) -> Iterator[tuple[ir.Value, ir.Value, ir.Value, list[ir.Value]]]:
        """Runs the body once per chunk, ``[lo, hi)`` of ``range(n)``, with the chunk's index (one
        chunk per thread, so the index can pick per-thread scratch: no two running chunks share
        it); ``captures`` (i64 values of the calling function) are passed in and come back as
        the last item. At most ``max_workers`` threads get work (kernels whose per-thread
        scratch was sized for that many). Small work runs inline as one chunk."""
        serial = (self._parallel_depth or self.state.threads_global is None or n < 2
                  or n * work_per_iter < PARALLEL_MIN_WORK or max_workers == 1)
        if serial:
            self._parallel_depth += 1
            try:
                yield self.i64(0), self.i64(n), self.i64(0), list(captures)
            finally:
                self._parallel_depth -= 1
            return
        outer_b, outer_args = self.b, self._args
        nargs = len(self.fn.args)
        slots = nargs + len(captures)
        body_fn = ir.Function(self.module, BODY_TYPE, self.state.unique(self.fn.name + ".par"))
        body_fn.linkage = "internal"
        body_fn.attributes.add("nounwind")
        # Caller side: pack pointers and captured integers, run the body on the pool.
        with outer_b.goto_entry_block():
            slot = outer_b.alloca(T.PTR, size=max(slots, 1), name="par.args")
        for k, a in enumerate(outer_args):
            outer_b.store(a, outer_b.gep(slot, [self.i64(k)], inbounds=True, source_etype=T.PTR))
        for k, c in enumerate(captures):
            outer_b.store(outer_b.inttoptr(c, T.PTR), outer_b.gep(slot, [self.i64(nargs + k)], inbounds=True,
                                                                  source_etype=T.PTR))
        nchunks = outer_b.sext(outer_b.load(self.state.threads_global, typ=T.I32), T.I64)
        if max_workers is not None:
            cap = self.i64(max_workers)
            nchunks = outer_b.select(outer_b.icmp_signed("<", nchunks, cap), nchunks, cap)
        outer_b.call(declare_run(self.module), [body_fn, slot, nchunks])
        # Body side: unpack, take chunk ``tid`` of ``nt``, and call the chunk function, whose
        # pointer arguments carry the kernel's noalias facts (pointers loaded from the argument
        # block carry none, and without them LLVM keeps loops it could vectorise scalar).
        b = ir.IRBuilder(body_fn.append_basic_block("entry"))
        data, tid, nt = body_fn.args
        loaded = [b.load(b.gep(data, [self.i64(k)], inbounds=True, source_etype=T.PTR), typ=T.PTR)
                  for k in range(slots)]
        saved_csr = enter_ftz(self.state, b) if self.state.ftz else None
        chunk = b.sdiv(b.add(self.i64(n), b.sub(nt, self.i64(1))), nt)
        lo = b.mul(tid, chunk)
        lo = b.select(b.icmp_signed("<", lo, self.i64(n)), lo, self.i64(n))
        hi = b.add(lo, chunk)
        hi = b.select(b.icmp_signed("<", hi, self.i64(n)), hi, self.i64(n))
        chunk_fn = ir.Function(self.module, ir.FunctionType(T.VOID, [T.PTR] * nargs + [T.I64] * (3 + len(captures))),
                               self.state.unique(self.fn.name + ".chunk"))
        chunk_fn.linkage = "internal"
        chunk_fn.attributes.add("nounwind")
        for mine, theirs in zip(chunk_fn.args, self.fn.args):
            if "noalias" in theirs.attributes:
                mine.add_attribute("noalias")
        b.call(chunk_fn, [*loaded[:nargs], lo, hi, tid, *[b.ptrtoint(v, T.I64) for v in loaded[nargs:]]])
        if saved_csr is not None:
            leave_ftz(self.state, b, saved_csr)
        b.ret_void()
        self.b = ir.IRBuilder(chunk_fn.append_basic_block("entry"))
        self._args = list(chunk_fn.args[:nargs])
        lo, hi, tid, *inner_caps = chunk_fn.args[nargs:]
        self._parallel_depth += 1
        try:
            yield lo, hi, tid, list(inner_caps)
        finally:
            self._parallel_depth -= 1
        self.b.ret_void()
        self.b, self._args = outer_b, outer_args

    def finish(self) -> ir.Function:
        self.b.ret_void()
        return self.fn


MXCSR_FTZ = 1 << 15
MXCSR_DAZ = 1 << 6


def enter_ftz(state: ModuleState, b: ir.IRBuilder) -> ir.Value:
    """Set FTZ and DAZ in this thread's MXCSR; returns the slot holding the caller's value."""
    st = state.declare("llvm.x86.sse.stmxcsr", T.VOID, [T.PTR])
    ld = state.declare("llvm.x86.sse.ldmxcsr", T.VOID, [T.PTR])
    with b.goto_entry_block():
        saved = b.alloca(T.I32, name="mxcsr.saved")
        new = b.alloca(T.I32, name="mxcsr.new")
    b.call(st, [saved])
    b.store(b.or_(b.load(saved, typ=T.I32), ir.Constant(T.I32, MXCSR_FTZ | MXCSR_DAZ)), new)
    b.call(ld, [new])
    return saved


def leave_ftz(state: ModuleState, b: ir.IRBuilder, saved: ir.Value) -> None:
    b.call(state.declare("llvm.x86.sse.ldmxcsr", T.VOID, [T.PTR]), [saved])
