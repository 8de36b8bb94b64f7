"""GpuKernel: the builder every CUDA kernel is written with.

A kernel is one ``ptx_kernel`` function over pointers to its tensors (outputs first, then
inputs), with every shape a compile-time constant. The builder gives the thread and block
indices, counted loops, guarded blocks, static shared memory (LLVM address space 3), barriers
and warp shuffles, and typed loads and stores of every irc element type. Indices are i32 unless
a tensor of the kernel has 2**31 elements or more (i32 address arithmetic is half the
instructions of i64 on a GPU).

``GpuModule`` is one LLVM module per (graph, architecture): kernels are deduplicated by a key
the emitters give, and ``declare`` resolves math functions to the device definitions of
``devmath`` so that kernels can share the CPU target's scalar semantics table unchanged: the
CPU's ``Scalar`` helper only touches ``k.b`` and ``k.state.declare``, which this builder offers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import DType, TensorType
from irc.targets.cpu import lltypes as T
from irc.targets.cpu.kernel import Buf, KernelBuilder
from irc.targets.cuda import devmath
from irc.targets.cuda.arch import Arch
from irc.targets.cuda.ptx import DATA_LAYOUT, TRIPLE

SHARED = 3
SPTR = ir.PointerType(addrspace=SHARED)
FULL_MASK = 0xFFFFFFFF
WARP = 32


@dataclass(frozen=True, slots=True)
class Launch:
    """How a kernel is launched: grid and block (x, y, z) and static shared-memory bytes."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int = 0
    #: per grid axis: (output elements along it, elements one block covers; 0: a grid-stride
    #: loop covers them all)
    cover: tuple[tuple[int, int], ...] = ()

    @property
    def threads(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]

    @property
    def blocks(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]


