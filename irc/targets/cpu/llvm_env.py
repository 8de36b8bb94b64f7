"""LLVM set-up for the CPU target: the CPU code is generated for (host or a portable x86-64)
and its target machine, the vectorising optimisation pipeline, and linking generated code into
the process against the native libraries it calls (libm for transcendental functions, the
thread pool of thread_pool.py). Target-neutral set-up is irc.targets.llvm.machine."""

from __future__ import annotations

import functools
import itertools
import json
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


def jit_link(obj: bytes | list[bytes], exports: list[str]):
    """Link object files of generated code (one, or the parts of parallel_codegen.py) into the
    process; returns a tracker mapping exported names to addresses (the code lives as long as
    the tracker)."""
    from irc.targets.cpu import thread_pool

    return link_object(obj, exports, {thread_pool.RUN: thread_pool.jit_pool_address()})


def link_object(obj: bytes | list[bytes], exports: list[str], imports: dict[str, int] | None = None):
    """Link ``obj`` (one object or several) against the process's symbols and ``imports``
    (name: address); unresolved symbols raise TargetError."""
    load_runtime_libraries()
    builder = llvm.JITLibraryBuilder()
    for o in [obj] if isinstance(obj, (bytes, bytearray)) else obj:
        builder.add_object_img(o)
    builder.add_current_process()
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


#: One tiny function per ISA extension generated code may use, and the instruction that shows it:
#: the code LLVM makes for the named CPU tells which of them that CPU has.
_ISA_PROBES = {
    "sse4.1": ("<4 x float> @f(<4 x float> %a)", "%r = call <4 x float> @llvm.floor.v4f32(<4 x float> %a)",
               r"roundps", "declare <4 x float> @llvm.floor.v4f32(<4 x float>)"),
    "popcnt": ("i64 @f(i64 %a)", "%r = call i64 @llvm.ctpop.i64(i64 %a)", r"popcnt", "declare i64 @llvm.ctpop.i64(i64)"),
    "avx": ("<8 x float> @f(<8 x float> %a, <8 x float> %b)", "%r = fadd <8 x float> %a, %b", r"vaddps\s+%ymm", ""),
    "avx2": ("<8 x i32> @f(<8 x i32> %a, <8 x i32> %b)", "%r = add <8 x i32> %a, %b", r"vpaddd\s+%ymm", ""),
    "fma": ("<8 x float> @f(<8 x float> %a, <8 x float> %b, <8 x float> %c)",
            "%r = call <8 x float> @llvm.fma.v8f32(<8 x float> %a, <8 x float> %b, <8 x float> %c)", r"vfmadd\d{3}",
            "declare <8 x float> @llvm.fma.v8f32(<8 x float>, <8 x float>, <8 x float>)"),
    "f16c": ("<8 x float> @f(<8 x half> %a)", "%r = fpext <8 x half> %a to <8 x float>", r"vcvtph2ps", ""),
    "bmi2": ("i64 @f(i64 %a, i64 %b)", "%r = shl i64 %a, %b", r"shlx", ""),
    "avx512f": ("<16 x float> @f(<16 x float> %a, <16 x float> %b)", "%r = fadd <16 x float> %a, %b", r"%zmm", ""),
    "avx512bw": ("<64 x i8> @f(<64 x i8> %a, <64 x i8> %b)", "%r = add <64 x i8> %a, %b", r"vpaddb\s+%zmm", ""),
}

_ISA_PROBE = r"""
import json, re, sys
import llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter(); llvm.initialize_native_asmparser()
tm = llvm.Target.from_default_triple().create_target_machine(cpu=sys.argv[1], reloc="pic", codemodel="default")
found = []
for feature, (sig, body, shows, decl) in json.loads(sys.argv[2]).items():
    m = llvm.parse_assembly(f'{decl}\ndefine {sig} #0 {{\n  {body}\n  ret {sig.split(" @")[0]} %r\n}}\n'
                            'attributes #0 = { "min-legal-vector-width"="512" }\n')
    m.triple = tm.triple
    if re.search(shows, tm.emit_assembly(m)):
        found.append(feature)
print(" ".join(found))
"""


@functools.cache
def isa_features(cpu: str) -> frozenset[str]:
    """The ISA extensions of _ISA_PROBES that code generated for ``cpu`` may use (``host``: the
    host's own). Found in a child process, like check_cpu_name."""
    init()
    if cpu == "host":
        host = llvm.get_host_cpu_features()
        return frozenset(f for f in _ISA_PROBES if host.get(f))
    if cpu == "generic":
        return frozenset()
    if not isinstance(cpu, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", cpu):
        check_cpu_name(cpu)  # the error for what is not a name at all
    out = subprocess.run([sys.executable, "-c", _ISA_PROBE, cpu, json.dumps(_ISA_PROBES)], capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0 or "not a recognized processor" in out.stderr:
        check_cpu_name(cpu)  # an unknown name: its InputError
        raise TargetError(f"finding the instruction set of cpu={cpu!r} failed: {out.stderr.strip()[-300:]}")
    return frozenset(out.stdout.split())


def check_runs_here(cpu: str) -> None:
    """InputError if code generated for ``cpu`` may use instructions this machine lacks (it would
    die of SIGILL): such code can be written to a file for another machine, not run here."""
    missing = sorted(isa_features(cpu) - isa_features("host"))
    if missing:
        raise InputError(f"cpu={cpu!r} uses instructions this machine lacks ({', '.join(missing)}): code built for "
                         f"it cannot run here; run with cpu=host, or build a library for that machine "
                         f"(irc compile --opt cpu={cpu} -o model.so)")


def target_machine(spec: CpuSpec, *, jit: bool) -> llvm.TargetMachine:
    return machine.host_machine(spec.name, spec.features, jit=jit)


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The standard O3 pipeline with loop and SLP vectorisation; loops that codegen marked
    ``llvm.loop.unroll.disable`` (every kernel but big multiply-add loop nests, see
    codegen.effort) are vectorised but not unrolled."""
    machine.optimize(module, tm, vectorize=True)
