"""LLVM set-up for the CPU target: the CPU code is generated for (host or a portable x86-64)
and its target machine, the vectorising optimisation pipeline, and linking generated code into
the process against the native libraries it calls (libm for transcendental functions, the
thread pool of thread_pool.py). Target-neutral set-up is irc.targets.llvm.machine."""

from __future__ import annotations

import functools
import itertools
import re
import subprocess
import sys
from dataclasses import dataclass

import llvmlite.binding as llvm

from irc.errors import InputError, TargetError
from irc.targets.llvm import machine
from irc.targets.llvm.machine import init, load_runtime_libraries


@functools.cache
def _lljit():
    return llvm.create_lljit_compiler(target_machine(cpu_spec("host"), jit=True))


_libraries = itertools.count()


def jit_link(obj: bytes, exports: list[str]):
    """Link an object file of generated code into the process; returns a tracker mapping
    exported names to addresses (the code lives as long as the tracker)."""
    from irc.targets.cpu import thread_pool

    return link_object(obj, exports, {thread_pool.RUN: thread_pool.jit_pool_address()})


def link_object(obj: bytes, exports: list[str], imports: dict[str, int] | None = None):
    """Link ``obj`` against the process's symbols and ``imports`` (name: address); unresolved
    symbols raise TargetError."""
    load_runtime_libraries()
    builder = llvm.JITLibraryBuilder().add_object_img(obj).add_current_process()
    for name, address in (imports or {}).items():
        builder.import_symbol(name, address)
    for name in exports:
        builder.export_symbol(name)
    try:
        return builder.link(_lljit(), f"irc{next(_libraries)}")
    except RuntimeError as e:
        raise TargetError(f"linking the generated code failed: {e}") from None


@dataclass(frozen=True)
class CpuSpec:
    """The CPU code is generated for: LLVM cpu name and feature string."""

    name: str
    features: str

    @property
    def has_avx512(self) -> bool:
        return "+avx512f" in self.features

    @property
    def has_avx2(self) -> bool:
        return "+avx2" in self.features

    @property
    def has_fma(self) -> bool:
        return "+fma" in self.features

    @property
    def has_vnni(self) -> bool:
        return "+avx512vnni" in self.features or "+avxvnni" in self.features

    @property
    def vector_bits(self) -> int:
        return 512 if self.has_avx512 else 256 if self.has_avx2 else 128

    def describe(self) -> str:
        flags = [f for f, on in (("avx512", self.has_avx512), ("avx2", self.has_avx2), ("fma", self.has_fma),
                                 ("vnni", self.has_vnni)) if on]
        return f"{self.name} ({', '.join(flags) or 'baseline x86-64'})"


def cpu_spec(cpu: str = "host") -> CpuSpec:
    """``host``: the machine irc runs on, every feature it has; ``generic``: portable x86-64;
    any other name must be a CPU LLVM knows (checked first: see check_cpu_name)."""
    init()
    if cpu == "host":
        return CpuSpec(llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
    if cpu == "generic":
        return CpuSpec("x86-64", "")
    check_cpu_name(cpu)
    return CpuSpec(cpu, "")


#: Builds a tiny object for the CPU named by argv[1]; LLVM aborts the process on a name it does
#: not know ("64-bit code requested on a subtarget that doesn't support it"), so it runs apart.
_PROBE = r"""
import sys
import llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter(); llvm.initialize_native_asmparser()
tm = llvm.Target.from_default_triple().create_target_machine(cpu=sys.argv[1], reloc="pic", codemodel="default")
m = llvm.parse_assembly("define i64 @f(i64 %x) {\n  %y = add i64 %x, 1\n  ret i64 %y\n}")
m.triple = tm.triple
tm.emit_object(m)
"""


@functools.cache
def check_cpu_name(cpu: str) -> None:
    """InputError unless LLVM knows the CPU ``cpu``, tried in a child process so that an unknown
    name can never end this one."""
    if not isinstance(cpu, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", cpu):
        raise InputError(f"cpu={cpu!r} is not a CPU name (host, generic, or an LLVM x86-64 name such as znver3)")
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE, cpu], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise TargetError(f"checking cpu={cpu!r} with LLVM did not finish in 60 s") from None
    if out.returncode != 0 or "not a recognized processor" in out.stderr:
        raise InputError(f"cpu={cpu!r} is not a CPU LLVM knows; give host, generic, or an LLVM x86-64 CPU name "
                         f"(e.g. x86-64-v3, znver3, znver4, skylake-avx512)")


def target_machine(spec: CpuSpec, *, jit: bool) -> llvm.TargetMachine:
    return machine.host_machine(spec.name, spec.features, jit=jit)


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The standard O3 pipeline with loop and SLP vectorisation."""
    machine.optimize(module, tm, vectorize=True)
