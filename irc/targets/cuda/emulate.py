"""Host emulation of the generated kernels: the same LLVM IR that becomes PTX, compiled for this
CPU and run thread by thread, so that kernel index arithmetic, tiling, shared memory, barriers
and warp shuffles are checked against the interpreter on machines without a GPU.

It is a test instrument, slow by design (every GPU thread is a call; blocks that synchronize run
their threads as OS threads meeting at real barriers), and it proves what it can: the kernels'
arithmetic and memory behaviour under the launch plan. It cannot prove timing, occupancy or the
hardware's own instructions: inline PTX (tensor-core ``mma``, ``dp4a``) has a host definition
here written from the PTX ISA's description, and ``ex2.approx`` becomes the exact ``exp2``.

How the IR is adapted (text rewrites of the module, nothing else changes):
- the NVPTX triple and data layout become the host's; ``ptx_kernel`` functions become plain
  functions with one more parameter, a pointer to the thread's context (its tid, ntid, ctaid,
  nctaid); special-register reads load from it;
- ``barrier0`` and ``shfl.sync.bfly`` become calls into Python, which keeps one barrier per block
  and one exchange slot per warp;
- shared memory (address space 3) is ordinary memory: blocks run one after another.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
import numpy as np

from irc.errors import TargetError
from irc.targets.cuda.plan import LaunchPlan
from irc.targets.llvm import machine

_SREGS = ["tid.x", "tid.y", "tid.z", "ntid.x", "ntid.y", "ntid.z", "ctaid.x", "ctaid.y", "ctaid.z",
          "nctaid.x", "nctaid.y", "nctaid.z", "laneid"]
CTX = ctypes.c_int32 * 16

_HOST_HELPERS = """
define internal i32 @"sim.sreg"(ptr %c, i32 %k) alwaysinline {
  %p = getelementptr i32, ptr %c, i32 %k
  %v = load i32, ptr %p
  ret i32 %v
}
declare void @"irc_sim_barrier"(ptr)
declare i32 @"irc_sim_shfl"(ptr, i32, i32)
declare void @"irc_sim_asm"(ptr, i32, ptr)
"""


def host_ir(ir_text: str) -> str:
    """The module's IR adapted to run on the host (see the module docstring)."""
    s = re.sub(r'^target triple = .*$', f'target triple = "{llvm.get_process_triple()}"', ir_text, flags=re.M)
    s = re.sub(r'^target datalayout = .*$', "", s, flags=re.M)
    s = re.sub(r'^define ptx_kernel void (@"[^"]+")\((.*)\)', r'define void \1(\2, ptr %"sim.ctx")', s, flags=re.M)
    for k, name in enumerate(_SREGS):
        s = s.replace(f'call i32 @"llvm.nvvm.read.ptx.sreg.{name}"()', f'call i32 @"sim.sreg"(ptr %"sim.ctx", i32 {k})')
        s = re.sub(rf'^declare i32 @"llvm\.nvvm\.read\.ptx\.sreg\.{re.escape(name)}"\(\).*$', "", s, flags=re.M)
    s = s.replace('call void @"llvm.nvvm.barrier0"()', 'call void @"irc_sim_barrier"(ptr %"sim.ctx")')
    s = re.sub(r'^declare void @"llvm\.nvvm\.barrier0"\(\).*$', "", s, flags=re.M)
    s = re.sub(r'call i32 @"llvm\.nvvm\.shfl\.sync\.bfly\.i32"\(i32 [^,]+, i32 ([^,]+), i32 ([^,]+), i32 [^)]+\)',
               r'call i32 @"irc_sim_shfl"(ptr %"sim.ctx", i32 \1, i32 \2)', s)
    s = re.sub(r'^declare i32 @"llvm\.nvvm\.shfl\.sync\.bfly\.i32".*$', "", s, flags=re.M)
    from irc.targets.cuda import asm

    s = asm.host_rewrite(s)
    return s + _HOST_HELPERS


class _Thread:
    __slots__ = ("ctx", "block", "warp", "lane")

    def __init__(self, ctx, block, warp, lane):
        self.ctx = ctx
        self.block = block
        self.warp = warp
        self.lane = lane


class _Block:
    def __init__(self, nthreads: int):
        self.barrier = threading.Barrier(nthreads, timeout=60)
        nw = -(-nthreads // 32)
        self.warp_barriers = [threading.Barrier(min(32, nthreads - 32 * w), timeout=60) for w in range(nw)]
        self.slots = np.zeros((nw, 32), np.int64)
        self.asm_slots: dict[int, list] = {}


_threads: dict[int, _Thread] = {}
_lock = threading.Lock()


def _who(ctx: int) -> _Thread:
    return _threads[ctx]


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _barrier(ctx):
    t = _who(ctx)
    t.block.barrier.wait()


@ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)
def _shfl(ctx, value, lane_mask):
    t = _who(ctx)
    blk = t.block
    wb = blk.warp_barriers[t.warp]
    blk.slots[t.warp, t.lane] = value
    wb.wait()
    partner = t.lane ^ lane_mask
    out = int(blk.slots[t.warp, partner]) if partner < wb.parties else value
    wb.wait()
    return ctypes.c_int32(out).value


@ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p)
def _asm(ctx, which, data):
    from irc.targets.cuda import asm

    t = _who(ctx)
    asm.emulate(which, t, data)


_CALLBACKS = {"irc_sim_barrier": _barrier, "irc_sim_shfl": _shfl, "irc_sim_asm": _asm}
_count = itertools.count()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Workers for the threads of one block (up to 1024, all running at once at a barrier)."""
    return ThreadPoolExecutor(max_workers=1024, thread_name_prefix="irc-emulated-gpu")


@functools.cache
def _lljit():
    return llvm.create_lljit_compiler(machine.host_machine("x86-64", "", jit=True))


class HostKernels:
    """The kernels of one module compiled for the host, callable per thread."""

    def __init__(self, ir_text: str, kernel_names: Sequence[str]):
        machine.load_runtime_libraries()
        text = host_ir(ir_text)
        mod = machine.parse(text)
        # Baseline x86-64, not this CPU: with AVX512-VNNI enabled, LLVM 22 miscompiles the
        # byte dot products of the dp4a emulation (signed x unsigned), seen as wrong int8 GEMMs.
        tm = machine.host_machine("x86-64", "", jit=True)
        machine.optimize(mod, tm)
        builder = llvm.JITLibraryBuilder().add_object_img(tm.emit_object(mod)).add_current_process()
        for sym, fn in _CALLBACKS.items():
            builder.import_symbol(sym, ctypes.cast(fn, ctypes.c_void_p).value)
        for name in kernel_names:
            builder.export_symbol(name)
        try:
            self._lib = builder.link(_lljit(), f"irc_emulated_{next(_count)}")
        except RuntimeError as e:
            raise TargetError(f"linking the emulated kernels failed: {e}") from None
        self._fns = {}
        self._sync = {}
        for name in kernel_names:
            body = _function_body(text, name)
            self._sync[name] = "irc_sim_barrier" in body or "irc_sim_shfl" in body or "irc_sim_asm" in body
        self._addr = {name: self._lib[name] for name in kernel_names}

    def launch(self, name: str, grid, block, args: Sequence[int]) -> None:
        nargs = len(args)
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (nargs + 1)))
        fn = proto(self._addr[name])
        nthreads = block[0] * block[1] * block[2]
        sync = self._sync[name]
        for bz in range(grid[2]):
            for by in range(grid[1]):
                for bx in range(grid[0]):
                    ctxs = []
                    blk = _Block(nthreads) if sync else None
                    for t in range(nthreads):
                        tx, ty, tz = t % block[0], (t // block[0]) % block[1], t // (block[0] * block[1])
                        ctx = CTX(tx, ty, tz, *block, bx, by, bz, *grid, t % 32)
                        ctxs.append(ctx)
                    if not sync:
                        for ctx in ctxs:
                            fn(*args, ctypes.addressof(ctx))
                        continue
                    with _lock:
                        for t, ctx in enumerate(ctxs):
                            _threads[ctypes.addressof(ctx)] = _Thread(ctx, blk, t // 32, t % 32)
                    try:
                        pool = _pool()
                        futures = [pool.submit(fn, *args, ctypes.addressof(ctx)) for ctx in ctxs]
                        for f in futures:
                            f.result()
                    except threading.BrokenBarrierError:
                        raise TargetError(f"kernel {name}: threads of block ({bx}, {by}, {bz}) did not all "
                                          f"reach a barrier (emulation)") from None
                    finally:
                        with _lock:
                            for ctx in ctxs:
                                _threads.pop(ctypes.addressof(ctx), None)


def _function_body(text: str, name: str) -> str:
    start = text.find(f'define void @"{name}"(')
    end = text.find("\n}", start)
    body = text[start:end]
    # calls into helpers defined in the module (device math) synchronize nothing
    return body


class EmulatedDevice:
    """Device memory for one launch plan in host arrays, and a run of its steps."""

    def __init__(self, plan: LaunchPlan, ir_text: str, weights: np.ndarray):
        from irc.targets.cuda.codegen import aligned_bytes

        self.plan = plan
        self.kernels = HostKernels(ir_text, plan.kernels)
        self.arena = aligned_bytes(max(plan.arena_bytes, 1), 256)
        self.weights = weights

    def run(self, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> None:
        base = {"arena": self.arena.ctypes.data, "param": self.weights.ctypes.data}
        for s in self.plan.steps:
            ptrs = []
            for a in s.args:
                if a.region == "input":
                    ptrs.append(inputs[a.index].ctypes.data)
                elif a.region == "output":
                    ptrs.append(outputs[a.index].ctypes.data)
                else:
                    ptrs.append(base[a.region] + a.offset)
            self.kernels.launch(s.kernel, s.grid, s.block, ptrs)
        for i, src in self.plan.output_copies:
            raw = outputs[i].reshape(-1).view(np.uint8)
            if src.region == "input":
                raw[:] = np.ascontiguousarray(inputs[src.index]).reshape(-1).view(np.uint8)
            elif src.region == "output":
                raw[:] = outputs[src.index].reshape(-1).view(np.uint8)
            else:
                region = self.arena if src.region == "arena" else self.weights
                raw[:] = region[src.offset:src.offset + src.nbytes]
