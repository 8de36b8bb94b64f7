"""The emulator of the accelerator equals the int8 interpreter (and the int8 CPU target where it
runs the integer ops) bit for bit: on the zoo nets through the shared quantize pass, on hand-made
quantized graphs, and through irc.compile(target="fpga", flow="dneuro")."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.errors import InputError, TargetError
from irc.ir.interp import interpret
from irc.ir.ops.quant import wrap32
from irc.targets.dneuro.emulator import Emulator
from irc.targets.dneuro.flow import codes_value
from irc.targets.dneuro.mapping import map_graph
from tests.support.marks import grid

from .qgraphs import lenet, small_convnet
from .support import ZOO, calib_data, float_graph, quantized_graph


def _codes(g, x):
    """The int8 codes of the graph's last integer value, as the interpreter computes them."""
    v = codes_value(g)
    found = {}
    interpret(g, [x], observe=lambda n, outs: found.update({o: a for o, a in zip(n.outputs, outs) if o is v}))
    return found[v].astype(np.int64)


def _emulated(lg, x):
    em = Emulator(lg)
    body = lg if lg.output.kind != "argmax" else type(lg)(lg.name, lg.layers[:-1], lg.host)
    return Emulator(body).run_codes(em.quantize_input(x))[body.output.name]


#: the fast subset runs the small nets (the zoo's larger ones are slow)
SMALL = {f"{s}-{n}" for s in ("asym", "sym") for n in ("lenet5", "mixed", "inception")}


@pytest.mark.parametrize("scheme, name", grid(["asym", "sym"], [*ZOO, "mixed", "inception"], fast=SMALL))
def test_emulator_equals_int8_interpreter_on_quantized_nets(name, scheme):
    q = quantized_graph(name, scheme)
    lg = map_graph(q)
    for seed in (1, 2):
        x = calib_data(float_graph(name), 1, seed)[q.inputs[0].name] * 1.5
        want = _codes(q, x)
        got = _emulated(lg, x)
        np.testing.assert_array_equal(got.reshape(want.shape), want)
        # And the model's own outputs: dequantized tensor, or the top-1 class of the softmax.
        ref = interpret(q, [x])[0]
        out = Emulator(lg).run(x)
        if lg.output.kind == "argmax":
            np.testing.assert_array_equal(out, np.argmax(ref, axis=1))
        else:
            np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("make", [lenet, small_convnet])
def test_emulator_on_hand_made_quantized_graphs(make):
    g = make(batch=3)
    lg = map_graph(g)
    x = np.random.default_rng(5).standard_normal(g.inputs[0].shape).astype(np.float32) * 3
    np.testing.assert_array_equal(_emulated(lg, x).reshape(3, -1), _codes(g, x).reshape(3, -1))


def test_accumulator_wraps_like_32_bit_hardware():
    """Weights chosen so that the sum of products passes 2**31: both wrap it the same way."""
    from .qgraphs import QBuilder

    q = QBuilder("wrap", 3)
    x = q.input((1, 64, 8, 8))
    y = q.conv(x, 2, 7, pad=3)
    conv = q.b.nodes[-1]
    w = conv.inputs[1]
    q.b.params[w] = np.full(w.shape, 127, np.int8)
    q.b.params[conv.inputs[2]] = np.full(2, 2**31 - 100, np.int32)
    g = q.output(y)
    xin = np.full((1, 64, 8, 8), 6.0, np.float32)
    lg = map_graph(g)
    got, want = _emulated(lg, xin), _codes(g, xin)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert wrap32(np.int64(2**31)) == -(2**31)


@pytest.mark.slow
def test_cpu_target_agrees_on_the_int8_graph():
    q = quantized_graph("small_resnet")
    cpu = irc.compile(q, target="cpu")
    x = calib_data(float_graph("small_resnet"), 1, 3)["input"]
    np.testing.assert_array_equal(cpu(x), Emulator(map_graph(q)).run(x))


def test_compile_flow_runs_the_emulator_and_its_graph_agrees():
    g = float_graph("mixed")
    calib = calib_data(g)
    m = irc.compile(g, target="fpga", flow="dneuro", calib=calib, device="arria10-gx270")
    exe = m.executable
    assert exe.graph.outputs[0].dtype.value == "i64"  # the softmax became the top-1 class
    x = calib["x"][3:4]
    np.testing.assert_array_equal(m(x), interpret(exe.graph, [x])[0])
    assert "bit for bit" in exe.summary() and "tuned for arria10-gx270" in exe.summary()


def test_emulator_input_checks():
    lg = map_graph(quantized_graph("lenet5"))
    em = Emulator(lg)
    with pytest.raises(InputError, match=r"\[N, 1, 28, 28\]"):
        em.run_codes(np.zeros((1, 1, 27, 28), np.int64))
    with pytest.raises(InputError, match=r"\[0, 255\]"):
        em.run_codes(np.full((1, 1, 28, 28), 300))
    with pytest.raises(TargetError, match="quantize it first"):
        Emulator(map_graph(float_graph("lenet5")))
