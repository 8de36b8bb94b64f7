"""The text form: print -> parse gives the same graph (same text, same numbers)."""

import numpy as np
import pytest

from irc.errors import ModelError, ShapeError
from irc.ir import DType, GraphBuilder, interpret, parse_graph, print_graph


def _sample_graph():
    b = GraphBuilder("sample")
    x = b.input("x", (2, 3))
    w = b.param("w.0", np.arange(6, dtype=np.float32).reshape(2, 3))
    y = b.op("add", x, w, name="sum/1")
    y = b.op("leaky_relu", y, alpha=0.1)
    z = b.op("clip", y, min=-0.5, max=6.0)
    m = b.op("less", z, w)
    c = b.op("cast", m, to=DType.f32)
    return b.build(b.op("where", m, z, c))


def test_round_trip_is_exact():
    g = _sample_graph()
    text = print_graph(g)
    g2 = parse_graph(text, {"w.0": g.param_data("w.0")})
    assert print_graph(g2) == text
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(interpret(g, [x])[0], interpret(g2, [x])[0])


def test_text_shape_and_quoting():
    text = print_graph(_sample_graph())
    assert text.startswith("graph sample(%x: f32[2,3]) params(%w.0: f32[2,3]) {")
    assert '%"sum/1": f32[2,3] = add(%x, %w.0)' in text
    assert "{alpha=0.1}" in text and "{to=f32}" in text and "min=-0.5, max=6.0" in text
    assert text.rstrip().endswith("}")


def test_float_attributes_round_trip_bit_exactly():
    b = GraphBuilder("g")
    x = b.input("x", (4,))
    g = b.build(b.op("clip", x, min=0.1 + 0.2, max=float("inf")))
    g2 = parse_graph(print_graph(g))
    assert g2.nodes[0].attrs == {"min": 0.1 + 0.2, "max": float("inf")}


def test_parse_refuses_wrong_declared_type():
    text = "graph g(%x: f32[2]) {\n  %1: f32[3] = relu(%x)\n  return %1\n}\n"
    with pytest.raises(ModelError, match="declared output types"):
        parse_graph(text)


def test_parse_refuses_use_before_definition():
    text = "graph g(%x: f32[2]) {\n  %1: f32[2] = add(%x, %2)\n  %2: f32[2] = relu(%x)\n  return %1\n}\n"
    with pytest.raises(ModelError, match="used before it is defined"):
        parse_graph(text)


def test_parse_type_checks_nodes():
    text = "graph g(%x: f32[2], %y: f32[3]) {\n  %1: f32[2] = add(%x, %y)\n  return %1\n}\n"
    with pytest.raises(ShapeError, match="do not broadcast"):
        parse_graph(text)


@pytest.mark.parametrize("bad", ["", "grap g() {}", "graph g(%x: f32[2]) {\n return %x", "graph g(%x: q7[2]) {}"])
def test_parse_garbage_is_a_model_error(bad):
    with pytest.raises((ModelError, ShapeError)):
        parse_graph(bad)


def test_graph_meta_round_trips():
    g = _sample_graph()
    g = g.replace(meta={"flush_denormals": 1, "note": "x"})
    text = print_graph(g)
    assert 'meta{flush_denormals=1, note="x"} {' in text
    assert parse_graph(text).meta == {"flush_denormals": 1, "note": "x"}


def test_a_nested_body_prints_indented_and_round_trips():
    from irc.passes.fuse_elementwise import fuse_elementwise

    b = GraphBuilder("g")
    x, y = b.input("x", (4,)), b.input("y", (4,))
    g = fuse_elementwise(b.build(b.op("leaky_relu", b.op("mul", b.op("add", x, y), x), alpha=0.2)))
    text = print_graph(g)
    assert "= elementwise_chain(%x, %y) {body=graph chain(%x0: f32[4], %x1: f32[4]) {\n" in text
    assert "\n      %1: f32[4] = add(%x0, %x1)\n" in text and "\n      return %3\n    }}\n" in text
    g2 = parse_graph(text)
    assert print_graph(g2) == text
    body = g2.nodes[0].attrs["body"]
    assert [n.op for n in body.nodes] == ["add", "mul", "leaky_relu"] and body.nodes[2].attrs == {"alpha": 0.2}
    x = np.linspace(-2, 2, 4, dtype=np.float32)
    np.testing.assert_array_equal(interpret(g2, [x, x])[0], interpret(g, [x, x])[0])


def test_a_nested_body_has_its_own_scope():
    text = ("graph g(%x: f32[2]) {\n"
            "  %x0: f32[2] = elementwise_chain(%x) {body=graph chain(%x0: f32[2]) {\n"
            "      %1: f32[2] = relu(%x0)\n      %2: f32[2] = neg(%1)\n      return %2\n    }}\n"
            "  return %x0\n}\n")
    g = parse_graph(text)
    assert print_graph(g) == text
    np.testing.assert_array_equal(interpret(g, [np.array([-1, 2], np.float32)])[0], [0, -2])
