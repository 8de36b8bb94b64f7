"""The GEMMs of a compiled train step: a run-time operand read transposed while it is packed
(the data gradient dy @ W^T and the weight gradient x^T @ dy store no transpose) and SGD's
momentum folded into the weight-gradient GEMM as a scaled residual, against numpy or the
interpreter at fp32 rtol 1e-4 (tests/nn/test_compiled_mlp_step.py runs them in train steps)."""

from __future__ import annotations

import numpy as np
import pytest

import irc
from irc.ir import GraphBuilder, interpret
from tests.support.marks import grid

RTOL = 1e-4


def _gemm_graph(m: int, n: int, k: int, trans_a: int, trans_b: int, beta: float | None = None):
    b = GraphBuilder("gemm_t")
    ash = (k, m) if trans_a else (m, k)
    bsh = (n, k) if trans_b else (k, n)
    ins = [b.input("a", ash), b.input("b", bsh)]
    if beta is not None:
        ins.append(b.input("c", (m, n)))
    y = b.op("gemm", *ins, trans_a=trans_a, trans_b=trans_b, beta=1.0 if beta is None else beta)
    return b.build(y), [ash, bsh] + ([(m, n)] if beta is not None else [])


def _reference(xs, trans_a, trans_b, beta):
    a = xs[0].astype(np.float64)
    b = xs[1].astype(np.float64)
    y = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if beta is not None:
        y += np.float64(np.float32(beta)) * xs[2]
    return y


# (m, n, k): whole 16-column panels and a K that is a multiple of 8; a partial last panel and a
# K tail (k mod 8); K longer than one packed slice (256) with a tail; a single partial panel.
SHAPES = [(6, 32, 16), (7, 37, 13), (33, 48, 301), (3, 9, 7), (100, 64, 100)]


@pytest.mark.parametrize("shape,pipeline", grid(SHAPES, [True, False], fast={"(7, 37, 13)-True", "(33, 48, 301)-False"}))
def test_gemm_reads_a_transposed_run_time_b_while_packing(shape, pipeline):
    m, n, k = shape
    passes = None if pipeline else []
    g, shapes = _gemm_graph(m, n, k, 0, 1)
    rng = np.random.default_rng(m * n + k)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    c = irc.compile(g, target="cpu", **({} if passes is None else {"passes": passes}))
    assert "transpose" not in [nd.op for nd in c.graph.nodes]
    np.testing.assert_allclose(c(*xs), _reference(xs, 0, 1, None), rtol=RTOL, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("shape,beta", grid(SHAPES, [1.0, 0.9, -0.5], fast={"(7, 37, 13)-0.9", "(33, 48, 301)-1.0"}))
def test_weight_gradient_gemm_takes_a_scaled_residual(shape, beta):
    """x^T @ dy + beta * C: the residual's scale rides the GEMM engine's epilogue."""
    m, n, k = shape
    g, shapes = _gemm_graph(m, n, k, 1, 0, beta)
    rng = np.random.default_rng(m + n * k)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    c = irc.compile(g, target="cpu", passes=[])
    np.testing.assert_allclose(c(*xs), _reference(xs, 1, 0, beta), rtol=RTOL, atol=1e-5 * np.sqrt(k))


def test_fuse_folds_momentum_into_the_weight_gradient_gemm():
    """velocity * 0.9 + x^T @ dy (SGD momentum) compiles to one gemm with beta 0.9: no transpose,
    no separate scaling or add pass."""
    m, n, k = 40, 24, 16
    b = GraphBuilder("momentum")
    x, dy, v = b.input("x", (k, m)), b.input("dy", (k, n)), b.input("v", (m, n))
    grad = b.op("gemm", x, dy, trans_a=1)
    scaled = b.op("mul", v, b.param("m", np.array(0.9, np.float32)))
    g = b.build(b.op("add", scaled, grad))
    c = irc.compile(g, target="cpu")
    ops = [nd.op for nd in c.graph.nodes]
    assert ops == ["gemm"], ops
    assert c.graph.nodes[0].attrs["beta"] == pytest.approx(0.9)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((k, m), (k, n), (m, n))]
    np.testing.assert_allclose(c(*xs), interpret(g, xs)[0], rtol=RTOL, atol=1e-5)
