"""The AVX2 int8 kernel without VNNI (pmaddubsw256) is exact: it is chosen only for layers whose
weights cannot saturate vpmaddubsw's int16 pair sums (fits_pmaddubsw, checked against a model of
the instruction), it equals the pmaddwd256 kernel and the interpreter bit for bit on ragged conv
and dense shapes, and the quantize pass's weight_bits=7 gives weights that always fit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irc
import irc.zoo
from irc.cli.args import parse_options
from irc.errors import InputError
from irc.ir import quant_arith as qa
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.ir.types import DType
from irc.passes.pipeline import run_pipeline
from irc.passes.quantize import quant_report
from irc.targets.cpu import CpuTarget
from irc.targets.cpu.llvm_env import cpu_spec
from irc.targets.cpu.lowering.int8_gemm import choose_isa, fits_pmaddubsw, layer_isa

AVX2 = "+avx2" in cpu_spec("host").features
needs_avx2 = pytest.mark.skipif(not AVX2, reason="this CPU has no AVX2")
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _pmaddubsw(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """What vpmaddubsw computes for u8 rows u and s8 rows w (same shape, even length): each
    pair's sum of products saturated to int16."""
    p = u.astype(np.int64) * w.astype(np.int64)
    return np.clip(p[..., 0::2] + p[..., 1::2], -(2**15), 2**15 - 1)


def _exact(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    p = u.astype(np.int64) * w.astype(np.int64)
    return p[..., 0::2] + p[..., 1::2]


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 9), st.integers(-128, 127), st.integers(0, 2**31 - 1))
def test_fits_is_exactly_when_no_pair_saturates(rows, pairs, peak, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-70, 71, (rows, 2 * pairs)).astype(np.int8)
    w[rng.integers(rows), rng.integers(2 * pairs)] = peak
    # the data that drives each pair furthest up and furthest down, and random data
    extremes = [np.where(w > 0, 255, 0), np.where(w < 0, 255, 0), rng.integers(0, 256, w.shape)]
    exact = all(np.array_equal(_pmaddubsw(u, w), _exact(u, w)) for u in extremes)
    assert fits_pmaddubsw(w) == exact
    if exact:  # then no data at all saturates
        for _ in range(20):
            u = rng.integers(0, 256, w.shape)
            assert np.array_equal(_pmaddubsw(u, w), _exact(u, w))


def test_fits_boundaries():
    assert fits_pmaddubsw(np.full((3, 7), 64, np.int8)) and fits_pmaddubsw(np.full((3, 7), -64, np.int8))
    assert fits_pmaddubsw(np.array([[127, 1, -128, 0]], np.int8))  # 255 * 128 = 32640: still exact
    assert not fits_pmaddubsw(np.array([[127, 2]], np.int8))       # 255 * 129 = 32895 would saturate
    assert not fits_pmaddubsw(np.array([[0, 0, -128, -1]], np.int8))
    assert fits_pmaddubsw(np.array([[65]], np.int8))                # an odd K pairs with padding zero
    assert fits_pmaddubsw(np.zeros((0, 4), np.int8))
    assert layer_isa("pmaddubsw256", np.array([[127, 2]], np.int8)) == "pmaddwd256"
    assert layer_isa("pmaddubsw256", np.array([[63, -64]], np.int8)) == "pmaddubsw256"
    assert layer_isa("pmaddwd256", np.array([[63, -64]], np.int8)) == "pmaddwd256"


def test_isa_choice_on_avx2_without_vnni():
    f = cpu_spec("host").features
    if AVX2 and "+avx512bw" not in f:
        assert choose_isa() == "pmaddubsw256"
    if "+avx512vnni" in f and "+avx512bw" in f:
        assert choose_isa() == "vnni512"  # VNNI stays first where the CPU has it
    assert choose_isa("znver3", "pmaddubsw256") == "pmaddubsw256"
    with pytest.raises(InputError, match="int8_isa=pmaddubsw256 needs avx2"):
        choose_isa("generic", "pmaddubsw256")


def _scales(rng, n: int, per_channel: bool) -> np.ndarray:
    """Rescale factors from 1e-4 to 4: shifts above and below 32 (the two epilogue forms)."""
    return 10 ** rng.uniform(-4, 0.6, n if per_channel else 1) * np.ones(n)


