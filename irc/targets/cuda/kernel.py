"""GpuKernel: the builder every CUDA kernel is written with.

A kernel is one ``ptx_kernel`` function over pointers to its tensors (outputs first, then
inputs), with every shape a compile-time constant. The builder gives the thread and block
indices, counted loops, guarded blocks, static shared memory (LLVM address space 3), barriers
and warp shuffles, and typed loads and stores of every irc element type. Indices are i32 unless
a tensor of the kernel has 2**31 elements or more (i32 address arithmetic is half the
instructions of i64 on a GPU).

``GpuModule`` is one LLVM module per (graph, architecture): kernels are deduplicated by a key
the emitters give, and ``declare`` resolves math functions to the device definitions of
``devmath``, so that kernels use the scalar table of irc.targets.llvm unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llvmlite import ir

from irc.ir.types import TensorType
from irc.targets.cuda import devmath
from irc.targets.cuda.arch import Arch
from irc.targets.cuda.ptx import DATA_LAYOUT, TRIPLE
from irc.targets.llvm import lltypes as T
from irc.targets.llvm.builder import KernelBase, ModuleBase

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


class GpuModule(ModuleBase):
    """One LLVM module of kernels for one architecture."""

    separator = "_"

    def __init__(self, name: str, arch: Arch):
        super().__init__(ir.Module(name=name))
        self.arch = arch
        self.module.triple = TRIPLE
        self.module.data_layout = DATA_LAYOUT
        #: kernel key -> (function name, launch)
        self.kernels: dict[tuple, tuple[str, Launch]] = {}

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


class GpuKernel(KernelBase):
    """Builds one kernel; ``bufs`` are its tensor arguments (outputs, then inputs)."""

    def __init__(self, mod: GpuModule, name: str, out_types: Sequence[TensorType], in_types: Sequence[TensorType],
                 *, noalias: Sequence[bool] | None = None):
        wide = any(t.size >= 2**31 for t in [*out_types, *in_types])
        super().__init__(mod, mod.module, mod.unique(name), out_types, in_types, noalias=noalias,
                         index_type=T.I64 if wide else T.I32)
        self.mod = mod
        self.arch = mod.arch
        self.fn.calling_convention = "ptx_kernel"

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

    # ---------------------------------------------------------------- memory
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
    def grid_stride(self, n: int, name: str = "g") -> Iterator[ir.Value]:
        """Every index in range(n) exactly once over the whole 1-D grid."""
        start = self.add(self.mul(self.ctaid(), self.ntid()), self.tid())
        step = self.mul(self.nctaid(), self.ntid())
        with self.loop(self.i(n), start=start, step=step, name=name) as i:
            yield i

    def finish(self) -> str:
        self.b.ret_void()
        return self.fn.name