def grid1d(n: int, threads: int = 256, max_blocks: int = 1 << 16) -> Launch:
    """A 1-D launch for ``n`` work items with a grid-stride loop (grid capped at ``max_blocks``)."""
    blocks = max(1, min(-(-n // threads), max_blocks))
    return Launch((blocks, 1, 1), (threads, 1, 1), 0, ((n, 0),))


class GpuModule:
    """One LLVM module of kernels for one architecture."""

    def __init__(self, name: str, arch: Arch):
        self.arch = arch
        self.module = ir.Module(name=name)
        self.module.triple = TRIPLE
        self.module.data_layout = DATA_LAYOUT
        #: kernel key -> (function name, launch)
        self.kernels: dict[tuple, tuple[str, Launch]] = {}
        self._n = 0

    def unique(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def declare_raw(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
        return fn

    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        """A function by name: device math (devmath) is defined on first use, anything else
        (LLVM intrinsics NVPTX lowers itself) is declared."""
        if devmath.provides(name):
            key = "irc." + name.replace("llvm.", "")
            fn = self.module.globals.get(key)
            return fn if fn is not None else devmath.define(self, name)
        return self.declare_raw(name, ret, args)

    @property
    def state(self) -> GpuModule:
        return self

    def ir(self) -> str:
        return str(self.module)


class GpuKernel:
    """Builds one kernel; ``bufs`` are its tensor arguments (outputs, then inputs)."""

    def __init__(self, mod: GpuModule, name: str, out_types: Sequence[TensorType], in_types: Sequence[TensorType],
                 *, noalias: Sequence[bool] | None = None):
        types = list(out_types) + list(in_types)
        self.mod = mod
        self.state = mod  # what the CPU target's Scalar helper calls ``state``
        self.arch = mod.arch
        self.fn = ir.Function(mod.module, ir.FunctionType(T.VOID, [T.PTR] * len(types)), mod.unique(name))
        self.fn.calling_convention = "ptx_kernel"
        self.fn.attributes.add("nounwind")
        for i, a in enumerate(self.fn.args):
            if noalias is None or noalias[i]:
                a.add_attribute("noalias")
        self.bufs = [Buf(i, t) for i, t in enumerate(types)]
        self.outs = self.bufs[: len(out_types)]
        self.ins = self.bufs[len(out_types):]
        wide = any(t.size >= 2**31 for t in types)
        self.ity: ir.IntType = T.I64 if wide else T.I32
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))

    @property
    def name(self) -> str:
        return self.fn.name

    # ---------------------------------------------------------------- constants and indices
    def i(self, v: int) -> ir.Constant:
        """An index constant (of the kernel's index type)."""
        return ir.Constant(self.ity, int(v))

    @staticmethod
    def i32(v: int) -> ir.Constant:
        return ir.Constant(T.I32, int(v))

    @staticmethod
    def f32(v: float) -> ir.Constant:
        return ir.Constant(T.F32, float(v))

    const = staticmethod(KernelBuilder.const)

    def sreg(self, name: str) -> ir.Value:
        """A PTX special register (tid.x, ctaid.y, ntid.x, nctaid.x, laneid) as an index."""
        fn = self.mod.declare_raw(f"llvm.nvvm.read.ptx.sreg.{name}", T.I32, [])
        v = self.b.call(fn, [])
        return self.b.zext(v, self.ity) if self.ity is not T.I32 else v

    def tid(self, axis: str = "x") -> ir.Value:
        return self.sreg(f"tid.{axis}")

    def ctaid(self, axis: str = "x") -> ir.Value:
        return self.sreg(f"ctaid.{axis}")

    def ntid(self, axis: str = "x") -> ir.Value:
        return self.sreg(f"ntid.{axis}")

    def nctaid(self, axis: str = "x") -> ir.Value:
        return self.sreg(f"nctaid.{axis}")

    def add(self, a, b):
        return self.b.add(a, b, flags=["nsw"]) if not isinstance(b, int) else self.b.add(a, self.i(b), flags=["nsw"])

    def mul(self, a, b):
        return self.b.mul(a, b, flags=["nsw"]) if not isinstance(b, int) else self.b.mul(a, self.i(b), flags=["nsw"])

    def udiv(self, a, d: int):
        return a if d == 1 else self.b.udiv(a, self.i(d))

    def urem(self, a, d: int):
        return self.i(0) if d == 1 else self.b.urem(a, self.i(d))

    def lt(self, a, b):
        return self.b.icmp_signed("<", a, b if not isinstance(b, int) else self.i(b))

    def ge(self, a, b):
        return self.b.icmp_signed(">=", a, b if not isinstance(b, int) else self.i(b))

    def unravel(self, flat: ir.Value, shape: Sequence[int]) -> list[ir.Value]:
        """Coordinates of a row-major flat index in ``shape`` (constant divisions)."""
        idx: list[ir.Value] = []
        rest = flat
        for d in reversed(shape[1:]):
            idx.append(self.urem(rest, d))
            rest = self.udiv(rest, d)
        idx.append(rest)
        return idx[::-1]

    def offset(self, idx: Sequence[ir.Value], strides: Sequence[int]) -> ir.Value:
        acc = None
        for v, s in zip(idx, strides):
            if s == 0:
                continue
            term = v if s == 1 else self.mul(v, s)
            acc = term if acc is None else self.add(acc, term)
        return acc if acc is not None else self.i(0)

    # ---------------------------------------------------------------- memory
    def ptr(self, buf: Buf | int) -> ir.Value:
        return self.fn.args[buf.index if isinstance(buf, Buf) else buf]

    def addr(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        return self.b.gep(self.ptr(buf), [offset], inbounds=True, source_etype=T.storage_type(dt or buf.dtype))

    def load(self, buf: Buf, offset: ir.Value, dt: DType | None = None) -> ir.Value:
        """Element ``offset`` of ``buf`` in its compute type."""
        dt = dt or buf.dtype
        st = T.storage_type(dt)
        raw = self.b.load(self.addr(buf, offset, dt), typ=st, align=_align(st))
        return self.from_storage(raw, dt)

    def store(self, buf: Buf, offset: ir.Value, value: ir.Value, dt: DType | None = None) -> None:
        dt = dt or buf.dtype
        st = T.storage_type(dt)
        self.b.store(self.to_storage(value, dt), self.addr(buf, offset, dt), align=_align(st))

    def from_storage(self, raw: ir.Value, dt: DType) -> ir.Value:
        return KernelBuilder.from_storage(self, raw, dt)

    def to_storage(self, v: ir.Value, dt: DType) -> ir.Value:
        return KernelBuilder.to_storage(self, v, dt)

    def shared(self, base: str, elem: ir.Type, count: int) -> ir.GlobalVariable:
        """A static shared-memory array of ``count`` elements (16-byte aligned)."""
        g = ir.GlobalVariable(self.mod.module, ir.ArrayType(elem, count), self.mod.unique(f"{self.name}_{base}"),
                              addrspace=SHARED)
        g.type = SPTR  # an opaque pointer, so that element GEPs and stores type-check
        g.linkage = "internal"
        g.initializer = ir.Constant(ir.ArrayType(elem, count), ir.Undefined)
        g.align = 16
        return g

    def sgep(self, arr: ir.GlobalVariable, elem: ir.Type, index: ir.Value) -> ir.Value:
        return self.b.gep(arr, [index], inbounds=True, source_etype=elem)

    def barrier(self) -> None:
        fn = self.mod.declare_raw("llvm.nvvm.barrier0", T.VOID, [])
        self.b.call(fn, [])

    def shfl_xor(self, v: ir.Value, lane_mask: int) -> ir.Value:
        """The value of the lane ``lane ^ lane_mask`` in this warp (f32 or i32)."""
        is_f = v.type == T.F32
        x = self.b.bitcast(v, T.I32) if is_f else v
        fn = self.mod.declare_raw("llvm.nvvm.shfl.sync.bfly.i32", T.I32, [T.I32, T.I32, T.I32, T.I32])
        y = self.b.call(fn, [self.i32(FULL_MASK), x, self.i32(lane_mask), self.i32(0x1F)])
        return self.b.bitcast(y, T.F32) if is_f else y

    # ---------------------------------------------------------------- control flow
    @contextlib.contextmanager
    def loop(self, stop, start=0, step=1, name: str = "i") -> Iterator[ir.Value]:
        """``for i in range(start, stop, step)`` with step > 0 (a constant or a value)."""
        b = self.b
        start = self.i(start) if isinstance(start, int) else start
        stop = self.i(stop) if isinstance(stop, int) else stop
        step = self.i(step) if isinstance(step, int) else step
        pre = b.block
        head = b.append_basic_block(f"{name}.head")
        body = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(start.type, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, done)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, step, flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    @contextlib.contextmanager
    def grid_stride(self, n: int, name: str = "g") -> Iterator[ir.Value]:
        """Every index in range(n) exactly once over the whole 1-D grid."""
        start = self.add(self.mul(self.ctaid(), self.ntid()), self.tid())
        step = self.mul(self.nctaid(), self.ntid())
        with self.loop(self.i(n), start=start, step=step, name=name) as i:
            yield i

    @contextlib.contextmanager
    def if_(self, cond: ir.Value) -> Iterator[None]:
        with self.b.if_then(cond):
            yield

    def finish(self) -> str:
        self.b.ret_void()
        return self.fn.name


def _align(t: ir.Type) -> int:
    if isinstance(t, ir.IntType):
        return max(1, t.width // 8)
    return {T.F16: 2, T.F32: 4, T.F64: 8}.get(t, 1)
