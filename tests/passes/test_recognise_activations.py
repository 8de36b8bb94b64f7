"""recognise_activations: the exported forms of GELU (erf, tanh) and SiLU become one op each,
with the same numbers; near misses (a wrong constant, x used differently, an intermediate read
elsewhere) stay as written."""

import math

import numpy as np
import pytest

from irc.ir import GraphBuilder, interpret
from irc.passes.recognise_activations import recognise_activations

RNG = np.random.default_rng(0)
SHAPE = (2, 3, 16)


def _c(b, v):
    return b.const(np.array(v, np.float32))


# Each form: fn(builder, x, tweak) -> output; ``tweak`` scales the named constant (near misses).
def erf_zoo(b, x, k):  # irc.zoo.transformer: (x * (1 + erf(x / sqrt2))) * 0.5
    inner = b.op("erf", b.op("div", x, _c(b, math.sqrt(2) * k.get("sqrt2", 1))))
    return b.op("mul", b.op("mul", x, b.op("add", inner, _c(b, 1.0))), _c(b, 0.5 * k.get("half", 1)))


def erf_onnx(b, x, k):  # the ONNX Gelu function body: (x * 0.5) * (erf(x * 1/sqrt2) + 1)
    inner = b.op("erf", b.op("mul", x, _c(b, 1 / math.sqrt(2) * k.get("sqrt2", 1))))
    return b.op("mul", b.op("mul", x, _c(b, 0.5 * k.get("half", 1))), b.op("add", inner, _c(b, 1.0)))


def erf_torch(b, x, k):  # torch: 0.5 * (x * (1 + erf(sqrt(1/2) * x))), constants on the left
    inner = b.op("erf", b.op("mul", _c(b, 1 / math.sqrt(2) * k.get("sqrt2", 1)), x))
    return b.op("mul", _c(b, 0.5 * k.get("half", 1)), b.op("mul", x, b.op("add", _c(b, 1.0), inner)))


def tanh_pow(b, x, k):  # HF gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 pow(x, 3))))
    cube = b.op("mul", _c(b, 0.044715 * k.get("cubic", 1)), b.op("pow", x, _c(b, 3.0)))
    t = b.op("tanh", b.op("mul", _c(b, math.sqrt(2 / math.pi)), b.op("add", x, cube)))
    return b.op("mul", b.op("mul", _c(b, 0.5), x), b.op("add", _c(b, 1.0), t))


def tanh_muls(b, x, k):  # the ONNX Gelu(approximate="tanh") body: x * x * x, constants on the right
    cube = b.op("mul", b.op("mul", b.op("mul", x, x), x), _c(b, 0.044715 * k.get("cubic", 1)))
    t = b.op("tanh", b.op("mul", b.op("add", cube, x), _c(b, math.sqrt(2 / math.pi))))
    return b.op("mul", b.op("mul", x, _c(b, 0.5)), b.op("add", t, _c(b, 1.0)))


def silu_xs(b, x, k):
    return b.op("mul", x, b.op("sigmoid", x))


def silu_sx(b, x, k):
    return b.op("mul", b.op("sigmoid", x), x)


FORMS = [(erf_zoo, "gelu"), (erf_onnx, "gelu"), (erf_torch, "gelu"), (tanh_pow, "gelu_tanh"),
         (tanh_muls, "gelu_tanh"), (silu_xs, "silu"), (silu_sx, "silu")]


def _graph(form, **tweak):
    b = GraphBuilder("g")
    x = b.input("x", SHAPE)
    return b.build(form(b, x, tweak))


def _x():
    return (RNG.standard_normal(SHAPE) * 3).astype(np.float32)


@pytest.mark.parametrize("form, op", FORMS, ids=[f.__name__ for f, _ in FORMS])
def test_exported_form_becomes_one_op(form, op):
    g = _graph(form)
    out = recognise_activations(g)
    assert [n.op for n in out.nodes] == [op]
    assert out.nodes[0].inputs[0] is g.inputs[0]
    x = _x()
    np.testing.assert_allclose(interpret(out, [x])[0], interpret(g, [x])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form, constant", [(erf_zoo, "half"), (erf_zoo, "sqrt2"), (erf_onnx, "sqrt2"),
                                            (erf_torch, "half"), (tanh_pow, "cubic"), (tanh_muls, "cubic")])
def test_a_constant_off_by_more_than_1e6_is_not_matched(form, constant):
    assert recognise_activations(_graph(form)).nodes[0].op != "mul"  # the exact form matches
    g = _graph(form, **{constant: 1 + 1e-5})
    assert recognise_activations(g).nodes == g.nodes


def test_a_constant_within_float_rounding_is_matched():
    assert [n.op for n in recognise_activations(_graph(erf_zoo, sqrt2=1 + 1e-7)).nodes] == ["gelu"]


def test_x_used_differently_is_not_matched():
    b = GraphBuilder("g")
    x, y = b.input("x", SHAPE), b.input("y", SHAPE)
    g = b.build(b.op("mul", y, b.op("sigmoid", x)))  # y * sigmoid(x)
    assert recognise_activations(g).nodes == g.nodes
    b = GraphBuilder("g")
    x, y = b.input("x", SHAPE), b.input("y", SHAPE)
    inner = b.op("erf", b.op("div", y, _c(b, math.sqrt(2))))  # erf of another value
    g = b.build(b.op("mul", b.op("mul", x, b.op("add", inner, _c(b, 1.0))), _c(b, 0.5)))
    assert recognise_activations(g).nodes == g.nodes
    b = GraphBuilder("g")
    x = b.input("x", SHAPE)
    cube = b.op("mul", b.op("mul", x, x), _c(b, 0.044715))  # x^2, not x^3
    t = b.op("tanh", b.op("mul", b.op("add", x, cube), _c(b, math.sqrt(2 / math.pi))))
    g = b.build(b.op("mul", b.op("mul", x, _c(b, 0.5)), b.op("add", t, _c(b, 1.0))))
    assert recognise_activations(g).nodes == g.nodes


def test_an_intermediate_read_elsewhere_keeps_the_form():
    b = GraphBuilder("g")
    x = b.input("x", SHAPE)
    e = b.op("erf", b.op("div", x, _c(b, math.sqrt(2))))
    y = b.op("mul", b.op("mul", x, b.op("add", e, _c(b, 1.0))), _c(b, 0.5))
    g = b.build(y, e)
    assert recognise_activations(g).nodes == g.nodes


def test_a_constant_that_broadcasts_x_is_not_matched():
    b = GraphBuilder("g")
    x = b.input("x", (16,))
    inner = b.op("erf", b.op("div", x, b.const(np.full((2, 1), math.sqrt(2), np.float32))))
    g = b.build(b.op("mul", b.op("mul", x, b.op("add", inner, _c(b, 1.0))), _c(b, 0.5)))
    assert recognise_activations(g).nodes == g.nodes


def test_a_training_graph_keeps_the_form_its_gradient_reads():
    import irc.frontend.trace as T
    from irc.passes.autodiff import autodiff

    x = _x()
    forward = T.trace(lambda x: (x * (T.apply("erf", x / math.sqrt(2)) + 1.0) * 0.5).sum(), x)
    assert "gelu" in [n.op for n in recognise_activations(forward).nodes]  # alone, it is a GELU
    out = recognise_activations(autodiff(forward, wrt=["x"]))
    assert "gelu" not in [n.op for n in out.nodes] and "erf" in [n.op for n in out.nodes]
