"""CPU pooling kernels (max_pool, average_pool, global_average_pool, global_max_pool) against
the interpreter: hypothesis-chosen windows, strides, dilations, asymmetric pads, ceil_mode and
count_include_pad, 1-D to 3-D, float and (max) integer types."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.ir.types import TensorType
from tests.targets.harness import assert_matches_interp, one_op_graph

FLOATS = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
INTS = [np.int8, np.uint8, np.int32, np.int64]


def _tol(dtype) -> dict:
    """Averages of half-type data: the kernel sums in f32 and divides once, the reference as
    well but in another order, so the rounded means can differ by a unit in the last place."""
    if dtype == np.float16:
        return dict(rtol=2e-3, atol=2e-3)
    if dtype == ml_dtypes.bfloat16:
        return dict(rtol=1.6e-2, atol=1.6e-2)
    return {}


def _data(shape, dtype, rng):
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 4).astype(dtype)


@st.composite
def windows(draw):
    rank = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dil = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(rank))
    # Pads smaller than the kernel, as ONNX requires.
    pads = tuple(draw(st.integers(0, kernel[i % rank] - 1)) for i in range(2 * rank))
    size = [draw(st.integers(1, 6 if i < rank - 1 else 45)) for i in range(rank)]
    size = tuple(max(s, (k - 1) * d + 1 - pads[i] - pads[rank + i])
                 for i, (s, k, d) in enumerate(zip(size, kernel, dil)))
    return {"kernel_shape": kernel, "strides": strides, "dilations": dil, "pads": pads,
            "ceil_mode": draw(st.integers(0, 1))}, size


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(win=windows(), c=st.integers(1, 3), dtype=st.sampled_from(FLOATS + INTS), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 999))
def test_max_pool(win, c, dtype, threads, seed):
    attrs, size = win
    x = _data((2, c, *size), dtype, np.random.default_rng(seed))
    g = one_op_graph("max_pool", [TensorType.of(x)], attrs)
    assert_matches_interp(g, [x], threads=threads)


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(win=windows(), c=st.integers(1, 3), include_pad=st.integers(0, 1), dtype=st.sampled_from(FLOATS),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 999))
def test_average_pool(win, c, include_pad, dtype, threads, seed):
    attrs, size = win
    x = _data((2, c, *size), dtype, np.random.default_rng(seed))
    g = one_op_graph("average_pool", [TensorType.of(x)], {**attrs, "count_include_pad": include_pad})
    assert_matches_interp(g, [x], threads=threads, **_tol(dtype))


def test_max_pool_nan_inf_and_empty_windows():
    """NaN wins a window (numpy.max), -inf is an ordinary value, and a window that only covers
    padding (dilation stepping over a short input) gives the lowest finite value."""
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 40)).astype(np.float32)
    x[0, 0, 3, 7] = np.nan
    x[0, 1, :, 10:20] = -np.inf
    g = one_op_graph("max_pool", [TensorType.of(x)], {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)})
    assert_matches_interp(g, [x])
    for dtype in FLOATS:
        y = np.ones((1, 1, 2, 3), dtype)
        g = one_op_graph("max_pool", [TensorType.of(y)],
                         {"kernel_shape": (2, 2), "dilations": (3, 3), "pads": (2, 2, 2, 2)})
        assert_matches_interp(g, [y])


@pytest.mark.parametrize("shape,attrs", [
    ((1, 16, 112, 112), {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),  # ResNet stem
    ((2, 8, 56, 56), {"kernel_shape": (2, 2), "strides": (2, 2)}),
    ((1, 4, 35, 35), {"kernel_shape": (3, 3), "strides": (1, 1), "pads": (1, 1, 1, 1)}),
    ((1, 3, 300), {"kernel_shape": (9,), "strides": (7,), "pads": (4, 4)}),  # stride > 4: lane by lane
])
@pytest.mark.parametrize("op", ["max_pool", "average_pool"])
def test_typical_pools(shape, attrs, op):
    x = _data(shape, np.float32, np.random.default_rng(1))
    assert_matches_interp(one_op_graph(op, [TensorType.of(x)], attrs), [x], threads=2)


@pytest.mark.parametrize("op", ["global_average_pool", "global_max_pool"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 5, 100), (2, 2, 3, 4, 5), (3, 4, 1, 1), (1, 64, 1000)])
def test_global_pools(op, shape):
    dtypes = FLOATS + (INTS if op == "global_max_pool" else [])
    for i, dtype in enumerate(dtypes):
        x = _data(shape, dtype, np.random.default_rng(i))
        g = one_op_graph(op, [TensorType.of(x)])
        assert_matches_interp(g, [x], threads=2, **_tol(dtype))
