"""The cpu target's vector math (irc.targets.cpu.vecmath) holds its stated maximum errors
(vecmath.MAX_ULP) against float64 references, on a dense grid of each function's useful range
plus one in every 2**11 f32 bit patterns (subnormals, huge values, infinities, NaN), as scalar
code and as 4-, 8- and 16-lane vectors, with FMA (the host) and without (x86-64-v2); code for a
CPU with AVX-512 is compiled (and run only where the machine has it). Element-wise graphs reach
these functions instead of libm, and special values come out exact."""

from __future__ import annotations

import ctypes
import functools
import math
import re

import numpy as np
import pytest
from llvmlite import ir

import irc
from irc.ir.types import DType, TensorType
from irc.targets.cpu import llvm_env, vecmath
from irc.targets.cpu.kernel import KernelBuilder, ModuleState
from irc.targets.llvm import lltypes as T
from irc.targets.llvm import machine
from tests.support import marks
from tests.targets.harness import one_op_graph

_ERF = np.frompyfunc(math.erf, 1, 1)
_ERFC = np.frompyfunc(math.erfc, 1, 1)
REFERENCE = {
    "exp": np.exp, "log": np.log, "tanh": np.tanh, "erf": lambda x: _ERF(x).astype(np.float64),
    "erfc": lambda x: _ERFC(x).astype(np.float64),
    "expm1": np.expm1, "log1p": np.log1p,
    "sigmoid": lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))),
}
#: each function's dense range (2**20 points)
RANGE = {"exp": (-110.0, 95.0), "log": (0.0, 4.0), "tanh": (-12.0, 12.0), "erf": (-6.0, 6.0), "erfc": (-6.0, 12.0),
         "expm1": (-20.0, 90.0), "log1p": (-1.0, 4.0), "sigmoid": (-110.0, 110.0)}
#: sigmoid is 1 / (1 + exp(-x)): exp's error plus one rounding each for the add and the divide
SIGMOID_MAX_ULP = vecmath.MAX_ULP["exp"] + 1
FUNCTIONS = sorted(vecmath.FUNCTIONS)
#: CPUs this machine runs: the host (AVX2 and FMA where it has them) and SSE4.1 without FMA
CPUS = ("host", "x86-64-v2")


@functools.cache
def grid(fname: str) -> np.ndarray:
    lo, hi = RANGE[fname]
    dense = np.linspace(lo, hi, 1 << 20, dtype=np.float64).astype(np.float32)
    patterns = np.arange(0, 1 << 32, 1 << 11, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, 1.1754944e-38, 1e-30, -1e-30, 1.0, -1.0,
                         3.4028235e38, -3.4028235e38, np.inf, -np.inf, np.nan], np.float32)
    return np.concatenate([dense, patterns, specials])


@functools.cache
def reference(fname: str) -> np.ndarray:
    with np.errstate(all="ignore"):  # signalling NaNs among the bit patterns
        return REFERENCE[fname](grid(fname).astype(np.float64))


