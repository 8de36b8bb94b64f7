"""Differential testing of targets against the reference interpreter.

``assert_matches_interp(graph, inputs, target)`` compiles ``graph`` for ``target``, runs it and
the interpreter on the same inputs, and compares: floats within rtol/atol, everything else
exactly. ``one_op_graph`` wraps one op into a graph for op-by-op tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import irc
from irc.ir import Graph, GraphBuilder, interpret
from irc.ir.types import TensorType

#: fp32 tolerances of the differential tests. Kernels may reassociate sums (vector lanes,
#: blocked reductions), so bitwise equality is not expected for floats.
RTOL, ATOL = 1e-4, 1e-5


def one_op_graph(op: str, input_types: Sequence[TensorType], attrs: dict | None = None,
                 params: dict[int, np.ndarray] | None = None) -> Graph:
    """A graph applying ``op`` once. Inputs listed in ``params`` (position -> array) are
    parameters (weights) instead of graph inputs."""
    b = GraphBuilder(f"t_{op}")
    vals = []
    for i, t in enumerate(input_types):
        if params and i in params:
            vals.append(b.param(f"p{i}", params[i]))
        else:
            vals.append(b.input(f"x{i}", t))
    outs = b.add_node(op, vals, attrs or {})
    return b.build(*outs)


def assert_matches_interp(g: Graph, inputs: Sequence[np.ndarray], target: str = "cpu", *, rtol: float = RTOL,
                          atol: float = ATOL, **options) -> list[np.ndarray]:
    got = irc.compile(g, target=target, debug=True, **options).run(list(inputs))
    want = interpret(g, list(inputs))
    assert len(got) == len(want)
    for i, (a, e) in enumerate(zip(got, want)):
        assert a.shape == e.shape, f"output {i}: shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"output {i}: dtype {a.dtype} != {e.dtype}"
        if e.dtype.kind == "f" or e.dtype.name == "bfloat16":
            np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"output {i}")
    return got


def passthrough_graph() -> Graph:
    """Outputs no node writes: a parameter, a computed value twice, and a graph input (targets
    must copy those in; found by the random-graph differential tester)."""
    b = GraphBuilder("passthrough")
    x = b.input("x", (5,))
    c = b.param("c", np.arange(5, dtype=np.float32))
    y = b.op("add", x, x)
    return b.build(c, y, x, y)
