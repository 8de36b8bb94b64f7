"""Whole-network emulation: every kernel called from its compiled C++ on device buffers, against
the interpreter. float32 within rtol 1e-4; ap_fixed within the error bound derived from the
format (accuracy.py), against the network with weights and inputs rounded to the format."""

from __future__ import annotations

import numpy as np
import pytest

import irc
import irc.zoo
from irc.errors import InputError, TargetError, UnsupportedOpError
from irc.ir import GraphBuilder, interpret
from irc.targets.fpga_hls.accuracy import output_bounds
from irc.targets.fpga_hls.precision import parse_precision
from irc.targets.fpga_hls.vectors import all_values, quantized_graph

from .support import FIXED, cnn_graph, mlp_graph, needs_ap, needs_gxx


def _inputs(g, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]


@needs_gxx
@pytest.mark.parametrize("make", [mlp_graph, cnn_graph], ids=["mlp", "cnn"])
def test_float32_matches_interpreter(make):
    g = make()
    m = irc.compile(g, target="fpga", emulate=True)
    for seed in (1, 2):
        xs = _inputs(g, seed)
        got = m(*xs)
        np.testing.assert_allclose(got, interpret(g, xs)[0], rtol=1e-4, atol=1e-6)
    # the device buffers persist between runs, and reads return host copies
    assert m(*xs) is not m(*xs)


@needs_gxx
def test_zoo_models_from_onnx():
    """The example models as ONNX through emulation."""
    for name, kw in (("mlp", {"sizes": (20, 32, 16, 10)}), ("lenet5", {})):
        model = irc.zoo.build(name, batch=2, **kw)
        ref = irc.compile(model, target="interp")
        m = irc.compile(model, target="fpga", emulate=True)
        xs = _inputs(ref.graph)
        np.testing.assert_allclose(m(*xs), ref(*xs), rtol=1e-4, atol=1e-6)


@needs_gxx
@needs_ap
@pytest.mark.parametrize("make", [pytest.param(mlp_graph, id="mlp"),
                                  pytest.param(cnn_graph, id="cnn", marks=pytest.mark.slow)])
def test_fixed_point_within_the_format_bound(make):
    g = make()
    prec = parse_precision(FIXED)
    m = irc.compile(g, target="fpga", precision=FIXED, emulate=True)
    exe = m.executable
    xs = [prec.round_trip(x) for x in _inputs(g)]
    qg = quantized_graph(exe.graph, prec)
    values = all_values(qg, xs)
    bound = output_bounds(exe, values)[exe.graph.outputs[0]]
    want = values[qg.outputs[0]]
    got = m(*xs)
    err = np.abs(got.astype(np.float64) - want).max()
    assert np.isfinite(bound) and 2.0 ** -10 <= bound < 0.1
    assert err <= bound, (err, bound)
    # and the float model is near too: quantization of the weights is the larger part
    assert np.abs(got - interpret(g, xs)[0]).max() < 0.05


def test_run_needs_emulation_or_a_board():
    m = irc.compile(mlp_graph(), target="fpga")
    with pytest.raises(TargetError, match="emulate=True"):
        m(*_inputs(mlp_graph()))


def test_option_errors():
    g = mlp_graph()
    with pytest.raises(InputError, match="unknown fpga flow 'vivado'"):
        irc.compile(g, target="fpga", flow="vivado")
    with pytest.raises(InputError, match="unknown precision 'float16'"):
        irc.compile(g, target="fpga", precision="float16")
    with pytest.raises(InputError, match="ap_fixed<W,I> needs"):
        irc.compile(g, target="fpga", precision="ap_fixed<40,6>")
    with pytest.raises(InputError, match="unknown option"):
        irc.compile(g, target="fpga", speed=3)


def test_unsupported_op_is_named():
    b = GraphBuilder("t")
    x = b.input("x", (2, 3))
    g = b.build(b.op("relu", b.op("transpose", x, perm=(1, 0), name="flip")))
    with pytest.raises(UnsupportedOpError) as err:
        irc.compile(g, target="fpga")
    assert err.value.node == "flip" and err.value.op == "transpose"
    assert "no kernel for this op" in str(err.value)


@needs_gxx
def test_wrong_input_shape_is_refused_before_native_code():
    m = irc.compile(mlp_graph(), target="fpga", emulate=True)
    with pytest.raises(InputError, match="input 'x' has shape"):
        m(np.zeros((3, 12), np.float32))
