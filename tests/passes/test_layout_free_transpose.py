"""A transpose that moves only size-1 axes keeps every byte in place: the fuse pass makes it a
reshape (a view), so batch-first attention exports (which swap a batch of 1 with the sequence
around the output projection) fuse their residual add into the GEMM."""

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder, interpret
from irc.passes.fuse import fuse

RNG = np.random.default_rng(0)


def _transposed(shape, perm):
    b = GraphBuilder("t")
    x = b.input("x", shape)
    return b.build(b.op("exp", b.op("transpose", x, perm=perm)))


@pytest.mark.parametrize("shape,perm", [((128, 1, 16), (1, 0, 2)), ((1, 4, 1, 8), (2, 1, 0, 3)),
                                        ((1, 1, 5), (1, 2, 0))])
def test_moving_only_size_one_axes_becomes_a_reshape(shape, perm):
    g = fuse(_transposed(shape, perm))
    assert [n.op for n in g.nodes if n.op != "reshape"] == ["exp"]  # no reshape where the shape is unchanged
    x = RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(irc.compile(g, "cpu")(x), interpret(_transposed(shape, perm), [x])[0], rtol=3e-7)


@pytest.mark.parametrize("shape,perm", [((2, 3), (1, 0)), ((1, 4, 2, 8), (0, 2, 1, 3)), ((3, 1, 5), (2, 1, 0))])
def test_a_transpose_that_reorders_data_stays(shape, perm):
    assert [n.op for n in fuse(_transposed(shape, perm)).nodes] == ["transpose", "exp"]


def test_residual_after_a_batch_first_swap_fuses_into_the_gemm():
    """[seq, 1, hidden] rows through a linear layer, swapped to [1, seq, hidden], plus the input."""
    b = GraphBuilder("proj")
    x = b.input("x", (1, 16, 24))
    rows = b.op("reshape", b.op("transpose", x, perm=(1, 0, 2)), shape=(16, 24))
    y = b.op("gemm", rows, b.param("w", RNG.standard_normal((24, 24)).astype(np.float32)),
             b.param("c", RNG.standard_normal(24).astype(np.float32)))
    out = b.op("add", b.op("transpose", b.op("reshape", y, shape=(16, 1, 24)), perm=(1, 0, 2)), x)
    g = b.build(out)
    m = irc.compile(g, "cpu")
    assert "add" not in {n.op for n in m.graph.nodes} and "transpose" not in {n.op for n in m.graph.nodes}
    xv = RNG.standard_normal((1, 16, 24)).astype(np.float32)
    np.testing.assert_allclose(m(xv), interpret(g, [xv])[0], rtol=1e-5, atol=1e-6)
