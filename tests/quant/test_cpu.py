"""The int8 CPU kernels equal the interpreter bit for bit: the GEMM micro-kernels (VNNI and the
pmaddwd fallbacks at every width) on ragged conv and dense shapes, u8 and i8 activations, one
and two threads; the element-wise int8 kernels; whole quantized models through irc.compile."""

from __future__ import annotations

import numpy as np
import pytest

import irc
import irc.zoo
from irc.ir import quant_arith as qa
from irc.ir.builder import GraphBuilder
from irc.ir.interp import interpret
from irc.ir.types import DType
from irc.passes.pipeline import run_pipeline
from irc.targets.cpu import CpuTarget
from irc.targets.cpu.lowering.int8_gemm import TILES, choose_isa

RNG = np.random.default_rng(11)


def _host_has(isa: str) -> bool:
    from irc.targets.cpu.llvm_env import cpu_spec

    f = cpu_spec("host").features
    need = {"vnni512": ("+avx512vnni", "+avx512bw"), "pmaddwd512": ("+avx512bw",), "pmaddwd256": ("+avx2",),
            "pmaddubsw256": ("+avx2",),
            "pmaddwd128": ()}[isa]
    return all(n in f for n in need)


ISAS = [pytest.param(isa, marks=pytest.mark.skipif(not _host_has(isa), reason=f"this CPU cannot run {isa}"))
        for isa in TILES]


def _data(shape, dt: DType) -> np.ndarray:
    lo, hi = qa.qrange(dt)
    return RNG.integers(lo, hi + 1, shape).astype(dt.numpy)


def _run_cpu(g, inputs, isa: str, threads: int):
    low = run_pipeline(g, ["int8_gemm"], options={"int8_isa": isa})
    assert not {"qconv", "qgemm"} & set(low.op_histogram())
    return CpuTarget().build(low, {"threads": threads, "cpu": "host"}).run(inputs)


