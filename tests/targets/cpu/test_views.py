"""The reshape view on the CPU target: aliased (no code runs) where the memory plan can, and a
copy where it cannot (a graph input returned as a graph output)."""

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder
from irc.ir.types import DType, TensorType
from tests.targets.cpu.arrays import ALL_DTYPES, sample
from tests.targets.harness import assert_matches_interp, one_op_graph


@pytest.mark.parametrize("dt", ALL_DTYPES, ids=str)
def test_reshape_input_to_output_copies(dt):
    x = sample((3, 4, 5), dt)
    assert_matches_interp(one_op_graph("reshape", [TensorType.of(x)], {"shape": (5, -1)}), [x])


@pytest.mark.parametrize("shape", [(0, 3), (1,), (), (7, 1, 1)])
def test_reshape_degenerate_shapes(shape):
    x = sample(shape, DType.f32)
    g = one_op_graph("reshape", [TensorType.of(x)], {"shape": (-1,) if x.size else (0,)})
    assert_matches_interp(g, [x])


def test_large_reshape_copy_runs_in_parallel_pieces():
    x = sample((64, 1000, 3), DType.f32, seed=1)
    assert_matches_interp(one_op_graph("reshape", [TensorType.of(x)], {"shape": (3000, 64)}), [x], threads=2)


def _chain():
    """x -> neg -> reshape -> reshape -> neg: both reshapes are views of neg's buffer."""
    b = GraphBuilder("views")
    x = b.input("x", (6, 4))
    y = b.op("reshape", b.op("neg", x), shape=(4, 6))
    z = b.op("reshape", y, shape=(2, 12))
    return b.build(b.op("neg", z), b.op("abs", y))


def test_reshapes_inside_a_graph_alias_their_input():
    g = _chain()
    exe = irc.compile(g, target="cpu", debug=True).executable
    views = {g.nodes[i].op for i in exe.plan.views}
    assert views == {"reshape"} and len(exe.plan.views) == 2
    x = sample((6, 4), DType.f32, seed=2)
    assert_matches_interp(g, [x])


def test_reshape_of_an_input_read_by_another_node():
    b = GraphBuilder("view_of_input")
    x = b.input("x", (2, 3, 4))
    r = b.op("reshape", x, shape=(6, 4))
    g = b.build(b.op("exp", r), r)
    assert_matches_interp(g, [sample((2, 3, 4), DType.f32, lo=-2, hi=2)])


def test_outputs_no_node_writes():
    """An output that is a graph input, a parameter, or a value another output already holds is
    copied into its buffer (found by the random-graph differential tester)."""
    from irc.ir import interpret
    from tests.targets.harness import passthrough_graph

    g = passthrough_graph()
    xs = [np.linspace(-1, 1, 5).astype(np.float32)]
    for got, want in zip(irc.compile(g, target="cpu", threads=1).run(xs), interpret(g, xs)):
        np.testing.assert_array_equal(got, want)
