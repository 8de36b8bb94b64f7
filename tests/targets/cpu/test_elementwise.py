"""CPU element-wise kernels against the interpreter, on hypothesis-chosen shapes and dtypes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.ir.ops import REGISTRY
from irc.ir.types import DType, TensorType
from tests.support.marks import params
from tests.targets.harness import assert_matches_interp, one_op_graph

FLOAT_UNARY = ["neg", "abs", "sqrt", "exp", "log", "erf", "reciprocal", "floor", "ceil", "round", "sign", "sin",
               "cos", "tanh", "sigmoid", "softplus", "softsign", "relu", "leaky_relu", "elu", "selu", "hard_sigmoid",
               "hard_swish", "clip", "identity", "gelu", "gelu_tanh", "silu"]
INT_UNARY = ["neg", "abs", "sign", "relu", "clip", "identity"]
BINARY = ["add", "sub", "mul", "div", "pow", "max", "min", "prelu"]
COMPARE = ["equal", "less", "less_equal", "greater", "greater_equal"]
ATTRS = {"leaky_relu": {"alpha": 0.07}, "elu": {"alpha": 0.8}, "clip": {"min": -0.5, "max": 2.0},
         "hard_sigmoid": {"alpha": 0.3, "beta": 0.45}}
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=7)


def _floats(shape, lo=-8.0, hi=8.0, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


@pytest.mark.parametrize("op", params(FLOAT_UNARY, fast={"abs", "exp", "round", "tanh", "clip"}))
@settings(max_examples=6, deadline=None)
@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_float_unary(op, shape, dtype, seed):
    lo = 0.01 if op in ("sqrt", "log") else -8.0
    x = _floats(shape, lo, 8.0, dtype, seed)
    if op == "round":
        x = (np.round(x * 2) / 2).astype(dtype)  # exact halves exercise round-half-to-even
    g = one_op_graph(op, [TensorType.of(x)], ATTRS.get(op))
    assert_matches_interp(g, [x], rtol=2e-6 if dtype == np.float32 else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("op", INT_UNARY)
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_int_unary(op, dtype):
    x = np.arange(-60, 60, dtype=dtype).reshape(4, 30)
    g = one_op_graph(op, [TensorType.of(x)], {"min": -7.5, "max": 20.0} if op == "clip" else None)
    assert_matches_interp(g, [x])


@pytest.mark.parametrize("op", params(BINARY + COMPARE, fast={"add", "div", "prelu", "less"}))
@settings(max_examples=8, deadline=None)
@given(sh=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=6), seed=st.integers(0, 99))
def test_binary_broadcast(op, sh, seed):
    a_shape, b_shape = sh.input_shapes
    if op == "prelu":
        a_shape = sh.result_shape
    lo = 0.25 if op == "pow" else -4.0
    a, b = _floats(a_shape, lo, 4.0, seed=seed), _floats(b_shape, lo, 4.0, seed=seed + 1)
    if op in COMPARE:
        a, b = np.round(a), np.round(b)  # equal values occur
    g = one_op_graph(op, [TensorType.of(a), TensorType.of(b)])
    assert_matches_interp(g, [a, b], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "max", "min"])
def test_integer_binary_including_division_by_zero(op, dtype):
    info = np.iinfo(dtype)
    a = np.array([info.min, info.max, 7, 0, 5, 9, 1, 100], dtype)
    b = np.array([1, 2, 0, 3, -1 if info.min < 0 else 1, 2, 0, 7], dtype)
    if info.min < 0:
        a[0], b[0] = info.min, -1  # INT_MIN / -1 traps on x86 if not guarded
    g = one_op_graph(op, [TensorType.of(a), TensorType.of(b)])
    with np.errstate(all="ignore"):
        assert_matches_interp(g, [a, b])


def test_logical_and_where():
    rng = np.random.default_rng(3)
    a, b = rng.random((3, 5)) > 0.5, rng.random((5,)) > 0.5
    for op in ("and", "or", "xor"):
        assert_matches_interp(one_op_graph(op, [TensorType.of(a), TensorType.of(b)]), [a, b])
    assert_matches_interp(one_op_graph("not", [TensorType.of(a)]), [a])
    x, y = _floats((3, 5)), _floats((1, 5), seed=4)
    assert_matches_interp(one_op_graph("where", [TensorType.of(a), TensorType.of(x), TensorType.of(y)]), [a, x, y])


CASTS = [DType.f32, DType.f64, DType.f16, DType.bf16, DType.i64, DType.i32, DType.i8, DType.u8, DType.bool]


@pytest.mark.parametrize("src", CASTS)
@pytest.mark.parametrize("dst", CASTS)
def test_cast(src, dst):
    base = np.array([-100.75, -3.5, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5, 77.25, 100.0, 126.0, 3.0e-3])
    if not src.is_signed or not dst.is_signed:
        base = np.abs(base)  # negative floats to unsigned are undefined in C and numpy alike
    x = base.astype(src.numpy)
    g = one_op_graph("cast", [TensorType.of(x)], {"to": dst})
    assert_matches_interp(g, [x], rtol=0, atol=0)


def test_nan_propagation_matches_numpy():
    x = np.array([np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf], np.float32)
    for op in ("relu", "max", "min", "clip", "sigmoid", "abs"):
        types = [TensorType.of(x)] * (2 if op in ("max", "min") else 1)
        ins = [x, x[::-1].copy()] if op in ("max", "min") else [x]
        assert_matches_interp(one_op_graph(op, types, ATTRS.get(op)), ins, rtol=1e-6, atol=0)


def test_every_elementwise_op_has_a_cpu_kernel():
    from irc.targets.cpu.kernels import KERNELS

    missing = [name for name, d in REGISTRY.items() if "elementwise" in d.traits and name not in KERNELS]
    assert missing == []
