"""How irc makes PTX, measured: llvmlite's NVPTX back end (what irc does) next to CUDA C compiled
by nvcc (the alternative), without a GPU.

- compile time of one tiled SGEMM kernel (the same tiling both ways: 128x128x8 block tile, 8x8
  per thread, double-buffered shared memory, 256 threads), and of a whole ResNet-18 module;
- ptxas's registers and spills for the two GEMM kernels on sm_80 and sm_90.

    python benchmarks/cuda_ptx_choice.py

Needs nvcc and ptxas on the PATH for the comparison (llvmlite alone gives the irc column).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CUDA_C_SGEMM = r"""
// The SIMT GEMM of irc/targets/cuda/kernels/gemm.py, written as CUDA C with the same tiling.
#define BM 128
#define BN 128
#define BK 8
#define TM 8
#define TN 8
extern "C" __global__ void __launch_bounds__(256) sgemm(float *__restrict__ C, const float *__restrict__ A,
                                                        const float *__restrict__ B, int M, int N, int K) {
    __shared__ __align__(16) float As[2][BK][BM];
    __shared__ __align__(16) float Bs[2][BK][BN];
    int tid = threadIdx.x, tx = tid % (BN / TN), ty = tid / (BN / TN);
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float acc[TM][TN] = {};
    float ra[BM * BK / 256], rb[BK * BN / 256];
    auto load = [&](int k0) {
        for (int j = 0; j < BM * BK / 256; ++j) {
            int e = tid + j * 256, m = e / BK, k = e % BK;
            ra[j] = (m0 + m < M && k0 + k < K) ? A[(m0 + m) * K + k0 + k] : 0.f;
        }
        for (int j = 0; j < BK * BN / 256; ++j) {
            int e = tid + j * 256, k = e / BN, n = e % BN;
            rb[j] = (k0 + k < K && n0 + n < N) ? B[(k0 + k) * N + n0 + n] : 0.f;
        }
    };
    auto store = [&](int buf) {
        for (int j = 0; j < BM * BK / 256; ++j) { int e = tid + j * 256; As[buf][e % BK][e / BK] = ra[j]; }
        for (int j = 0; j < BK * BN / 256; ++j) { int e = tid + j * 256; Bs[buf][e / BN][e % BN] = rb[j]; }
    };
    load(0); store(0); __syncthreads();
    int tiles = (K + BK - 1) / BK;
    for (int t = 0; t < tiles; ++t) {
        int cur = t & 1;
        if (t + 1 < tiles) load((t + 1) * BK);
        #pragma unroll
        for (int k = 0; k < BK; ++k) {
            float a[TM], b[TN];
            #pragma unroll
            for (int i = 0; i < TM; i += 4) *(float4 *)&a[i] = *(const float4 *)&As[cur][k][ty * TM + i];
            #pragma unroll
            for (int j = 0; j < TN; j += 4) *(float4 *)&b[j] = *(const float4 *)&Bs[cur][k][tx * TN + j];
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                #pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (t + 1 < tiles) store(cur ^ 1);
        __syncthreads();
    }
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) {
            int m = m0 + ty * TM + i, n = n0 + tx * TN + j;
            if (m < M && n < N) C[m * N + n] = fmaxf(acc[i][j], 0.f);
        }
}
"""


def median_time(fn, runs: int = 5) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    from irc import zoo
    from irc.api import compile as irc_compile
    from irc.ir import GraphBuilder
    from irc.ir.types import DType, TensorType
    from irc.targets.cuda import ptx as ptxmod
    from irc.targets.cuda.arch import get_arch
    from irc.targets.cuda.codegen import generate

    b = GraphBuilder("sgemm")
    a = b.input("a", TensorType((4096, 4096), DType.f32))
    w = b.input("w", TensorType((4096, 4096), DType.f32))
    (o,) = b.add_node("gemm_fused", [a, w], {"act": "relu"})
    gemm = b.build(o)
    resnet = irc_compile(zoo.build("resnet18", batch=1), target="cuda", arch="sm_80").graph

    rows = []
    for arch in ("sm_80", "sm_90"):
        A = get_arch(arch)
        t_gemm = median_time(lambda A=A: generate(gemm, A))
        t_resnet = median_time(lambda A=A: generate(resnet, A), runs=3)
        code = generate(gemm, A)
        rows.append((arch, "llvmlite NVPTX (irc)", t_gemm, t_resnet, code.ptx))
    nvcc = shutil.which("nvcc")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "sgemm.cu"
        src.write_text(CUDA_C_SGEMM)
        for arch in ("sm_80", "sm_90"):
            if nvcc is None:
                continue
            out = Path(d) / f"sgemm_{arch}.ptx"
            cmd = [nvcc, "-ptx", f"-arch={arch.replace('sm', 'compute')}", "-O3", str(src), "-o", str(out)]
            t = median_time(lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True), runs=3)
            rows.append((arch, "CUDA C + nvcc -ptx", t, None, out.read_text()))

    print(f"{'arch':<7}{'generator':<24}{'GEMM kernel s':>15}{'ResNet-18 s':>13}{'regs':>6}{'spills':>8}")
    for arch, what, t_gemm, t_resnet, ptx in rows:
        regs = spills = "-"
        if ptxmod.ptxas_path():
            reps = ptxmod.ptxas(ptx, get_arch(arch)).kernels
            rep = next(iter(reps.values()))
            regs, spills = rep.registers, rep.spill_stores + rep.spill_loads
        res = f"{t_resnet:.2f}" if t_resnet is not None else "-"
        print(f"{arch:<7}{what:<24}{t_gemm:>15.3f}{res:>13}{regs:>6}{spills:>8}")
    if nvcc is None:
        print("nvcc is not on the PATH: only irc's column was measured", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
