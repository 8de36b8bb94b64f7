"""From an LLVM module to PTX, and PTX through ``ptxas`` when the CUDA toolkit is present.

The cuda target builds LLVM IR with llvmlite and lets LLVM's NVPTX back end write the PTX (see
the decision in ``irc/targets/cuda/__init__.py``). A GPU driver compiles that PTX at load time;
``ptxas`` (optional, from the CUDA toolkit) assembles it offline, which checks it and reports
registers and spills per kernel, the numbers that say whether a tiling fits.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm

from irc.errors import TargetError
from irc.targets.cuda.arch import Arch
from irc.targets.llvm import machine

TRIPLE = "nvptx64-nvidia-cuda"
DATA_LAYOUT = "e-p3:32:32-p4:32:32-p5:32:32-p6:32:32-p7:32:32-i64:64-i128:128-v16:16-v32:32-n16:32:64"


@functools.cache
def _init() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@functools.cache
def target_machine(arch: Arch) -> llvm.TargetMachine:
    _init()
    try:
        target = llvm.Target.from_triple(TRIPLE)
    except RuntimeError:
        raise TargetError("this llvmlite was built without LLVM's NVPTX back end; the cuda target needs it") from None
    return target.create_target_machine(cpu=arch.name, features=arch.llvm_features, opt=3)


_FTZ = re.compile(r'^(define ptx_kernel void @"[^"]+"\(.*)$', re.M)


def emit_ptx(ir_text: str, arch: Arch, *, ftz: bool = True, optimize: bool = True) -> str:
    """PTX for the kernels in ``ir_text`` (LLVM IR) on ``arch``. With ``ftz`` f32 arithmetic flushes
    denormals (the ``.ftz`` forms of PTX instructions), the GPU side of ``flush_denormals``."""
    if ftz:
        # llvmlite's IR builder has no string attributes; the denormal mode is added to the text.
        ir_text = _FTZ.sub(r'\1 "denormal-fp-math-f32"="preserve-sign,preserve-sign"', ir_text)
    _init()
    mod = machine.parse(ir_text)
    tm = target_machine(arch)
    if optimize:
        machine.optimize(mod, tm, vectorize=False)
    return tm.emit_assembly(mod)


# ---------------------------------------------------------------------------------------- ptxas


@dataclass(frozen=True, slots=True)
class KernelReport:
    """What ptxas says about one kernel."""

    name: str
    registers: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    shared_bytes: int

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)


@dataclass(frozen=True, slots=True)
class PtxasResult:
    arch: str  # what the PTX targets
    assembled_for: str  # what ptxas generated code for (the lowest it supports >= arch)
    kernels: dict[str, KernelReport]
    log: str


def ptxas_path() -> str | None:
    return shutil.which("ptxas")


@functools.cache
def ptxas_archs() -> tuple[str, ...]:
    """The sm_XY names this ptxas can generate code for (CUDA 13 dropped sm_70)."""
    exe = ptxas_path()
    if exe is None:
        return ()
    out = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    return tuple(sorted(set(re.findall(r"'(sm_\d+)'", out)), key=lambda s: int(s[3:])))


def assemble_arch(arch: Arch) -> str | None:
    """The architecture ptxas should assemble ``.target arch`` PTX for: the arch itself, or the
    lowest newer one ptxas knows (PTX for sm_XY runs on every sm_MN with MN >= XY, and ptxas
    still rejects any instruction the PTX's own .target lacks)."""
    have = ptxas_archs()
    cands = [a for a in have if int(a[3:]) >= arch.cc]
    return min(cands, key=lambda a: int(a[3:])) if cands else None


_INFO_FN = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
_PROPS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


def ptxas(ptx: str, arch: Arch) -> PtxasResult:
    """Assemble ``ptx`` with ptxas (-v); TargetError with ptxas's messages if it fails."""
    return _ptxas_cached(hashlib.sha256(ptx.encode()).hexdigest(), ptx, arch)


@functools.lru_cache(maxsize=256)
def _ptxas_cached(_digest: str, ptx: str, arch: Arch) -> PtxasResult:
    exe = ptxas_path()
    if exe is None:
        raise TargetError("ptxas (CUDA toolkit) is not on the PATH")
    sm = assemble_arch(arch)
    if sm is None:
        raise TargetError(f"this ptxas cannot assemble code for {arch} or any newer architecture")
    with tempfile.TemporaryDirectory(prefix="irc-ptxas-") as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        p = subprocess.run([exe, f"-arch={sm}", "-v", str(src), "-o", str(Path(d) / "k.cubin")],
                           capture_output=True, text=True)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        errors = "; ".join(line.strip() for line in log.splitlines() if "error" in line or "fatal" in line)
        raise TargetError(f"ptxas rejected the PTX for {arch}: {errors[:2000]}")
    return PtxasResult(arch.name, sm, parse_ptxas_log(log), log)


def parse_ptxas_log(log: str) -> dict[str, KernelReport]:
    reports: dict[str, KernelReport] = {}
    current = None
    props = (0, 0, 0)
    for line in log.splitlines():
        m = _INFO_FN.search(line)
        if m:
            current = m.group(1)
            props = (0, 0, 0)
            continue
        m = _PROPS.search(line)
        if m and current:
            props = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            continue
        m = _REGS.search(line)
        if m and current:
            reports[current] = KernelReport(current, int(m.group(1)), props[1], props[2], props[0],
                                            int(m.group(2) or 0))
            current = None
    return reports
