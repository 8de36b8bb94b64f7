"""The cost model: an entry for every op, the documented formulas, and activation memory from a
liveness walk checked against a brute-force count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir import REGISTRY, GraphBuilder
from irc.ir.cost import Cost, activation_memory, graph_cost, node_cost


def test_every_registered_op_has_a_cost_entry():
    missing = sorted(name for name, d in REGISTRY.items() if d.cost is None)
    assert not missing, f"ops without a cost formula (opdef.cost): {', '.join(missing)}"


def _w(*shape):
    return np.ones(shape, np.float32)


def _only_node(g):
    assert len(g.nodes) == 1
    return g.nodes[0]


@pytest.mark.parametrize("group, bias", [(1, False), (2, True), (4, True)])
def test_conv(group, bias):
    b = GraphBuilder()
    x = b.input("x", (2, 4, 9, 9))
    args = [x, b.param("w", _w(8, 4 // group, 3, 3))] + ([b.param("b", _w(8))] if bias else [])
    y = b.op("conv", *args, group=group, strides=(2, 2), pads=(1, 1, 1, 1))
    n = _only_node(b.build(y))
    assert y.shape == (2, 8, 5, 5)
    macs = 2 * 8 * 5 * 5 * (4 // group) * 3 * 3  # N*Cout*Hout*Wout*(Cin/group)*kh*kw
    assert node_cost(n) == Cost(macs, 2 * macs + (y.type.size if bias else 0))


def test_conv_transpose():
    b = GraphBuilder()
    x = b.input("x", (1, 4, 5, 5))
    y = b.op("conv_transpose", x, b.param("w", _w(4, 3, 2, 2)), strides=(2, 2))
    macs = 4 * 5 * 5 * 3 * 2 * 2  # every input element scatters into Cout/group * kh * kw outputs
    assert node_cost(_only_node(b.build(y))) == Cost(macs, 2 * macs)


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm(trans_a, trans_b):
    m, k, n = 3, 7, 5
    b = GraphBuilder()
    a = b.input("a", (k, m) if trans_a else (m, k))
    w = b.param("w", _w(*((n, k) if trans_b else (k, n))))
    y = b.op("gemm", a, w, b.param("c", _w(n)), trans_a=trans_a, trans_b=trans_b)
    assert node_cost(_only_node(b.build(y))) == Cost(m * n * k, 2 * m * n * k + m * n)


def test_gemm_epilogue_counts_one_flop_per_output():
    b = GraphBuilder()
    y = b.op("gemm", b.input("a", (3, 7)), b.param("w", _w(7, 5)), act="relu")
    assert node_cost(_only_node(b.build(y))) == Cost(105, 210 + 15)


def test_batched_matmul():
    b = GraphBuilder()
    y = b.op("matmul", b.input("a", (4, 3, 6)), b.input("b", (4, 6, 2)))
    assert node_cost(_only_node(b.build(y))) == Cost(4 * 3 * 2 * 6, 2 * 4 * 3 * 2 * 6)


def test_pools_norms_and_softmax():
    b = GraphBuilder()
    x = b.input("x", (1, 3, 8, 8))
    mp = b.op("max_pool", x, kernel_shape=(3, 3), strides=(1, 1))
    ap = b.op("average_pool", x, kernel_shape=(2, 2), strides=(2, 2))
    gp = b.op("global_average_pool", x)
    bn = b.op("batch_norm", x, *(b.param(k, _w(3)) for k in "sbmv"))
    sm = b.op("softmax", x)
    g = b.build(mp, ap, gp, bn, sm)
    costs = {n.op: node_cost(n) for n in g.nodes}
    assert costs["max_pool"] == Cost(0, 3 * 6 * 6 * 9)
    assert costs["average_pool"] == Cost(0, 3 * 4 * 4 * (4 + 1))
    assert costs["global_average_pool"] == Cost(0, 3 * 64 + 3)
    assert costs["batch_norm"] == Cost(0, 2 * 192)
    assert costs["softmax"] == Cost(0, 5 * 192)


def test_elementwise_is_one_per_output_element_and_identity_is_free():
    b = GraphBuilder()
    x = b.input("x", (4, 5))
    y = b.op("add", x, b.param("c", _w(5)))
    z = b.op("exp", y)
    g = b.build(b.op("identity", z))
    assert [node_cost(n) for n in g.nodes] == [Cost(0, 20), Cost(0, 20), Cost(0, 0)]


def test_graph_cost_totals_by_op_and_reports_uncosted(monkeypatch):
    b = GraphBuilder()
    x = b.input("x", (2, 8))
    h = b.op("relu", b.op("gemm", x, b.param("w", _w(8, 4)), b.param("c", _w(4))))
    g = b.build(b.op("relu", b.op("gemm", h, b.param("w2", _w(4, 3)))))
    c = graph_cost(g)
    assert list(c.by_op) == ["gemm", "relu"]
    assert c.by_op["gemm"].count == 2 and c.by_op["relu"].count == 2
    assert c.by_op["gemm"].cost == Cost(2 * 8 * 4 + 2 * 4 * 3, 2 * (2 * 8 * 4 + 2 * 4 * 3) + 2 * 4)
    assert c.total == c.by_op["gemm"].cost + c.by_op["relu"].cost
    monkeypatch.setattr(REGISTRY["relu"], "cost", None)
    c = graph_cost(g)
    assert c.uncosted == ["relu"] and c.total == c.by_op["gemm"].cost


def test_activation_memory_of_a_chain_and_a_skip():
    b = GraphBuilder()
    x = b.input("x", (256,))  # 1 KiB per f32 value
    a = b.op("relu", x)
    c = b.op("neg", a)
    d = b.op("add", c, a)  # a lives until here
    g = b.build(b.op("exp", d))
    m = activation_memory(g)
    assert m.total_bytes == 5 * 1024
    # At "add": a, c and d are live (x died after relu).
    assert m.peak_bytes == 3 * 1024 and m.peak_node == g.nodes[2].label


def _brute_force_peak(g) -> int:
    """Most bytes live at any node: values defined at or before it and read at or after it."""
    defined = {v: -1 for v in g.inputs}
    last = {v: -1 for v in g.inputs}
    for i, n in enumerate(g.nodes):
        for v in n.outputs:
            defined[v], last[v] = i, i
        for v in n.inputs:
            last[v] = max(last.get(v, i), i)
    for v in g.outputs:
        last[v] = len(g.nodes)
    steps = range(-1, len(g.nodes))
    return max(sum(v.type.nbytes for v in defined if defined[v] <= i <= last.get(v, -1)) for i in steps)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_activation_peak_matches_brute_force(data):
    """Random DAGs of element-wise ops (each reading one or two earlier values) over random sizes."""
    b = GraphBuilder()
    n_inputs = data.draw(st.integers(1, 3))
    size = data.draw(st.sampled_from([1, 3, 16]))
    values = [b.input(f"x{i}", (size,)) for i in range(n_inputs)]
    for _ in range(data.draw(st.integers(1, 12))):
        a = data.draw(st.sampled_from(values))
        if data.draw(st.booleans()):
            values.append(b.op("add", a, data.draw(st.sampled_from(values))))
        else:
            values.append(b.op(data.draw(st.sampled_from(["relu", "neg", "exp"])), a))
    outs = data.draw(st.lists(st.sampled_from(values[n_inputs:]), min_size=1, max_size=2, unique_by=id))
    g = b.build(*outs)
    m = activation_memory(g)
    assert m.peak_bytes == _brute_force_peak(g)
    assert m.total_bytes == sum(v.type.nbytes for v in g.inputs) + sum(v.type.nbytes for n in g.nodes for v in n.outputs)


def test_lowered_contractions_cost_the_same_macs_as_the_op_they_replace():
    """conv_gemm (packed weight) and gemm_packed keep the MACs of conv and gemm; the fused
    epilogue adds one FLOP per output element per term."""
    import irc.targets.cpu.lowering.ops  # noqa: F401  (registers the CPU-only conv_gemm and gemm_packed)
    from irc.ir.graph import Node, Value
    from irc.ir.types import DType, TensorType

    def v(*shape):
        return Value("v", TensorType(shape, DType.f32))

    x, out = v(2, 4, 9, 9), v(2, 8, 5, 5)
    conv = Node("conv", (x, v(8, 2, 3, 3)), (out,), {"group": 2})
    conv_gemm = Node("conv_gemm", (x, v(2, 1, 18, 8), v(8), v(2, 8, 5, 5)), (out,),
                     {"kernel_shape": (3, 3), "cout": 8, "group": 2, "act": "relu"})
    assert node_cost(conv_gemm).macs == node_cost(conv).macs == 2 * 8 * 5 * 5 * 2 * 9
    assert node_cost(conv_gemm).flops == node_cost(conv).flops + 3 * out.type.size  # bias, residual, relu
    a, y = v(6, 10), v(6, 7)
    gemm = Node("gemm", (a, v(10, 7)), (y,), {"act": "none"})
    packed = Node("gemm_packed", (a, v(1, 10, 8)), (y,), {"n": 7, "act": "none"})
    assert node_cost(packed) == node_cost(gemm) == Cost(6 * 7 * 10, 2 * 6 * 7 * 10)


def test_a_fused_elementwise_chain_costs_what_its_ops_cost():
    from irc.passes.fuse_elementwise import fuse_elementwise

    b = GraphBuilder()
    x = b.input("x", (4, 8))
    y = b.op("exp", b.op("mul", b.op("relu", x), b.param("s", _w(8))))
    g = b.build(b.op("gemm", y, b.param("w", _w(8, 3))))
    fused = fuse_elementwise(g)
    assert "elementwise_chain" in fused.op_histogram()
    assert graph_cost(fused).total == graph_cost(g).total == Cost(4 * 3 * 8, 2 * 4 * 3 * 8 + 3 * 32)
