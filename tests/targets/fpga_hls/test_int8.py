"""int8 designs: graphs rewritten by the quantize pass, their integer layers (qgemm, qconv, qadd,
qglobal_average_pool, max pooling on integers, quantize/dequantize at the edges) as HLS kernels.
Every integer tensor must be bit-exact with the interpreter, which defines the arithmetic
(irc/ir/quant_arith.py); C simulation checks each kernel, emulation the whole network."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irc
from irc.ir import GraphBuilder
from irc.targets.fpga_hls.vectors import all_values

from .support import cnn_graph, mlp_graph, needs_gxx

pytestmark = needs_gxx


def _calib(g, seed=0, batches=2):
    rng = np.random.default_rng(seed)
    return [{v.name: rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs} for _ in range(batches)]


def compile_int8(g, **kw):
    return irc.compile(g, target="fpga", precision="int8", calib=_calib(g), **kw)


def _check_bit_exact(m, xs):
    """Every integer tensor in the emulator's device memory equals the interpreter's."""
    exe = m.executable
    got = m.run(xs)
    values = all_values(exe.graph, xs)
    mem = exe.emulator().memory
    ints = [v for v in mem.buffers if not v.dtype.is_float and v not in exe.graph.params]
    assert ints, "the design has no integer tensors"
    for v in ints:
        np.testing.assert_array_equal(mem.buffers[v], values[v], err_msg=v.name)
    return got, values


def residual_graph(c=4, hw=5, seed=0):
    rng = np.random.default_rng(seed)
    b = GraphBuilder("res")
    x = b.input("x", (2, c, hw, hw))

    def conv(v, name):
        w = b.param(f"w_{name}", (rng.standard_normal((c, c, 3, 3)) * 0.3).astype(np.float32))
        return b.op("conv", v, w, b.param(f"b_{name}", rng.standard_normal(c).astype(np.float32) * 0.1),
                    pads=(1, 1, 1, 1))

    y = b.op("relu", conv(x, "a"))
    y = b.op("relu", b.op("add", conv(y, "b"), x))
    y = b.op("max_pool", y, kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 1, 1))
    y = b.op("global_average_pool", y)
    return b.build(b.op("global_max_pool", y))


@pytest.mark.parametrize("make", [pytest.param(mlp_graph, id="mlp"),
                                  pytest.param(cnn_graph, id="cnn", marks=pytest.mark.slow),
                                  pytest.param(residual_graph, id="residual", marks=pytest.mark.slow)])
def test_int8_csim_and_emulation_bit_exact(make):
    g = make()
    m = compile_int8(g, emulate=True, csim=True)
    exe = m.executable
    ops = {k.node.op for k in exe.kernels}
    assert {"quantize_linear", "dequantize_linear"} <= ops and ops & {"qgemm", "qconv"}
    if make is residual_graph:
        assert {"qadd", "qglobal_average_pool", "max_pool"} <= ops
    assert all(r.passed for r in exe.csim_results)
    xs = [x for x in _calib(g, seed=5, batches=1)[0].values()]
    got, values = _check_bit_exact(m, xs)
    np.testing.assert_allclose(got[0] if len(got) == 1 else got, values[exe.graph.outputs[0]], rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@given(m=st.integers(1, 3), k=st.integers(1, 24), n=st.integers(1, 12), relu=st.booleans(),
       scheme=st.sampled_from(["asym", "sym"]), par=st.sampled_from([1, 2, "auto"]))
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_qgemm_shapes(m, k, n, relu, scheme, par):
    rng = np.random.default_rng(k * 100 + n)
    b = GraphBuilder("q")
    x = b.input("x", (m, k))
    y = b.op("gemm", x, b.param("w", rng.standard_normal((k, n)).astype(np.float32)),
             b.param("b", rng.standard_normal(n).astype(np.float32)))
    g = b.build(b.op("relu", y) if relu else y)
    mod = irc.compile(g, target="fpga", precision="int8", calib=_calib(g), activation_scheme=scheme,
                      parallelism=par, csim=True, emulate=True)
    _check_bit_exact(mod, [_calib(g, seed=9, batches=1)[0]["x"]])


def test_int8_needs_calibration_data():
    with pytest.raises(irc.IRCError, match="calibration data"):
        irc.compile(mlp_graph(), target="fpga", precision="int8")


def test_int8_resource_model_packs_two_macs_per_dsp():
    m = compile_int8(mlp_graph(sizes=(16, 32, 8)), parallelism=1)
    est = {e.op: e for e in m.executable.estimates}
    assert est["qgemm"]["DSP"] == 5  # half a DSP for one MAC lane, rounded up, + the requantizer's 4
