"""JIT runtime of the CPU target: object code for the module is linked in process by LLVM's
ORC JIT (which reports an unresolved symbol as an error, never a crash) and its entry called.

The arena is allocated once per executable and reused by every call; the weights blob is laid
out once. Calls go through ctypes, which releases the GIL while native code runs; a lock keeps
two Python threads from sharing the arena at the same time.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Callable, Sequence

import llvmlite.binding as llvm
import numpy as np

from irc.errors import InputError
from irc.ir.graph import Graph
from irc.passes.memory_plan import ALIGN, MemoryPlan
from irc.sizes import format_size
from irc.targets.cpu import llvm_env

_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def physical_memory_bytes() -> int | None:
    """This machine's RAM (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def allocate_arena(nbytes: int, graph_name: str) -> np.ndarray:
    """The working memory of a compiled graph. One larger than the machine's RAM is an
    InputError before anything is allocated: the pages of a zeroed array are only committed when
    touched, so the allocation itself would succeed and the first run be killed by the OS."""
    ram = physical_memory_bytes()
    if ram is not None and nbytes > ram:
        raise InputError(f"graph '{graph_name}' needs {format_size(nbytes)} of working memory for its "
                         f"intermediate tensors, more than this machine's {format_size(ram)} of RAM "
                         f"(a smaller batch or input shape needs less)")
    try:
        return aligned_bytes(max(nbytes, 1))
    except MemoryError:
        raise InputError(f"graph '{graph_name}' needs {format_size(nbytes)} of working memory for its "
                         f"intermediate tensors, which could not be allocated") from None


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> None:
    """Give the heap memory freed so far back to the OS (glibc keeps what the import and the
    passes freed between live blocks, tens of megabytes on a large network, and the weight blob
    would come on top of it)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def aligned_bytes(n: int, align: int = ALIGN) -> np.ndarray:
    """A zeroed uint8 array of ``n`` bytes whose data pointer is ``align``-aligned."""
    raw = np.zeros(n + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + n]


def weights_blob(g: Graph, plan: MemoryPlan) -> tuple[np.ndarray, Graph]:
    """The weights laid out as the plan says, and ``g`` with its parameters turned into views of
    that blob, so the process holds each weight once."""
    release_free_memory()
    blob = aligned_bytes(max(plan.weights_bytes, 1))
    views = {}
    for v, data in g.params.items():
        off = plan.where(v).offset
        view = np.frombuffer(blob, data.dtype, data.size, off).reshape(data.shape)
        np.copyto(view, data)
        view.flags.writeable = False
        views[v] = view
    return blob, g.replace(params=views)


class CpuExecutable:
    """A graph compiled to native code in this process. The LLVM module is not kept once its
    object code is linked; ``llvm_ir`` and ``assembly`` build it again from the graph when asked
    (``source``)."""

    def __init__(self, graph: Graph, plan: MemoryPlan, objects: list[bytes], entry: str, threads_symbol: str, threads: int,
                 *, source: Callable[[Graph], llvm.ModuleRef], tm: llvm.TargetMachine, cpu: str = "host",
                 cached: bool = False, weights: np.ndarray | None = None):
        # weights: the blob already laid out as the plan says, ``graph``'s parameters views of it
        # (a mapped compile cache entry: model_cache.py); else the parameters are copied into one
        self._weights, self.graph = (weights, graph) if weights is not None else weights_blob(graph, plan)
        #: the object code and its symbols, as model_cache.py stores them with the weights
        self.objects, self.entry_symbol, self.threads_symbol = tuple(objects), entry, threads_symbol
        self.target_machine = tm
        self.cpu = cpu
        self.threads = threads
        self.plan = plan
        #: whether the object code came from the compile cache (compile_cache.py)
        self.cached = cached
        self._source = source
        self._module: llvm.ModuleRef | None = None
        self._library = llvm_env.jit_link(objects, [entry, threads_symbol])
        self._entry = _ENTRY(self._library[entry])
        self._threads_addr = self._library[threads_symbol]
        self.set_threads(threads)
        self._arena = allocate_arena(plan.arena_bytes, graph.name)
        self._lock = threading.Lock()
        self._runs_here = cpu == "host"  # other CPUs are checked on the first run (check_runs_here)

    @property
    def module(self) -> llvm.ModuleRef:
        """The optimised LLVM module (generated again on first use)."""
        if self._module is None:
            self._module = self._source(self.graph)
        return self._module

    def set_threads(self, n: int) -> None:
        """Threads the pool uses for this model's parallel loops from the next call on."""
        self.threads = max(1, int(n))
        ctypes.c_int32.from_address(self._threads_addr).value = self.threads

    def save(self, path) -> list:
        """Write this model as a shared library and C header (see aot.py)."""
        from irc.targets.cpu.aot import write_shared_library

        return list(write_shared_library(self.graph, path, cpu=self.cpu, threads=self.threads))

    def llvm_ir(self) -> str:
        """The module's LLVM IR after optimisation."""
        return str(self.module)

    def assembly(self) -> str:
        return self.target_machine.emit_assembly(self.module)

    def run(self, inputs: Sequence[np.ndarray], out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Outputs for checked inputs; ``out`` (C-contiguous arrays of the output types) receives
        them in place, e.g. graph state written over its own input (irc.targets.state)."""
        outs = list(out) if out is not None else [np.empty(v.shape, v.dtype.numpy) for v in self.graph.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*[a.ctypes.data for a in inputs])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        if not self._runs_here:
            llvm_env.check_runs_here(self.cpu)  # built for another machine: SIGILL here, an error instead
            self._runs_here = True
        with self._lock:
            self._entry(in_ptrs, out_ptrs, self._arena.ctypes.data, self._weights.ctypes.data)
        return outs
