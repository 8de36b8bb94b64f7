"""CPU kernels of slice, gather, gather_elements and argmax/argmin against the interpreter:
hypothesis picks shapes, bounds, negative steps and indices, out-of-range ones included (they
must give 0, never a read outside the input)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.errors import ShapeError
from irc.ir.types import DType, TensorType
from tests.targets.cpu.arrays import ALL_DTYPES, sample
from tests.targets.harness import assert_matches_interp, one_op_graph

dtypes = st.sampled_from(ALL_DTYPES)
index_dtypes = st.sampled_from([np.int32, np.int64])


def check(op, xs, attrs, **options):
    assert_matches_interp(one_op_graph(op, [TensorType.of(x) for x in xs], attrs), xs, **options)


@settings(max_examples=80, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7), dt=dtypes, data=st.data())
def test_slice(shape, dt, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1))
    starts, ends, steps = [], [], []
    for a in axes:
        d = shape[a]
        starts.append(data.draw(st.integers(-d - 3, d + 3)))
        ends.append(data.draw(st.integers(-d - 3, d + 3) | st.sampled_from([2**62, -(2**62)])))
        steps.append(data.draw(st.integers(-3, 3).filter(bool)))
    check("slice", [sample(shape, dt)], {"starts": starts, "ends": ends, "axes": axes, "steps": steps})


def test_slice_reversing_every_axis_and_large_rows():
    x = sample((40, 50, 60), DType.f32)
    check("slice", [x], {"starts": (-1, -1, -1), "ends": (-(2**62),) * 3, "steps": (-1, -1, -1)})
    check("slice", [x], {"starts": (0, 3, 1), "ends": (40, 47, 59), "steps": (1, 1, 1)}, threads=2)
    check("slice", [x], {"starts": (1, 0, 0), "ends": (40, 50, 60), "steps": (3, 2, 2)}, threads=2)


@settings(max_examples=60, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), dt=dtypes, it=index_dtypes,
       ishape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4), data=st.data())
def test_gather(shape, dt, it, ishape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx = np.array(data.draw(st.lists(st.integers(-n - 3, n + 3), min_size=int(np.prod(ishape)),
                                      max_size=int(np.prod(ishape)))), it).reshape(ishape)
    check("gather", [sample(shape, dt), idx], {"axis": axis})


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), dt=dtypes, it=index_dtypes,
       data=st.data())
def test_gather_elements(shape, dt, it, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    ishape = tuple(data.draw(st.integers(0, d + 2)) if k == axis else data.draw(st.integers(0, d))
                   for k, d in enumerate(shape))
    n = shape[axis]
    idx = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-n - 2, n + 2, ishape).astype(it)
    check("gather_elements", [sample(shape, dt), idx], {"axis": axis})


@pytest.mark.parametrize("op", ["gather", "gather_elements"])
def test_gathers_from_an_empty_axis_are_refused(op):
    """Every index would be out of range; the op refuses rather than define a read of nothing."""
    with pytest.raises(ShapeError, match="empty axis"):
        one_op_graph(op, [TensorType((3, 0), DType.f32), TensorType((3, 2), DType.i64)], {"axis": 1})


def test_extreme_indices_read_nothing_outside():
    x = sample((4, 5), DType.f32)
    idx = np.array([np.iinfo(np.int64).min, -5, -4, 4, 5, np.iinfo(np.int64).max], np.int64)
    check("gather", [x, idx], {"axis": 0})
    check("gather_elements", [x, np.tile(idx[:5], (4, 1))], {"axis": 1})


def test_large_gathers_run_in_parallel():
    x = sample((8, 300, 40), DType.f32)
    idx = np.random.default_rng(1).integers(-310, 310, (500,)).astype(np.int64)
    check("gather", [x, idx], {"axis": 1}, threads=2)
    ie = np.random.default_rng(2).integers(-45, 45, (8, 300, 40)).astype(np.int32)
    check("gather_elements", [x, ie], {"axis": 2}, threads=2)


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
       dt=st.sampled_from([d for d in ALL_DTYPES if d is not DType.bool]), op=st.sampled_from(["argmax", "argmin"]),
       keepdims=st.integers(0, 1), last=st.integers(0, 1), nans=st.integers(0, 3), data=st.data())
def test_argmax_argmin(shape, dt, op, keepdims, last, nans, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = sample(shape, dt, data.draw(st.integers(0, 99)), lo=-3, hi=3)  # few distinct values: many ties
    if dt.is_float:
        x = np.round(x)
        x.flat[np.random.default_rng(nans).integers(0, x.size, nans)] = np.nan
    check(op, [x], {"axis": axis, "keepdims": keepdims, "select_last_index": last})


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_reductions_follow_numpy_on_nan_and_infinities(op, last):
    row = [1.0, np.inf, np.nan, -np.inf, np.nan, 2.0, np.inf, -np.inf]
    x = np.array([row, row[::-1], [0.0] * 8, [np.nan] * 8, [-np.inf] * 8], np.float32)
    for axis in (0, 1):
        check(op, [x], {"axis": axis, "keepdims": 1, "select_last_index": last})
    long = np.tile(np.array(row, np.float32), 9).reshape(1, -1)  # takes the vector-lane path
    check(op, [long], {"axis": 1, "keepdims": 0, "select_last_index": last})


def test_large_arg_reductions_run_in_parallel():
    x = np.round(sample((64, 100, 50), DType.f32, lo=-5, hi=5))
    for axis in range(3):
        check("argmax", [x], {"axis": axis, "keepdims": 0, "select_last_index": axis % 2}, threads=2)
