"""C simulation of a generated GEMM kernel: compiled by g++ with its testbench (cached, as the
network kernels are) and run on numpy matrices, which go in and come out in the device layout."""

from __future__ import annotations

import subprocess

import numpy as np

from irc.errors import InputError, TargetError
from irc.fileio import scratch_dir
from irc.targets.fpga_hls import toolchain
from irc.targets.fpga_hls.gemm.config import GemmConfig


def to_device(a: np.ndarray, b: np.ndarray, cfg: GemmConfig) -> tuple[np.ndarray, np.ndarray]:
    """A^T (KP x MP) and B (KP x NP), fp32, zero-padded to whole tiles."""
    at = np.zeros((cfg.KP, cfg.MP), np.float32)
    at[:cfg.K, :cfg.M] = a.T
    bp = np.zeros((cfg.KP, cfg.NP), np.float32)
    bp[:cfg.K, :cfg.N] = b
    return at, bp


def build(sources: dict[str, str], name: str = "gemm"):
    """The testbench executable (kernel and testbench compiled -Wall -Werror)."""
    flags = toolchain.flags_for(None)
    headers = {f"{name}.h": sources[f"{name}.h"]}
    units = [toolchain.Unit(f"{name}.cpp", sources[f"{name}.cpp"], headers, f"GEMM kernel {name}"),
             toolchain.Unit(f"{name}_tb.cpp", sources[f"{name}_tb.cpp"], headers, f"the testbench of {name}")]
    return toolchain.link(toolchain.compile_objects(units, flags), shared=False, what=f"the testbench of {name}")


def run(cfg: GemmConfig, sources: dict[str, str], a: np.ndarray, b: np.ndarray, name: str = "gemm") -> np.ndarray:
    """C = A·B as the kernel computes it (M x N, fp32)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != (cfg.M, cfg.K) or b.shape != (cfg.K, cfg.N):
        raise InputError(f"gemm {cfg.M}x{cfg.N}x{cfg.K}: A must be {cfg.M}x{cfg.K} and B {cfg.K}x{cfg.N}, "
                         f"got {a.shape} and {b.shape}")
    exe = build(sources, name)
    at, bp = to_device(a, b, cfg)
    with scratch_dir("irc-gemm-csim") as tmp:
        at.tofile(tmp / "AT.bin")
        bp.tofile(tmp / "B.bin")
        r = subprocess.run([str(exe), str(tmp)], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise TargetError(f"C simulation of GEMM kernel {name} failed: {r.stderr.strip() or r.returncode}")
        c = np.fromfile(tmp / "C.bin", np.float32).reshape(cfg.MP, cfg.NP)
    return np.ascontiguousarray(c[:cfg.M, :cfg.N])


def error_bound(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The float32 bound on each element of A·B summed in any order: K · 2^-23 · sum_k |a||b|."""
    return a.shape[1] * 2.0 ** -23 * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))


def check(design, seed: int = 0) -> str:
    """The kernel on seeded matrices against numpy (float64), every element within error_bound;
    TargetError when one is not."""
    cfg = design.cfg
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (cfg.M, cfg.K)).astype(np.float32)
    b = rng.uniform(-1, 1, (cfg.K, cfg.N)).astype(np.float32)
    got = design.csim(a, b)
    err = np.abs(got - a.astype(np.float64) @ b.astype(np.float64))
    bad = int((err > error_bound(a, b)).sum())
    if bad:
        raise TargetError(f"C simulation of GEMM kernel {design.name}: {bad} of {err.size} elements beyond the "
                          f"float32 error bound (largest error {err.max():.3g})")
    return f"C simulation: PASS ({cfg.M}x{cfg.N}x{cfg.K} against numpy, largest error {err.max():.3g})"