def _qconv(xdt, n, c, hw, cout, k, stride, pad, group, relu, dilation=1):
    b = GraphBuilder("qconv")
    x = b.input("x", (n, c, *hw), xdt)
    m0, sh = qa.quantize_multipliers(RNG.uniform(1e-4, 2e-3, cout))
    zx = -7 if xdt is DType.i8 else 131
    y = b.op("qconv", x, b.param("w", _data((cout, c // group, k, k), DType.i8)),
             b.param("b", RNG.integers(-20000, 20000, cout).astype(np.int32)), b.param("m", m0), b.param("s", sh),
             strides=(stride, stride), pads=(pad, pad, pad + 1 if pad else 0, pad), group=group, x_zero_point=zx,
             dilations=(dilation, dilation),
             y_zero_point=9 if relu else -2, y_dtype=DType.u8 if relu else DType.i8,
             y_min=9 if relu else -128, y_max=255 if relu else 120)
    return b.build(y)


CONVS = [
    (DType.u8, 1, 3, (9, 9), 8, 3, 1, 1, 1, True),     # K = 27: a partial k-group of 4
    (DType.i8, 2, 16, (7, 5), 13, 3, 2, 1, 1, False),  # ragged rows and columns, stride 2, asymmetric pads
    (DType.u8, 1, 32, (8, 9), 20, 1, 1, 0, 1, True),   # 1x1: im2col is the image itself (ragged tail)
    (DType.i8, 1, 8, (6, 6), 8, 3, 1, 1, 8, True),     # depthwise
    (DType.u8, 1, 12, (17, 17), 70, 3, 1, 1, 2, False),  # groups, several column tiles
    (DType.i8, 1, 5, (11, 10), 7, 3, 1, 2, 1, True, 2),  # dilated "same" conv: rows copied whole
]


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
def test_qconv_gemm_is_bit_exact(isa):
    for case in CONVS:
        g = _qconv(*case)
        x = _data(g.inputs[0].shape, case[0])
        want = interpret(g, [x])[0]
        for threads in (1, 2):
            got = _run_cpu(g, [x], isa, threads)[0]
            assert got.dtype == want.dtype and np.array_equal(got, want), (isa, case, threads)


@pytest.mark.parametrize("isa", ISAS)
def test_qgemm_packed_is_bit_exact(isa):
    for xdt, m, k, n in [(DType.u8, 1, 37, 10), (DType.i8, 7, 64, 70), (DType.u8, 13, 200, 129)]:
        b = GraphBuilder("qgemm")
        a = b.input("a", (m, k), xdt)
        m0, sh = qa.quantize_multipliers(RNG.uniform(1e-4, 1e-3, n))
        bias = RNG.integers(-500, 500, n).astype(np.int32)
        y = b.op("qgemm", a, b.param("w", _data((k, n), DType.i8)), b.param("b", bias), b.param("m", m0),
                 b.param("s", sh), a_zero_point=3 if xdt is DType.i8 else 200, y_zero_point=0,
                 y_dtype=DType.u8, y_min=0, y_max=255)
        g = b.build(y)
        x = _data((m, k), xdt)
        want = interpret(g, [x])[0]
        for threads in (1, 2):
            assert np.array_equal(_run_cpu(g, [x], isa, threads)[0], want), (isa, xdt, m, k, n, threads)


def test_elementwise_int8_kernels_are_bit_exact():
    b = GraphBuilder("ew")
    x = b.input("x", (2, 3, 5, 7))
    xq = b.op("quantize_linear", x, b.param("s", np.array([0.02, 0.5, 0.013], np.float32)),
              b.param("z", np.array([0, 17, 255], np.uint8)), axis=1)
    ka, kb, m, s = qa.add_multipliers(0.02, 0.03, 0.04)
    xs = b.op("quantize_linear", x, b.param("s2", np.float32(0.03)), b.param("z2", np.int8(-3)))
    y = b.op("qadd", xq, b.op("identity", xq), a_zero_point=17, b_zero_point=17, a_mult=ka, b_mult=kb, multiplier=m,
             shift=s, y_zero_point=4, y_dtype=DType.u8, y_min=4, y_max=255)
    gm, gs = qa.quantize_multiplier(0.04 / (0.05 * 35))
    p = b.op("qglobal_average_pool", y, x_zero_point=4, multiplier=gm, shift=gs, y_zero_point=1, y_dtype=DType.i8,
             y_min=-128, y_max=127)
    d1 = b.op("dequantize_linear", p, b.param("s3", np.float32(0.05)), b.param("z3", np.int8(1)))
    d2 = b.op("dequantize_linear", xs, b.param("s4", np.float32(0.03)), b.param("z4", np.int8(-3)))
    g = b.build(d1, d2, b.op("identity", xq))
    data = (RNG.standard_normal((2, 3, 5, 7)) * 3).astype(np.float32)
    data[0, 0, 0, :4] = [0.01, 0.03, -0.01, np.nan]  # ties at scale 0.02: round half to even
    want = interpret(g, [data])
    got = CpuTarget().build(g, {"threads": 2}).run([data])
    for w, o in zip(want, got):
        assert w.dtype == o.dtype and np.array_equal(w, o, equal_nan=True)


@pytest.mark.parametrize("name, scheme", [pytest.param("small_resnet", "asym", marks=pytest.mark.slow), ("lenet5", "sym"),
                                          pytest.param("mlp", "asym", marks=pytest.mark.slow)])
def test_quantized_model_on_cpu_equals_interpreter(name, scheme):
    model = irc.zoo.build(name, batch=2)
    inp = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    calib = {inp: RNG.standard_normal([8] + shape[1:]).astype(np.float32)}
    opts = dict(quantize="int8", calib=calib, calib_method="percentile", activation_scheme=scheme)
    cpu = irc.compile(model, "cpu", **opts)
    ref = irc.compile(model, "interp", **opts)
    ops = set(cpu.graph.op_histogram())
    assert {"qconv_gemm", "qgemm_packed"} & ops and not {"conv_gemm", "gemm_packed"} & ops
    x = RNG.standard_normal(shape).astype(np.float32)
    if name == "mlp":  # its softmax runs in float: compare the integer logits
        from irc.passes.quantize import quant_report

        assert quant_report(cpu.graph)["float_layers"][0]["op"] == "softmax"
        np.testing.assert_allclose(cpu(x), ref(x), rtol=1e-6, atol=1e-7)
    else:
        assert np.array_equal(cpu(x), ref(x))


def test_isa_choice():
    assert choose_isa("generic") == "pmaddwd128"
    assert choose_isa("host", "pmaddwd256") == "pmaddwd256"
    if _host_has("vnni512"):
        assert choose_isa("host") == "vnni512"
    with pytest.raises(irc.errors.InputError, match="unknown int8 micro-kernel"):
        choose_isa("host", "avx9000")
