"""C simulation: each kernel compiled by g++ with its testbench and run on its test vectors,
as ``vitis_hls`` csim_design does. The testbench compares against the interpreter's results
(vectors.py) and its exit status says whether every output element is within tolerance."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.ir.graph import Value
from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.kernels import Kernel, Plan
from irc.targets.fpga_hls.precision import Precision
from irc.targets.fpga_hls.sources import Sources
from irc.targets.fpga_hls.vectors import kernel_vectors


@dataclass(slots=True)
class CsimResult:
    kernel: str
    op: str
    passed: bool
    message: str


def write_vectors(plan: Plan, precision: Precision, values: dict[Value, np.ndarray], root: Path) -> None:
    """vectors/<kernel>/<arg>.bin (device format) and <arg>.expected.bin for every kernel."""
    for k in plan.kernels:
        d = root / k.name
        d.mkdir(parents=True, exist_ok=True)
        for name, arr in kernel_vectors(k, precision, values).items():
            (d / f"{name}.bin").write_bytes(np.ascontiguousarray(arr).tobytes())


def build_testbench(k: Kernel, sources: Sources, flags: list[str]) -> Path:
    units = [toolchain.Unit(f"{k.name}.cpp", sources.kernels[k.name], sources.headers, f"kernel {k.name}"),
             toolchain.Unit(f"{k.name}_tb.cpp", sources.testbenches[k.name], sources.headers,
                            f"the testbench of {k.name}")]
    objs = [toolchain.compile_object(u, flags) for u in units]
    return toolchain.link(objs, shared=False, what=f"the testbench of {k.name}")


def run_csim(plan: Plan, sources: Sources, precision: Precision, values: dict[Value, np.ndarray],
             flags: list[str], vector_root: Path) -> list[CsimResult]:
    """Every kernel's testbench, built and run on the vectors under ``vector_root``."""
    write_vectors(plan, precision, values, vector_root)

    def one(k: Kernel) -> CsimResult:
        exe = build_testbench(k, sources, flags)
        r = subprocess.run([str(exe), str(vector_root / k.name)], capture_output=True, text=True, timeout=600)
        text = (r.stdout.strip().splitlines() or [""])[-1]
        if r.returncode != 0:
            detail = " | ".join(r.stderr.strip().splitlines()[:3])
            text = f"{text} {detail}".strip() or f"exit status {r.returncode}"
        return CsimResult(k.name, k.node.op, r.returncode == 0, text)

    workers = max(1, min(len(plan.kernels), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, plan.kernels))


def format_results(results: list[CsimResult]) -> str:
    ok = sum(r.passed for r in results)
    lines = [f"C simulation: {ok} of {len(results)} kernels pass"]
    lines += [f"  {'PASS' if r.passed else 'FAIL'}  {r.kernel:<28} {r.op:<20} {r.message}" for r in results]
    return "\n".join(lines) + "\n"
