"""LLVM set-up both targets use: one-time initialisation, parsing and verifying IR text, host
target machines, and the O3 pipeline (vectorisers on for a CPU, off for the GPU, whose
parallelism is the grid)."""

from __future__ import annotations

import ctypes.util
import functools

import llvmlite.binding as llvm


@functools.cache
def init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()


@functools.cache
def load_runtime_libraries() -> None:
    """Make libm's and libgcc_s's symbols visible to the JIT."""
    init()
    # libgcc_s holds the f16 conversion helpers LLVM calls on CPUs without native ones.
    for name, soname in (("m", "libm.so.6"), ("gcc_s", "libgcc_s.so.1")):
        try:  # glibc's names: find_library would run ldconfig (tens of ms in every process)
            llvm.load_library_permanently(soname)
            continue
        except RuntimeError:
            pass
        path = ctypes.util.find_library(name)
        if path is not None:
            llvm.load_library_permanently(path)


def host_machine(cpu: str, features: str, *, jit: bool) -> llvm.TargetMachine:
    """A target machine for the host's triple: JIT code, or position-independent objects."""
    init()
    target = llvm.Target.from_default_triple()
    if jit:
        return target.create_target_machine(cpu=cpu, features=features, opt=3, jit=True)
    return target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic", codemodel="default")


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine, *, vectorize: bool = True) -> None:
    """The standard O3 pipeline with loop unrolling; loop and SLP vectorisation when ``vectorize``."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = vectorize
    pto.slp_vectorization = vectorize
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def parse(text: str) -> llvm.ModuleRef:
    init()
    mod = llvm.parse_assembly(text)
    mod.verify()
    return mod
