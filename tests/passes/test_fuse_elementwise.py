"""fuse_elementwise groups element-wise chains into one elementwise_chain node."""

import numpy as np

from irc.ir import DType, GraphBuilder, interpret
from irc.passes.fuse_elementwise import fuse_elementwise
from tests.targets.harness import assert_matches_interp

RNG = np.random.default_rng(1)


def _gelu_like():
    b = GraphBuilder("g")
    x = b.input("x", (4, 33))
    s = b.param("s", RNG.standard_normal(33).astype(np.float32))
    t = b.op("mul", x, s)
    u = b.op("erf", b.op("mul", t, b.const(np.float32(0.7071))))
    y = b.op("mul", b.op("mul", t, b.const(np.float32(0.5))), b.op("add", u, b.const(np.float32(1))))
    return b.build(y)


def test_chain_becomes_one_node_with_same_numbers():
    g = _gelu_like()
    out = fuse_elementwise(g)
    # t is read twice inside the group: it stays its own node, the rest fuses around it
    assert [n.op for n in out.nodes] == ["mul", "elementwise_chain"]
    x = RNG.standard_normal((4, 33)).astype(np.float32)
    np.testing.assert_allclose(interpret(out, [x])[0], interpret(g, [x])[0], rtol=1e-6)


def test_shared_and_output_values_are_not_swallowed():
    b = GraphBuilder("g")
    x = b.input("x", (8,))
    a = b.op("exp", x)
    c = b.op("neg", a)
    g = b.build(b.op("relu", c), a)  # a is a graph output: it must stay materialised
    out = fuse_elementwise(g)
    assert [n.op for n in out.nodes] == ["exp", "elementwise_chain"]
    assert out.outputs[1] is a


def test_broadcast_smaller_intermediate_is_not_fused():
    b = GraphBuilder("g")
    x = b.input("x", (3, 5))
    s = b.input("s", (5,))
    y = b.op("add", x, b.op("exp", s))  # exp(s) is smaller than the output: computed once, not 3 times
    out = fuse_elementwise(b.build(y))
    assert [n.op for n in out.nodes] == ["exp", "add"]


def test_cpu_runs_a_mixed_dtype_chain():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3, 40))
    y = b.input("y", (3, 1))
    m = b.op("greater", b.op("sigmoid", x), b.const(np.float32(0.5)))
    z = b.op("where", m, b.op("mul", x, y), b.op("cast", b.op("cast", x, to=DType.i32), to=DType.f32))
    g = fuse_elementwise(b.build(b.op("clip", z, min=-1.0, max=1.5)))
    assert [n.op for n in g.nodes] == ["elementwise_chain"]
    feeds = [RNG.standard_normal((2, 3, 40)).astype(np.float32) * 3, RNG.standard_normal((3, 1)).astype(np.float32)]
    assert_matches_interp(g, feeds, rtol=1e-6, atol=1e-6)
    assert_matches_interp(fuse_elementwise(_gelu_like()), [RNG.standard_normal((4, 33)).astype(np.float32)])