def max_ulp(y: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """The largest error of f32 results ``y`` in ulps of the float64 reference (the f32 spacing
    at it; subnormal spacing below FLT_MIN), and where. NaN must match NaN; results that round
    to inf or 0 must be exactly that."""
    with np.errstate(all="ignore"):
        r32 = ref.astype(np.float32)
        _, e = np.frexp(ref)
        ulp = np.where(ref == 0, 2.0 ** -149, np.maximum(np.ldexp(1.0, e - 24), 2.0 ** -149))
        err = np.abs(y.astype(np.float64) - ref) / ulp
    same = (y == r32) | (np.isnan(y) & np.isnan(ref))
    err = np.where(same, 0.0, err)
    err = np.where(np.isinf(r32) | np.isnan(ref) | np.isnan(y), np.where(same, 0.0, np.inf), err)
    i = int(np.argmax(err))
    return float(err[i]), i


def _module(fname: str, t: ir.Type) -> tuple[ir.Module, str]:
    """A module exporting ``f(out, in, n)``: ``fname`` applied to n elements, len(t) at a time."""
    lanes = t.count if isinstance(t, ir.VectorType) else 1
    mod = ir.Module(name=f"vm_{fname}")
    state = ModuleState(mod, threads_global=None, ftz=False)
    n = len(grid(fname)) // lanes * lanes + lanes
    tt = TensorType((n,), DType.f32)
    k = KernelBuilder(state, f"vm_{fname}", [tt], [tt])
    k.fn.linkage = "external"
    fn = vecmath.function_for(state, fname, t)
    with k.loop(n // lanes) as i:
        off = k.mul(i, lanes)
        v = k.b.load(k.addr(k.ins[0], off), typ=t, align=4)
        k.b.store(k.b.call(fn, [v]), k.addr(k.outs[0], off), align=4)
    k.finish()
    return mod, k.name


def _vtype(lanes: int) -> ir.Type:
    return ir.VectorType(T.F32, lanes) if lanes else T.F32


def _optimized(fname: str, lanes: int, cpu: str):
    mod, name = _module(fname, _vtype(lanes))
    tm = llvm_env.target_machine(llvm_env.cpu_spec(cpu), jit=True)
    parsed = machine.parse(str(mod))
    llvm_env.optimize(parsed, tm)
    return parsed, tm, name


@functools.cache
def jit(fname: str, lanes: int, cpu: str):
    """``fname`` over a float32 array of the grid's length, ``lanes`` elements at a time."""
    parsed, tm, name = _optimized(fname, lanes, cpu)
    lib = llvm_env.link_object(tm.emit_object(parsed), [name])
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lib[name])
    width = max(lanes, 1)
    n = len(grid(fname)) // width * width + width

    def run(x: np.ndarray) -> np.ndarray:
        src = np.zeros(n, np.float32)
        src[: len(x)] = x
        out = np.empty(n, np.float32)
        f(out.ctypes.data, src.ctypes.data)
        return out[: len(x)]

    run.lib = lib  # the code lives as long as its tracker
    return run


def run_direct(fname: str, lanes: int, cpu: str) -> np.ndarray:
    return jit(fname, lanes, cpu)(grid(fname))


@pytest.mark.parametrize("fname,lanes,cpu", marks.grid(FUNCTIONS, [0, 4, 8, 16], CPUS, fast={
    *(f"{f}-8-host" for f in FUNCTIONS), "exp-4-x86-64-v2", "erf-4-x86-64-v2", "tanh-16-host", "log-0-host"}))
def test_functions_hold_their_stated_error(fname, lanes, cpu):
    assert_stated_error(fname, run_direct(fname, lanes, cpu))


def assert_stated_error(fname: str, y: np.ndarray) -> None:
    """``y`` (the function on grid(fname)) within vecmath's stated bound for ``fname``."""
    x, ref = grid(fname), reference(fname)
    if fname == "erfc":  # a relative bound where the result is normal (vecmath's docstring)
        normal = np.abs(ref) >= 2.0 ** -126
        rel = np.abs(y[normal].astype(np.float64) - ref[normal]) / ref[normal]
        assert np.nanmax(rel) <= vecmath.ERFC_MAX_REL
        assert np.all(np.abs(y[~normal & ~np.isnan(ref)]) < 2.0 ** -125)
        assert np.array_equal(np.isnan(y), np.isnan(ref))
        return
    err, i = max_ulp(y, ref)
    assert err <= vecmath.MAX_ULP[fname], f"{fname}({x[i]!r}) = {y[i]!r}, reference {ref[i]!r}: {err:.2f} ulp"


@pytest.mark.parametrize("fname", FUNCTIONS)
def test_avx512_code_is_vector_code_without_calls(fname):
    """16 lanes for a CPU with AVX-512: compiled here, run only where the machine has it."""
    parsed, tm, _ = _optimized(fname, 16, "x86-64-v4")
    asm = tm.emit_assembly(parsed)
    assert "call" not in asm and re.search(r"%[yz]mm", asm)
    if "avx512f" in llvm_env.isa_features("host"):
        assert_stated_error(fname, run_direct(fname, 16, "x86-64-v4"))


def _graph_result(op: str, x: np.ndarray, cpu: str) -> np.ndarray:
    attrs = {"alpha": 1.0} if op == "elu" else None
    # threads=1: pool workers inherit the FTZ/DAZ mode of the model run that started them, so an
    # earlier FTZ model in this process would flush this one's denormals on its workers
    m = irc.compile(one_op_graph(op, [TensorType.of(x)], attrs), "cpu", cpu=cpu, ftz=False, threads=1)
    return m(x)


@pytest.mark.parametrize("op,cpu", marks.grid(["exp", "log", "tanh", "erf", "sigmoid"], CPUS, fast={
    "exp-host", "log-host", "tanh-host", "erf-host", "sigmoid-host", "erf-x86-64-v2"}))
def test_elementwise_ops_hold_the_stated_error(op, cpu):
    y, ref = _graph_result(op, grid(op), cpu), reference(op)
    if op == "sigmoid":  # 1 / (1 + exp(-x)) is 0 once exp(-x) overflows: results below FLT_MIN
        keep = ~(np.abs(ref) < 2.0 ** -126)
        y, ref = y[keep], ref[keep]
    err, i = max_ulp(y, ref)
    bound = SIGMOID_MAX_ULP if op == "sigmoid" else vecmath.MAX_ULP[op]
    assert err <= bound, f"{op}: {y[i]!r}, reference {ref[i]!r}: {err:.2f} ulp"


@pytest.mark.parametrize("op", ["exp", "log", "tanh", "erf", "sigmoid", "softplus", "elu"])
def test_elementwise_f32_kernels_call_no_libm(op):
    """The loop vectorises through the inlined definitions: no call of expf, erff... is left."""
    x = np.zeros(4096, np.float32)
    attrs = {"alpha": 1.0} if op == "elu" else None
    m = irc.compile(one_op_graph(op, [TensorType.of(x)], attrs), "cpu")
    text = m.executable.llvm_ir()
    assert not re.search(r"@(exp|log|tanh|erf|expm1|log1p)f?\b", text)
    assert not re.search(r"@llvm\.(exp|log|tanh)\.", text)
    assert re.search(r"<\d+ x float>", text)


SPECIALS = {
    "exp": [(-np.inf, 0.0), (np.inf, np.inf), (100.0, np.inf), (-200.0, 0.0), (0.0, 1.0), (-0.0, 1.0),
            (np.nan, np.nan)],
    "log": [(0.0, -np.inf), (-0.0, -np.inf), (-1.0, np.nan), (-np.inf, np.nan), (np.inf, np.inf), (1.0, 0.0),
            (np.nan, np.nan)],
    "tanh": [(np.inf, 1.0), (-np.inf, -1.0), (20.0, 1.0), (0.0, 0.0), (-0.0, -0.0), (np.nan, np.nan)],
    "erf": [(np.inf, 1.0), (-np.inf, -1.0), (5.0, 1.0), (0.0, 0.0), (-0.0, -0.0), (np.nan, np.nan)],
    "sigmoid": [(np.inf, 1.0), (-np.inf, 0.0), (0.0, 0.5), (np.nan, np.nan)],
}


@pytest.mark.parametrize("op", sorted(SPECIALS))
def test_special_values_are_exact(op):
    """Under the default FTZ mode and without it."""
    x = np.array([a for a, _ in SPECIALS[op]], np.float32)
    want = np.array([b for _, b in SPECIALS[op]], np.float32)
    for ftz in (True, False):
        m = irc.compile(one_op_graph(op, [TensorType.of(x)]), "cpu", ftz=ftz)
        y = m(x)
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(np.signbit(y[want == 0]), np.signbit(want[want == 0]))


DIRECT_SPECIALS = {
    **{op: v for op, v in SPECIALS.items() if op != "sigmoid"},
    "erfc": [(np.inf, 0.0), (-np.inf, 2.0), (20.0, 0.0), (-20.0, 2.0), (0.0, 1.0), (-0.0, 1.0), (np.nan, np.nan)],
    "expm1": [(-np.inf, -1.0), (np.inf, np.inf), (100.0, np.inf), (-100.0, -1.0), (0.0, 0.0), (-0.0, -0.0),
              (np.nan, np.nan)],
    "log1p": [(-1.0, -np.inf), (-2.0, np.nan), (-np.inf, np.nan), (np.inf, np.inf), (0.0, 0.0), (-0.0, -0.0),
              (1e-30, 1e-30), (np.nan, np.nan)],
}


@pytest.mark.parametrize("lanes", [0, 8])
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_special_values_of_each_function(fname, lanes):
    x = np.array([a for a, _ in DIRECT_SPECIALS[fname]], np.float32)
    want = np.array([b for _, b in DIRECT_SPECIALS[fname]], np.float32)
    y = jit(fname, lanes, "host")(x)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(np.signbit(y[want == 0]), np.signbit(want[want == 0]))


def test_subnormal_results_round_correctly_without_ftz():
    x = np.array([-88.0, -95.0, -103.0, -103.9], np.float32)
    y = _graph_result("exp", x, "host")
    assert max_ulp(y, np.exp(x.astype(np.float64)))[0] <= vecmath.MAX_ULP["exp"]
    assert (y[:3] > 0).all()


@pytest.mark.parametrize("op", ["exp", "tanh", "erf", "log"])
def test_f16_goes_through_f32(op):
    x = np.linspace(0.01 if op == "log" else -6, 6, 4001).astype(np.float16)
    y = _graph_result(op, x, "host")
    want = REFERENCE[op](x.astype(np.float64)).astype(np.float16)
    # one f16 rounding of a result a few f32 ulps off: at most one f16 ulp apart
    np.testing.assert_array_less(np.abs(y.astype(np.float64) - want), np.spacing(np.abs(want)).astype(np.float64) * 1.01)
