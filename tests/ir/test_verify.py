"""The verifier catches every broken invariant with an error naming the node and op."""

import numpy as np
import pytest

from irc.errors import ModelError, ShapeError
from irc.ir import Graph, GraphBuilder, Node, TensorType, Value, verify
from irc.ir.types import DType


def _g():
    b = GraphBuilder("g")
    x = b.input("x", (2, 2))
    y = b.op("relu", x)
    return b.build(b.op("neg", y)), x, y


def test_good_graph_verifies():
    g, _, _ = _g()
    assert verify(g) is g


def test_cycle_or_out_of_order_is_refused():
    g, _, _ = _g()
    bad = g.replace(nodes=list(reversed(g.nodes)))
    with pytest.raises(ModelError, match="not defined before this node") as e:
        verify(bad)
    assert e.value.op == "neg"


def test_dangling_input_is_refused():
    g, _, _ = _g()
    ghost = Value("ghost", TensorType((2, 2), DType.f32))
    n = g.nodes[1]
    bad = g.replace(nodes=[g.nodes[0], Node(n.op, (ghost,), n.outputs, n.attrs)])
    with pytest.raises(ModelError, match="%ghost"):
        verify(bad)


def test_double_assignment_is_refused():
    g, _, y = _g()
    n = g.nodes[1]
    bad = g.replace(nodes=[g.nodes[0], Node(n.op, n.inputs, (y,), n.attrs)])
    with pytest.raises(ModelError, match="more than once"):
        verify(bad)


def test_wrong_output_type_is_refused():
    g, x, _ = _g()
    wrong = Value("w", TensorType((3,), DType.f32))
    bad = g.replace(nodes=[Node("relu", (x,), (wrong,), {})], outputs=[wrong])
    with pytest.raises(ModelError, match="the op gives f32\\[2,2\\]"):
        verify(bad)


def test_non_canonical_attributes_are_refused():
    g, x, _ = _g()
    out = Value("o", TensorType((2, 2), DType.f32))
    bad = g.replace(nodes=[Node("leaky_relu", (x,), (out,), {})], outputs=[out])
    with pytest.raises(ModelError, match="not canonical"):
        verify(bad)


def test_param_data_must_match_its_type():
    b = GraphBuilder("g")
    x = b.input("x", (2,))
    w = b.param("w", np.zeros(2, np.float32))
    g = b.build(b.op("add", x, w))
    bad = g.replace(params={w: np.zeros(3, np.float32)})
    with pytest.raises(ModelError, match="parameter %w"):
        verify(bad)


def test_builder_errors_name_the_op():
    b = GraphBuilder("g")
    x = b.input("x", (2,))
    y = b.input("y", (3,))
    with pytest.raises(ShapeError) as e:
        b.op("mul", x, y)
    assert e.value.op == "mul" and "do not broadcast" in str(e.value)
    with pytest.raises(ModelError, match="unknown attribute"):
        b.op("relu", x, alpha=1.0)
    with pytest.raises(ModelError, match="takes inputs"):
        b.op("relu", x, x)


def test_graph_without_outputs_is_refused():
    with pytest.raises(ModelError, match="no outputs"):
        verify(Graph("g", [], {}, [], []))
