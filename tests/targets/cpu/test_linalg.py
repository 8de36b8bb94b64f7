"""CPU matrix product kernels (gemm, matmul, gemm_fused) against the interpreter: hypothesis-
chosen shapes (edge tiles of the packed engine, vectors, broadcast batches), transposes,
alpha/beta, every shape C may broadcast from, epilogues, and every numeric type."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.errors import TargetError
from irc.ir.ops import get_op
from irc.ir.ops.activation import ACTIVATION_OPS, ACTIVATIONS, activation_of
from irc.ir.types import TensorType
from tests.support.marks import grid, slow
from tests.targets.harness import assert_matches_interp, one_op_graph

FLOATS = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
INTS = [np.int8, np.uint8, np.int32, np.int64]
GEMM_EPILOGUES = ["none", "relu", "sigmoid", "tanh", "leaky_relu", "hard_sigmoid", "elu", "softplus", "clip"]


def _act(name: str) -> dict:
    """gemm's activation attributes applying op ``name`` with its default attributes."""
    if name == "none":
        return {"act": "none"}
    act, alpha, beta = activation_of(name, get_op(name).check_attrs({}), ACTIVATION_OPS)
    return {"act": act, "act_alpha": alpha, "act_beta": beta}


def _tol(dtype, k: int = 1) -> dict:
    """f32 as the harness. The half types: both sides sum in f32 and round once, in different
    orders, so the rounded products may differ by a unit in the last place (relative 2**-11 or
    2**-8 of the largest partial sums, which grow like sqrt(k))."""
    scale = max(1.0, np.sqrt(k))
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-12 * scale)
    if dtype == np.float16:
        return dict(rtol=2e-3, atol=2e-3 * scale)
    if dtype == ml_dtypes.bfloat16:
        return dict(rtol=1.6e-2, atol=1.6e-2 * scale)
    return dict(rtol=1e-4, atol=1e-5 * scale)


def _data(shape, dtype, rng):
    if np.dtype(dtype).kind in "iu":
        lo = -5 if np.dtype(dtype).kind == "i" else 0
        return rng.integers(lo, 6, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


dims = st.one_of(st.integers(1, 8), st.integers(9, 80))


@st.composite
def matmul_shapes(draw):
    m, k, n = draw(dims), draw(dims), draw(dims)
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    # Each operand keeps some of the batch axes, or a 1 in their place (broadcasting).
    a_batch = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    b_batch = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    a = (k,) if draw(st.integers(0, 5)) == 0 else (*a_batch, m, k)
    b = (k,) if draw(st.integers(0, 5)) == 0 else (*b_batch, k, n)
    return a, b


@slow
@settings(max_examples=60, deadline=None)
@given(shapes=matmul_shapes(), dtype=st.sampled_from(FLOATS + INTS), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 999))
def test_matmul(shapes, dtype, threads, seed):
    rng = np.random.default_rng(seed)
    a, b = _data(shapes[0], dtype, rng), _data(shapes[1], dtype, rng)
    g = one_op_graph("matmul", [TensorType.of(a), TensorType.of(b)])
    assert_matches_interp(g, [a, b], threads=threads, passes=[], **_tol(dtype, shapes[0][-1]))


C_SHAPES = {"none": None, "n": lambda m, n: (n,), "1n": lambda m, n: (1, n), "m1": lambda m, n: (m, 1),
            "mn": lambda m, n: (m, n), "11": lambda m, n: (1, 1), "scalar": lambda m, n: ()}


@slow
@settings(max_examples=60, deadline=None)
@given(m=dims, k=dims, n=dims, trans_a=st.integers(0, 1), trans_b=st.integers(0, 1),
       c=st.sampled_from(sorted(C_SHAPES)), alpha=st.sampled_from([1.0, 0.5, -2.0]),
       beta=st.sampled_from([1.0, 0.0, 0.25]), epilogue=st.sampled_from(GEMM_EPILOGUES),
       dtype=st.sampled_from(FLOATS + [np.int32, np.int64]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 999))
def test_gemm(m, k, n, trans_a, trans_b, c, alpha, beta, epilogue, dtype, threads, seed):
    if np.dtype(dtype).kind == "i" and epilogue not in ("none", "relu", "clip"):
        epilogue = "relu"
    rng = np.random.default_rng(seed)
    ins = [_data((k, m) if trans_a else (m, k), dtype, rng), _data((n, k) if trans_b else (k, n), dtype, rng)]
    if C_SHAPES[c] is not None:
        ins.append(_data(C_SHAPES[c](m, n), dtype, rng))
    attrs = dict(alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, **_act(epilogue))
    g = one_op_graph("gemm", [TensorType.of(x) for x in ins], attrs)
    assert_matches_interp(g, ins, threads=threads, passes=[], **_tol(dtype, k))


@pytest.mark.parametrize("dtype, act", grid(FLOATS, sorted(ACTIVATIONS), fast={"float64-relu"}))
def test_gemm_fused(act, dtype):
    rng = np.random.default_rng(len(act))
    for m, k, n in [(3, 4, 5), (20, 33, 70), (1, 8, 9), (9, 8, 1)]:
        for extras in range(3):
            ins = [_data((m, k), dtype, rng), _data((k, n), dtype, rng)]
            ins += [_data((n,), dtype, rng)] * (extras >= 1) + [_data((m, n), dtype, rng)] * (extras == 2)
            attrs = dict(act=act, act_alpha=-0.5 if act == "clip" else 0.1, act_beta=0.6)
            g = one_op_graph("gemm_fused", [TensorType.of(x) for x in ins], attrs)
            assert_matches_interp(g, ins, threads=2, passes=[], **_tol(dtype, k))


def test_batched_attention_shapes_and_large_products():
    """Many small batches (in parallel, one thread each), few large ones (parallel inside),
    and K longer than one KC slice of the engine."""
    rng = np.random.default_rng(0)
    for a_shape, b_shape in [((2, 12, 33, 64), (2, 12, 64, 33)), ((2, 130, 300), (300, 97)), ((1, 700), (700, 40))]:
        a, b = _data(a_shape, np.float32, rng), _data(b_shape, np.float32, rng)
        g = one_op_graph("matmul", [TensorType.of(a), TensorType.of(b)])
        assert_matches_interp(g, [a, b], threads=2, passes=[], **_tol(np.float32, a_shape[-1]))


def test_matmul_through_the_pipeline():
    """A 2-D matmul becomes gemm_fused in the pipeline; with a run-time right operand it stays
    that and runs here (with a bias and relu fused into it)."""
    from irc.ir import GraphBuilder

    rng = np.random.default_rng(1)
    gb = GraphBuilder("mm")
    x, w = gb.input("x", (17, 40)), gb.input("w", (40, 23))
    y = gb.op("relu", gb.op("add", gb.op("matmul", x, w), gb.param("b", _data((23,), np.float32, rng))))
    g = gb.build(y)
    assert [n.op for n in irc.compile(g, target="cpu").graph.nodes] == ["gemm_fused"]
    assert_matches_interp(g, [_data((17, 40), np.float32, rng), _data((40, 23), np.float32, rng)], threads=2)


def test_float_activation_on_integer_gemm_is_refused():
    a = np.ones((2, 3), np.int32)
    g = one_op_graph("gemm", [TensorType.of(a), TensorType.of(a.T.copy())], {"act": "sigmoid"})
    with pytest.raises(TargetError, match="sigmoid"):
        irc.compile(g, target="cpu", passes=[])
