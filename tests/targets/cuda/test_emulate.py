"""Every kernel against the interpreter, run by the host emulation of the GPU (emulate.py): the
kernels' index arithmetic, tiling, shared memory, barriers, shuffles and the dp4a / mma
fragment layouts are checked on machines without a GPU. (The GPU itself runs the same cases in
test_gpu.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from llvmlite import ir

import irc
from irc.ir import interpret
from irc.ir.types import DType, TensorType
from irc.targets.cuda.arch import get_arch
from irc.targets.cuda.emulate import HostKernels
from irc.targets.cuda.kernel import GpuKernel, GpuModule
from irc.targets.cuda.kernels import gemm, mma, quant
from tests.support.marks import params, slow
from tests.targets.cuda.cases import CASES
from tests.targets.cuda.support import compare

#: the cases slowest to emulate (bf16/f16 and tiled GEMMs, quantized convs, most warp reductions...): slow
SLOW_CASES = {"conv_fused_bf16", "gemm_fused_bf16", "gemm_fused_f16", "gemm_fused_tiled", "qgemm_u8_zp", "qconv_u8",
              "max_pool_grad", "qconv_depthwise_i8", "matmul_vec", "matmul", "argmax", "conv_fused_group_res",
              "qglobal_average_pool", "qgemm_thin_i8", "conv_stride2", "log_softmax", "softmax_warp", "instance_norm",
              *(f"reduce_{r}_warp" for r in ("max", "min", "mean", "l1", "l2", "log_sum", "log_sum_exp", "sum_square"))}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=slow if c.id in SLOW_CASES else ()) for c in CASES])
def test_kernel_matches_interpreter(case):
    g = case.graph()
    data = case.data(g)
    # sm_80 takes every path: tensor cores for f16/bf16, dp4a, SIMT tiles
    exe = irc.compile(g, target="cuda", arch="sm_80", emulate=True, debug=True)
    compare(exe.run(data), interpret(g, data), case.rtol, case.atol, case.id)


SIMT_TILES = [*gemm.TILES, gemm.THIN]


def _smallest(tiles):
    """The tile with the fewest outputs (the first of equals): the one the fast subset runs."""
    return min(tiles, key=lambda t: t.bm * t.bn)


def _run_tile(emit, m, n, kd, batch=1, dt=DType.f32):
    """A GEMM kernel emitted with a forced tile, run on the emulator against numpy."""
    rng = np.random.default_rng(m * n + kd)
    mod = GpuModule("t", get_arch("sm_80"))
    out_t = TensorType((batch, m, n), DType.i32 if dt in (DType.i8, DType.u8) else DType.f32)
    k = GpuKernel(mod, "g", [out_t], [TensorType((batch, m, kd), dt), TensorType((batch, kd, n), dt)])
    out, a, b = k.bufs

    def store(k, bz, i, j, acc):
        off = k.add(k.add(k.mul(bz, m * n), k.mul(i, n)), j)
        k.b.store(acc, k.addr(out, off))

    launch = emit(k, a, b, store)
    name = k.finish()
    if dt in (DType.i8, DType.u8):
        av = rng.integers(-128 if dt is DType.i8 else 0, 128 if dt is DType.i8 else 256, (batch, m, kd)).astype(dt.numpy)
        bv = rng.integers(-127, 128, (batch, kd, n)).astype(np.int8)
    else:
        av = rng.standard_normal((batch, m, kd)).astype(dt.numpy)
        bv = rng.standard_normal((batch, kd, n)).astype(dt.numpy)
    o = np.zeros(out_t.shape, out_t.dtype.numpy)
    HostKernels(mod.ir(), [name]).launch(name, launch.grid, launch.block, [o.ctypes.data, av.ctypes.data, bv.ctypes.data])
    want = np.einsum("bmk,bkn->bmn", av.astype(np.float64), bv.astype(np.float64))
    return o, want


@pytest.mark.parametrize("tile", params(SIMT_TILES, fast={str(_smallest(SIMT_TILES))}))
def test_simt_gemm_every_tile(tile):
    """Each SIMT tile over a product with partial tiles on every edge, 2 batches."""
    m, n, kd = tile.bm + 3, tile.bn + 5, 2 * tile.bk + 3

    def emit(k, a, b, store):
        return gemm.emit_gemm(k, m, n, kd, 2, gemm.matrix(a, m, kd, batch_stride=m * kd),
                              gemm.matrix(b, kd, n, transposed=True, batch_stride=kd * n), store, tile=tile)

    got, want = _run_tile(emit, m, n, kd, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


MMA_TILES = [t for t in mma.MMA_TILES if t.bm != 64 or t.bn != 128]


@pytest.mark.parametrize("tile", params(MMA_TILES, fast={str(_smallest(MMA_TILES))}))
def test_mma_gemm_every_tile(tile):
    m, n, kd = tile.bm - 16 if tile.bm > 32 else tile.bm + 16, tile.bn - 8, mma.BK + 8

    def emit(k, a, b, store):
        return mma.emit_mma_gemm(k, m, n, kd, 1, gemm.matrix(a, m, kd), gemm.matrix(b, kd, n, transposed=True),
                                 store, DType.bf16, tile=tile)

    got, want = _run_tile(emit, m, n, kd, 1, DType.bf16)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)  # bf16 products are exact in f32


@pytest.mark.parametrize("tile", [pytest.param(t, id=f"{t.bm}x{t.bn}", marks=() if f"{t.bm}x{t.bn}" == "32x64" else slow)
                                  for t in [*quant.INT_TILES, quant.INT_THIN]])
@pytest.mark.parametrize("dt", [DType.u8, DType.i8])
def test_dp4a_gemm_every_tile(tile, dt):
    m, n, kd = tile.bm + 1, tile.bn + 3, 2 * tile.bk + 5

    def emit(k, a, b, store):
        def reader(buf, rows, cols, transposed, signed):
            def load(k, bz, i, kk):
                r, c = (kk, i) if transposed else (i, kk)
                return k.b.load(k.addr(buf, k.add(k.mul(r, cols), c)), typ=ir.IntType(8))
            return quant.ByteOperand(load, not transposed, signed)

        return quant.emit_int8_gemm(k, m, n, kd, 1, reader(a, m, kd, False, dt is DType.i8),
                                    reader(b, kd, n, True, True), "L", 0, store, tile=tile)

    got, want = _run_tile(emit, m, n, kd, 1, dt)
    np.testing.assert_array_equal(got, want.astype(np.int64))


def test_device_math_accuracy():
    """exp, log, tanh, sin, cos, erf, pow, log1p (softplus), expm1 (elu) over wide ranges, against
    numpy in float64: a few ulp (on the GPU ex2.approx adds at most 2 ulp to exp and its kin)."""
    from irc.ir import GraphBuilder

    x = np.concatenate([np.linspace(-30, 30, 2001), np.geomspace(1e-6, 80, 500), -np.geomspace(1e-6, 80, 500),
                        [0.0, -0.0, 1.0, 1 + 1e-6, 1 - 1e-6]]).astype(np.float32)
    pos = np.abs(x) + np.float32(1e-30)
    b = GraphBuilder("math")
    xv = b.input("x", TensorType(x.shape, DType.f32))
    pv = b.input("p", TensorType(x.shape, DType.f32))
    outs = [b.op(op, xv) for op in ("exp", "tanh", "sin", "cos", "erf", "softplus", "elu", "sigmoid")]
    outs += [b.op("log", pv), b.op("pow", pv, b.op("mul", b.op("sin", xv), b.const(3.0, DType.f32, "three")))]
    g = b.build(*outs)
    got = irc.compile(g, target="cuda", emulate=True).run([x, pos])
    x64, p64 = x.astype(np.float64), pos.astype(np.float64)
    from math import erf

    want = [np.exp(x64), np.tanh(x64), np.sin(x64), np.cos(x64), np.vectorize(erf)(x64),
            np.logaddexp(0, x64), np.where(x64 > 0, x64, np.expm1(np.minimum(x64, 0))), 1 / (1 + np.exp(-x64)),
            np.log(p64), p64 ** (np.sin(x64.astype(np.float32)).astype(np.float64) * 3)]
    names = ["exp", "tanh", "sin", "cos", "erf", "softplus", "elu", "sigmoid", "log", "pow"]
    for name, a, e in zip(names, got, want):
        finite = np.isfinite(e) & (np.abs(e) < 1e37) & (np.abs(e) > 1e-37)
        np.testing.assert_allclose(a[finite], e[finite], rtol=2e-6 if name != "pow" else 2e-5, atol=2e-7,
                                   err_msg=name)


def test_outputs_no_kernel_writes():
    """An output that is a graph input, a parameter, or a value another output holds is copied
    into its buffer after the launches (found by the random-graph differential tester)."""
    from irc.targets.cuda.plan import LaunchPlan
    from tests.targets.harness import passthrough_graph

    g = passthrough_graph()
    xs = [np.linspace(-1, 1, 5).astype(np.float32)]
    m = irc.compile(g, target="cuda", emulate=True)
    for got, want in zip(m.run(xs), interpret(g, xs)):
        np.testing.assert_array_equal(got, want)
    plan = m.executable.plan
    assert [i for i, _ in plan.output_copies] == [0, 2, 3]
    assert LaunchPlan.from_json(plan.to_json()).output_copies == plan.output_copies
