"""CPU normalization kernels (softmax, log_softmax, batch/instance/layer norm, lrn) against the
interpreter, on hypothesis-chosen shapes, axes and float types."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.ir.types import TensorType
from tests.targets.harness import assert_matches_interp, one_op_graph

FLOATS = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def _tol(dtype, op: str = "") -> dict:
    """fp32 as the harness; f64 tighter. The half types are checked against a reference that
    rounds to 8 (bf16) or 11 (f16) bits after every step, while the kernels keep f32 until the
    final store, so the two differ by a few units in the last place of the output; log_softmax
    outputs are differences of values of the size of the log-sum, so their error is absolute."""
    if dtype == np.float64:
        return dict(rtol=1e-10, atol=1e-12)
    if dtype == np.float16:
        return dict(rtol=4e-3, atol=2e-2 if op == "log_softmax" else 2e-3)
    if dtype == ml_dtypes.bfloat16:
        return dict(rtol=3e-2, atol=1e-1 if op == "log_softmax" else 2e-2)
    return {}


def _data(shape, dtype, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("op", ["softmax", pytest.param("log_softmax", marks=pytest.mark.slow)])
@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=40), data=st.data(),
       dtype=st.sampled_from(FLOATS), threads=st.sampled_from([1, 2]), seed=st.integers(0, 99))
def test_softmax(op, shape, data, dtype, threads, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _data(shape, dtype, seed, scale=4.0 if dtype in (np.float32, np.float64) else 1.0)
    g = one_op_graph(op, [TensorType.of(x)], {"axis": axis})
    assert_matches_interp(g, [x], threads=threads, **_tol(dtype, op))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_extremes(op):
    """Large values cannot overflow (the maximum is subtracted); -inf entries (masked attention)
    give 0 (or -inf); a row of -inf gives NaN as the reference does; long rows wide in range."""
    x = _data((6, 300), np.float32, 3, scale=30.0)
    x[0] += 1e4
    x[1, ::3] = -np.inf
    x[2] = -np.inf
    x[3, 5] = np.nan
    x[4, :200] = -200.0
    g = one_op_graph(op, [TensorType.of(x)], {"axis": 1})
    assert_matches_interp(g, [x], threads=2)


def test_softmax_large_row_and_column_groups():
    x = _data((3, 4099), np.float32, 1, scale=8.0)
    assert_matches_interp(one_op_graph("softmax", [TensorType.of(x)], {"axis": -1}), [x], threads=2)
    y = _data((2, 257, 37), np.float32, 2, scale=8.0)
    assert_matches_interp(one_op_graph("log_softmax", [TensorType.of(y)], {"axis": 1}), [y], threads=2)


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=2, max_dims=5, min_side=1, max_side=9), dtype=st.sampled_from(FLOATS),
       eps=st.sampled_from([1e-5, 1e-2]), seed=st.integers(0, 99))
def test_batch_norm(shape, dtype, eps, seed):
    c = shape[1]
    x = _data(shape, dtype, seed)
    params = [_data(c, dtype, seed + 1), _data(c, dtype, seed + 2), _data(c, dtype, seed + 3),
              np.random.default_rng(seed).uniform(0.2, 3.0, c).astype(dtype)]
    g = one_op_graph("batch_norm", [TensorType.of(a) for a in [x, *params]], {"epsilon": eps})
    assert_matches_interp(g, [x, *params], threads=2, **_tol(dtype))


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=3, max_dims=5, min_side=1, max_side=12), dtype=st.sampled_from(FLOATS),
       seed=st.integers(0, 99))
def test_instance_norm(shape, dtype, seed):
    c = shape[1]
    x = _data(shape, dtype, seed, scale=3.0) + dtype(1.5)
    scale, bias = _data(c, dtype, seed + 1), _data(c, dtype, seed + 2)
    g = one_op_graph("instance_norm", [TensorType.of(a) for a in (x, scale, bias)], {"epsilon": 1e-4})
    assert_matches_interp(g, [x, scale, bias], threads=2, **_tol(dtype))


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=24), data=st.data(),
       dtype=st.sampled_from(FLOATS), with_bias=st.booleans(), seed=st.integers(0, 99))
def test_layer_norm(shape, data, dtype, with_bias, seed):
    axis = data.draw(st.integers(0, len(shape) - 1))
    # Parameters that broadcast one way to x: the usual trailing shape, or any shape whose
    # axes are 1 or x's (leading axes included).
    pshape = data.draw(st.sampled_from([
        tuple(shape[axis:]),
        tuple(1 if i % 2 else d for i, d in enumerate(shape[axis:])),
        tuple(d if i % 2 else 1 for i, d in enumerate(shape)),
        (1,),
    ]))
    x = _data(shape, dtype, seed, scale=2.0)
    params = [_data(pshape, dtype, seed + 1)] + ([_data(pshape, dtype, seed + 2)] if with_bias else [])
    g = one_op_graph("layer_norm", [TensorType.of(a) for a in [x, *params]], {"axis": axis, "epsilon": 1e-5})
    assert_matches_interp(g, [x, *params], threads=2, **_tol(dtype))


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=1, max_side=10), size=st.integers(1, 6),
       beta=st.sampled_from([0.75, 0.5, 1.0, 0.6]), dtype=st.sampled_from(FLOATS), seed=st.integers(0, 99))
def test_lrn(shape, size, beta, dtype, seed):
    x = _data(shape, dtype, seed, scale=3.0)
    g = one_op_graph("lrn", [TensorType.of(x)], {"size": size, "alpha": 0.02, "beta": beta, "bias": 1.5})
    assert_matches_interp(g, [x], threads=2, **_tol(dtype))