def _qconv(rng, xdt, n, c, hw, cout, k, stride, pad, group, per_channel, wlim, relu):
    b = GraphBuilder("qconv")
    x = b.input("x", (n, c, *hw), xdt)
    m0, sh = qa.quantize_multipliers(_scales(rng, cout, per_channel))
    w = rng.integers(-wlim, wlim + 1, (cout, c // group, k, k)).astype(np.int8)
    w.reshape(cout, -1)[0, :2] = wlim  # the largest pair sum the range allows
    y = b.op("qconv", x, b.param("w", w), b.param("b", rng.integers(-20000, 20000, cout).astype(np.int32)),
             b.param("m", m0), b.param("s", sh), strides=(stride, stride), pads=(pad, pad, pad + 1 if pad else 0, pad),
             group=group, x_zero_point=-7 if xdt is DType.i8 else int(rng.integers(0, 256)), dilations=(1, 1),
             y_zero_point=9 if relu else -2, y_dtype=DType.u8 if relu else DType.i8,
             y_min=9 if relu else -128, y_max=255 if relu else 120)
    return b.build(y)


def _data(rng, shape, dt: DType, extreme: bool) -> np.ndarray:
    lo, hi = qa.qrange(dt)
    if extreme:  # every activation at the top of the unsigned range: the largest pair sums
        return np.full(shape, hi, dt.numpy)
    return rng.integers(lo, hi + 1, shape).astype(dt.numpy)


def _lower_and_run(g, x, isa: str, threads: int, want_isa: str):
    low = run_pipeline(g, ["int8_gemm"], options={"int8_isa": isa})
    assert {n.attrs["isa"] for n in low.nodes if "isa" in n.attrs} == {want_isa}
    return CpuTarget().build(low, {"threads": threads, "cpu": "host"}).run([x])[0]


@needs_avx2
@pytest.mark.slow
@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from([DType.u8, DType.i8]), st.integers(1, 40), st.integers(1, 3),
       st.integers(1, 2), st.sampled_from([(1, 1), (3, 1), (3, 2), (5, 1)]), st.booleans(), st.booleans(),
       st.sampled_from([64, 63, 20]))
def test_qconv_pmaddubsw_equals_pmaddwd_and_interpreter(seed, xdt, c, n, group, k_stride, per_channel, extreme, wlim):
    rng = np.random.default_rng(seed)
    k, stride = k_stride
    c = c * group
    cout = int(rng.integers(1, 11)) * group
    hw = (int(rng.integers(k, k + 9)), int(rng.integers(k, k + 12)))
    g = _qconv(rng, xdt, n, c, hw, cout, k, stride, k // 2, group, per_channel, wlim, relu=xdt is DType.u8)
    x = _data(rng, g.inputs[0].shape, xdt, extreme)
    want = interpret(g, [x])[0]
    for threads in (1, 2):
        fast = _lower_and_run(g, x, "pmaddubsw256", threads, "pmaddubsw256")
        wide = _lower_and_run(g, x, "pmaddwd256", threads, "pmaddwd256")
        assert fast.dtype == want.dtype and np.array_equal(fast, want) and np.array_equal(wide, want)


@needs_avx2
@pytest.mark.slow
def test_qconv_cases_are_bit_exact():
    """Fixed ragged cases (K = 27, 75, 1x1 with 20 channels; depthwise; several column tiles),
    the fast tier of the property test above."""
    rng = np.random.default_rng(3)
    for case in [(DType.u8, 1, 3, (9, 9), 6, 3, 1, 1, 1, True, 64, True),
                 (DType.i8, 2, 3, (11, 7), 13, 5, 2, 2, 1, False, 63, False),
                 (DType.u8, 1, 20, (8, 9), 17, 1, 1, 0, 1, True, 64, False),
                 (DType.i8, 1, 8, (6, 6), 8, 3, 1, 1, 8, False, 64, True),
                 (DType.u8, 1, 12, (17, 17), 18, 3, 1, 1, 2, True, 40, False)]:
        *shape, wlim, extreme = case
        g = _qconv(rng, *shape, wlim, relu=case[0] is DType.u8)
        x = _data(rng, g.inputs[0].shape, case[0], extreme)
        want = interpret(g, [x])[0]
        assert np.array_equal(_lower_and_run(g, x, "auto" if choose_isa() == "pmaddubsw256" else "pmaddubsw256",
                                             2, "pmaddubsw256"), want), case


@needs_avx2
@pytest.mark.slow
@SETTINGS
@given(st.integers(0, 2**31 - 1), st.sampled_from([DType.u8, DType.i8]), st.integers(1, 19), st.integers(1, 70),
       st.integers(1, 40), st.booleans(), st.booleans())
def test_qgemm_pmaddubsw_is_bit_exact(seed, xdt, m, k, n, per_channel, extreme):
    rng = np.random.default_rng(seed)
    b = GraphBuilder("qgemm")
    a = b.input("a", (m, k), xdt)
    m0, sh = qa.quantize_multipliers(_scales(rng, n, per_channel))
    w = rng.integers(-64, 65, (k, n)).astype(np.int8)
    y = b.op("qgemm", a, b.param("w", w), b.param("b", rng.integers(-500, 500, n).astype(np.int32)), b.param("m", m0),
             b.param("s", sh), a_zero_point=3 if xdt is DType.i8 else int(rng.integers(0, 256)), y_zero_point=0,
             y_dtype=DType.u8, y_min=0, y_max=255)
    g = b.build(y)
    x = _data(rng, (m, k), xdt, extreme)
    want = interpret(g, [x])[0]
    assert np.array_equal(_lower_and_run(g, x, "pmaddubsw256", 1, "pmaddubsw256"), want)
    assert np.array_equal(_lower_and_run(g, x, "pmaddwd256", 2, "pmaddwd256"), want)


@needs_avx2
@pytest.mark.parametrize("layer", ["qgemm", "qconv"])
def test_requantize_extremes(layer):
    """Accumulators near the int32 limits with multipliers near 2**31 and shifts 1..62, on both
    sides of 32, per column (dense) and per row (conv): the epilogue forms agree with the
    reference at their edges."""
    rng = np.random.default_rng(8)
    shifts = np.array([1, 2, 30, 31, 32, 33, 40, 61, 62, 45, 31, 32], np.int32)
    m0 = np.array([2**31 - 1, 2**30, 2**31 - 1, 2**30 + 12345, 2**31 - 1, 2**31 - 1, 2**30, 2**31 - 1, 2**31 - 1,
                   1, 0, 2**31 - 2], np.int32)
    n = len(shifts)
    bias = np.where(np.arange(n) % 2, 2**31 - 2**20, -(2**31) + 2**20).astype(np.int32)
    w = rng.integers(-64, 65, (n, 6)).astype(np.int8)
    b = GraphBuilder(layer)
    if layer == "qgemm":
        x = b.input("a", (5, 6), DType.u8)
        y = b.op("qgemm", x, b.param("w", np.ascontiguousarray(w.T)), b.param("b", bias), b.param("m", m0),
                 b.param("s", shifts), a_zero_point=0, y_zero_point=-3, y_dtype=DType.i8, y_min=-128, y_max=127)
    else:
        x = b.input("x", (1, 6, 3, 5), DType.u8)
        y = b.op("qconv", x, b.param("w", w.reshape(n, 6, 1, 1)), b.param("b", bias), b.param("m", m0),
                 b.param("s", shifts), strides=(1, 1), pads=(0, 0, 0, 0), group=1, x_zero_point=0, dilations=(1, 1),
                 y_zero_point=7, y_dtype=DType.u8, y_min=0, y_max=255)
    g = b.build(y)
    xs = _data(rng, g.inputs[0].shape, DType.u8, False)
    xs.reshape(-1)[:3] = 255
    want = interpret(g, [xs])[0]
    assert len(np.unique(want)) > 4  # not everything saturated
    for isa in ("pmaddubsw256", "pmaddwd256"):
        assert np.array_equal(_lower_and_run(g, xs, isa, 1, isa), want), isa


def test_saturating_weights_never_take_the_fast_kernel():
    rng = np.random.default_rng(5)
    g = _qconv(rng, DType.u8, 1, 4, (6, 6), 8, 3, 1, 1, 1, True, 64, relu=True)
    w = g.params[g.nodes[0].inputs[1]].copy()
    w.reshape(8, -1)[5, 10:12] = [100, 60]  # one pair of one channel: 255 * 160 > 32767
    bad = g.replace(params={**g.params, g.nodes[0].inputs[1]: w})
    # a named CPU: lowered for it whatever this host is; auto where this host picks pmaddubsw256
    for isa, cpu in [("pmaddubsw256", "znver3")] + [("auto", "host")] * (choose_isa() == "pmaddubsw256"):
        low = run_pipeline(bad, ["int8_gemm"], options={"int8_isa": isa, "cpu": cpu})
        assert [n.attrs["isa"] for n in low.nodes] == ["pmaddwd256"]
        low = run_pipeline(g, ["int8_gemm"], options={"int8_isa": isa, "cpu": cpu})
        assert [n.attrs["isa"] for n in low.nodes] == ["pmaddubsw256"]
    if AVX2:
        x = _data(rng, bad.inputs[0].shape, DType.u8, True)
        assert np.array_equal(_lower_and_run(bad, x, "pmaddubsw256", 1, "pmaddwd256"), interpret(bad, [x])[0])


def test_quantize_weights_bits():
    w = np.random.default_rng(0).standard_normal((6, 3, 3, 3)).astype(np.float32)
    q7, s7 = qa.quantize_weights(w, bits=7)
    q8, s8 = qa.quantize_weights(w)
    assert np.abs(q7).max() == 63 and np.abs(q8).max() == 127
    np.testing.assert_allclose(s7, np.abs(w).reshape(6, -1).max(1) / 63, rtol=1e-6)
    np.testing.assert_allclose(q7 * s7.reshape(-1, 1, 1, 1), w, atol=float(s7.max()) / 2 + 1e-7)
    for bad in (1, 9, 7.0, True):
        with pytest.raises(irc.errors.ShapeError, match="weight bits"):
            qa.quantize_weights(w, bits=bad)


def _lenet_calib(batch):
    model = irc.zoo.lenet5(batch)
    rng = np.random.default_rng(4)
    return model, {"input": rng.standard_normal((8, 1, 28, 28)).astype(np.float32)}, \
        rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)


def test_weight_bits_option_reaches_the_weights():
    model, calib, _ = _lenet_calib(2)
    m = irc.compile(model, "interp", quantize="int8", calib=calib, weight_bits=7)
    layers = [n for n in m.graph.nodes if n.op in ("qconv", "qgemm")]
    assert len(layers) == 5
    for n in layers:
        w = m.graph.params[n.inputs[1]]
        assert w.min() >= -63 and w.max() <= 63 and fits_pmaddubsw(w.reshape(w.shape[0], -1))
    assert quant_report(m.graph)["weight_bits"] == 7
    assert parse_options("cpu", ["weight_bits=7"]) == {"weight_bits": 7}  # the command line's --opt
    for bad in (9, 0, "7"):
        with pytest.raises(InputError, match="weight_bits must be an integer from 2 to 8"):
            irc.compile(model, "interp", quantize="int8", calib=calib, weight_bits=bad)


@needs_avx2
def test_seven_bit_model_on_cpu_equals_interpreter():
    model, calib, x = _lenet_calib(3)
    opts = dict(quantize="int8", calib=calib, weight_bits=7)
    cpu = irc.compile(model, "cpu", int8_isa="pmaddubsw256", **opts)
    assert {n.attrs["isa"] for n in cpu.graph.nodes if "isa" in n.attrs} == {"pmaddubsw256"}
    assert np.array_equal(cpu(x), irc.compile(model, "interp", **opts)(x))


@pytest.mark.slow
def test_seven_bit_model_compiles_for_other_cpus(tmp_path):
    """Both kernels compiled for a CPU that has them (not run here, the host may lack them)."""
    model, calib, _ = _lenet_calib(2)
    for cpu, isa in (("icelake-server", "vnni512"), ("znver3", "pmaddubsw256")):
        m = irc.compile(model, "cpu", quantize="int8", calib=calib, weight_bits=7, cpu=cpu, int8_isa=isa,
                        cache=False)
        assert {n.attrs["isa"] for n in m.graph.nodes if "isa" in n.attrs} == {isa}
        m.executable.save(tmp_path / f"{cpu}.so")
        assert (tmp_path / f"{cpu}.so").stat().st_size > 0
