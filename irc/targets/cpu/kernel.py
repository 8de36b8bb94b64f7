"""KernelBuilder: the small loop-nest language every CPU kernel is written in.

A kernel is one LLVM function over pointers to its tensors (outputs first, then inputs, then
an optional scratch pointer) with every shape a compile-time constant, so LLVM can unroll and
vectorise freely. ``loop`` emits a counted loop; ``parallel_loop`` outlines its body into a
function whose chunks the process's one thread pool runs (thread_pool.py: persistent workers
that claim chunks, the caller among them). Only buffer pointers cross into a parallel body: kernel code computes everything
else inside it, which keeps outlining trivial and correct. Parallel loops never nest.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType, TensorType
from irc.targets.cpu import lltypes as T
from irc.targets.cpu.thread_pool import BODY_TYPE, declare_run

#: Below this many element-operations a loop runs on the calling thread: a parallel region
#: costs a few microseconds to wake the pool.
PARALLEL_MIN_WORK = 1 << 15


def c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


@dataclass(frozen=True, slots=True)
class Buf:
    """A tensor argument of a kernel: its position in the argument list and its type."""

    index: int
    type: TensorType

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def strides(self) -> tuple[int, ...]:
        return c_strides(self.type.shape)

    @property
    def size(self) -> int:
        return self.type.size


class ModuleState:
    """What kernels of one module share: the module, declared functions, kernel cache, options."""

    def __init__(self, module: ir.Module, *, threads_global: ir.GlobalVariable | None, ftz: bool, ctx=None):
        from irc.targets.cpu.kernels.registry import CpuContext

        self.module = module
        self.ctx = ctx or CpuContext()
        self.threads_global = threads_global
        self.ftz = ftz
        self.kernels: dict[tuple, ir.Function] = {}
        self._n = 0

    def unique(self, base: str) -> str:
        self._n += 1
        return f"{base}.{self._n}"

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn


class KernelBuilder:
    """Builds one kernel function; ``bufs`` are its tensor arguments in order."""

    def __init__(self, state: ModuleState, name: str, out_types: Sequence[TensorType], in_types: Sequence[TensorType],
                 *, noalias: Sequence[bool] | None = None, scratch: bool = False):
        types = list(out_types) + list(in_types)
        self.state = state
        self.module = state.module
        nargs = len(types) + (1 if scratch else 0)
        self.fn = ir.Function(self.module, ir.FunctionType(T.VOID, [T.PTR] * nargs), state.unique(name))
        self.fn.linkage = "internal"
        self.fn.attributes.add("noinline")
        self.fn.attributes.add("nounwind")
        for i, a in enumerate(self.fn.args):
            if noalias is None or (i < len(noalias) and noalias[i]):
                a.add_attribute("noalias")
        self.bufs = [Buf(i, t) for i, t in enumerate(types)]
        self.outs = self.bufs[: len(out_types)]
        self.ins = self.bufs[len(out_types):]
        self.scratch_index = len(types) if scratch else None
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self._args: list[ir.Value] = list(self.fn.args)
        self._parallel_depth = 0
        #: values passed into the current parallel body with ``parallel_chunks(captures=...)``
        self.captured: list[ir.Value] = []

    # ---------------------------------------------------------------- values
    def ptr(self, buf: Buf | int) -> ir.Value:
        """The pointer of a buffer, valid in the function being emitted right now."""
        return self._args[buf.index if isinstance(buf, Buf) else buf]

    def scratch_ptr(self) -> ir.Value:
        assert self.scratch_index is not None, "kernel declared no scratch space"
        return self._args[self.scratch_index]

    @staticmethod
    def i64(v: int) -> ir.Constant:
        return ir.Constant(T.I64, int(v))

    @staticmethod
    def const(dt: DType, v) -> ir.Constant:
        t = T.compute_type(dt)
        if dt is DType.bool:
            return ir.Constant(t, int(bool(v)))
        if dt.is_float:
            return ir.Constant(t, float(v))
        return ir.Constant(t, int(v))

    # ---------------------------------------------------------------- memory
    def addr(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        return self.b.gep(self.ptr(buf), [offset], inbounds=True, source_etype=T.storage_type(dt or buf.dtype))

    def load(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        """Element ``offset`` of ``buf``, converted to its compute type."""
        dt = dt or buf.dtype
        st = T.storage_type(dt)
        raw = self.b.load(self.addr(buf, offset, dt), typ=st, align=st.width // 8 if hasattr(st, "width") else None)
        return self.from_storage(raw, dt)

    def store(self, buf: Buf, offset: ir.Value, value: ir.Value, dt: DType | None = None) -> None:
        dt = dt or buf.dtype
        self.b.store(self.to_storage(value, dt), self.addr(buf, offset, dt))

    def from_storage(self, raw: ir.Value, dt: DType) -> ir.Value:
        if dt is DType.bool:
            return self.b.icmp_unsigned("!=", raw, ir.Constant(T.I8, 0))
        if dt is DType.bf16:
            wide = self.b.shl(self.b.zext(raw, T.I32), ir.Constant(T.I32, 16))
            return self.b.bitcast(wide, T.F32)
        return raw

    def to_storage(self, v: ir.Value, dt: DType) -> ir.Value:
        if dt is DType.bool:
            return self.b.zext(v, T.I8)
        if dt is DType.bf16:
            # Round to nearest even on the 16 bits dropped; NaN stays a (quiet) NaN.
            bits = self.b.bitcast(v, T.I32)
            lsb = self.b.and_(self.b.lshr(bits, ir.Constant(T.I32, 16)), ir.Constant(T.I32, 1))
            rounded = self.b.add(bits, self.b.add(ir.Constant(T.I32, 0x7FFF), lsb))
            is_nan = self.b.fcmp_unordered("uno", v, v)
            quiet = self.b.or_(bits, ir.Constant(T.I32, 0x00400000))
            bits = self.b.select(is_nan, quiet, rounded)
            return self.b.trunc(self.b.lshr(bits, ir.Constant(T.I32, 16)), T.I16)
        return v

    def offset(self, idx: Sequence[ir.Value], strides: Sequence[int]) -> ir.Value:
        """sum(idx[d] * strides[d]) as i64, skipping zero strides."""
        acc = None
        for i, s in zip(idx, strides):
            if s == 0:
                continue
            term = i if s == 1 else self.b.mul(i, self.i64(s), flags=["nsw"])
            acc = term if acc is None else self.b.add(acc, term, flags=["nsw"])
        return acc if acc is not None else self.i64(0)

    def memcpy(self, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
        fn = self.state.declare("llvm.memcpy.p0.p0.i64", T.VOID, [T.PTR, T.PTR, T.I64, T.I1])
        self.b.call(fn, [dst, src, self.i64(nbytes), ir.Constant(T.I1, 0)])

    def memset(self, dst: ir.Value, byte: int, nbytes: int) -> None:
        fn = self.state.declare("llvm.memset.p0.i64", T.VOID, [T.PTR, T.I8, T.I64, T.I1])
        self.b.call(fn, [dst, ir.Constant(T.I8, byte), self.i64(nbytes), ir.Constant(T.I1, 0)])

    # ---------------------------------------------------------------- loops
    @contextlib.contextmanager
    def loop(self, stop: int | ir.Value, start: int | ir.Value = 0, step: int = 1, name: str = "i") -> Iterator[ir.Value]:
        """``for i in range(start, stop, step)`` (step > 0); the body is the with-block."""
        b = self.b
        start = self.i64(start) if isinstance(start, int) else start
        stop = self.i64(stop) if isinstance(stop, int) else stop
        pre = b.block
        head = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(T.I64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, done)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, self.i64(step), flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    @contextlib.contextmanager
    def nest(self, dims: Sequence[int], name: str = "d") -> Iterator[list[ir.Value]]:
        """Nested loops over ``dims`` (outermost first); yields the index list."""
        with contextlib.ExitStack() as stack:
            idx = [stack.enter_context(self.loop(d, name=f"{name}{k}")) for k, d in enumerate(dims)]
            yield idx

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


def elements(shape: Sequence[int]) -> int:
    return math.prod(shape)
