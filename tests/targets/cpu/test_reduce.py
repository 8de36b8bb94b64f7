"""CPU reduction kernels against the interpreter: every reduction, every element type it
accepts, hypothesis-chosen shapes and axes (both loop shapes: innermost axis reduced or kept),
empty axes, NaN and infinities, integer wrap-around and truncating integer means."""

import itertools

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.errors import ShapeError
from irc.ir.ops import REGISTRY
from irc.ir.types import DType, TensorType
from irc.targets.cpu.kernels import KERNELS
from tests.support.marks import params
from tests.targets.cpu.arrays import ALL_DTYPES, FLOAT_DTYPES, sample, tolerance
from tests.targets.harness import assert_matches_interp, one_op_graph

REDUCTIONS = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1", "reduce_l2",
              "reduce_sum_square", "reduce_log_sum", "reduce_log_sum_exp"]
#: value ranges that keep products and sums of squares finite in most element types
RANGE = {"reduce_prod": (-2, 2), "reduce_sum_square": (-20, 20), "reduce_l2": (-20, 20), "reduce_log_sum": (0, 10)}


def check(op, x, axes, keepdims=1, **options):
    g = one_op_graph(op, [TensorType.of(x)], {"axes": tuple(axes), "keepdims": keepdims})
    with np.errstate(all="ignore"):  # integer wrap-around and log of negatives, in numpy as in irc
        assert_matches_interp(g, [x], **tolerance(DType.from_numpy(x.dtype)), **options)


@pytest.mark.parametrize("op", params(REDUCTIONS, fast={"reduce_sum", "reduce_max"}))
@settings(max_examples=25, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7), dt=st.sampled_from(ALL_DTYPES),
       keepdims=st.integers(0, 1), data=st.data())
def test_reduction(op, shape, dt, keepdims, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True)) if shape else []
    lo, hi = RANGE.get(op, (-50, 50))
    try:
        check(op, sample(shape, dt, data.draw(st.integers(0, 99)), lo, hi), sorted(axes), keepdims)
    except ShapeError:  # a float-only reduction of integers, a mean over nothing, ...
        reject()


@pytest.mark.parametrize("op", params(REDUCTIONS, fast={"reduce_sum", "reduce_max"}))
def test_every_axis_set_of_a_vector_sized_tensor(op):
    """Runs long enough for the wide vector steps, their tails and the stack rows of
    accumulators (innermost axis kept), in every combination of reduced axes."""
    lo, hi = RANGE.get(op, (-50, 50))
    x = sample((3, 37, 70), DType.f32, 1, lo, hi)
    for r in range(4):
        for axes in itertools.combinations(range(3), r):
            check(op, x, axes, keepdims=r % 2)


@pytest.mark.parametrize("dt", [DType.i8, DType.u8, DType.i32, DType.i64, DType.u64])
def test_integer_sums_wrap_and_means_truncate_toward_zero(dt):
    info = np.iinfo(dt.numpy)
    x = np.array([[info.max, info.max, 1, 0], [info.min, -1 if info.min else 3, 2, 0], [-7 if info.min else 7, 2, 0, 0]],
                 dt.numpy)
    for op in ("reduce_sum", "reduce_mean", "reduce_prod", "reduce_l1", "reduce_sum_square", "reduce_max", "reduce_min"):
        for axes in ((0,), (1,), (0, 1)):
            check(op, x, axes)


@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=str)
def test_nan_and_infinities(dt):
    rows = [[1.0, np.nan, 3.0, -np.inf], [np.inf, 2.0, -1.0, 0.5], [-np.inf, -np.inf, -np.inf, -np.inf],
            [np.inf, 1.0, np.inf, 2.0], [1.0, 2.0, 3.0, 4.0]]
    x = np.array(rows * 9, np.float64).astype(dt.numpy)
    for op in ("reduce_max", "reduce_min", "reduce_sum", "reduce_log_sum_exp", "reduce_l2", "reduce_mean"):
        for axes in ((0,), (1,)):
            check(op, x, axes)


@pytest.mark.parametrize("op", ["reduce_max", "reduce_min"])
def test_bool_max_is_any_and_min_is_all(op):
    x = np.array([[True, False, False], [True, True, True], [False, False, False]] * 30)
    for axes in ((0,), (1,), (0, 1), ()):
        check(op, x, axes)


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "reduce_prod", "reduce_log_sum_exp", "reduce_min"])
def test_reducing_an_empty_axis_gives_the_identity(op):
    for dt in (DType.f32, DType.f16) if op == "reduce_log_sum_exp" else (DType.f32, DType.i32, DType.u8):
        check(op, np.zeros((3, 0, 2), dt.numpy), (1,))


def test_large_reductions_run_in_parallel():
    x = sample((24, 96, 80), DType.f32, 3, -3, 3)
    for op in ("reduce_sum", "reduce_max", "reduce_log_sum_exp"):
        for axes in ((2,), (1,), (0, 2), (0, 1, 2)):
            check(op, x, axes, threads=2)


def test_every_shape_index_and_reduce_op_has_a_cpu_kernel():
    families = ("irc.ir.ops.shape", "irc.ir.ops.index", "irc.ir.ops.reduce")
    ops = [name for name, d in REGISTRY.items() if d.infer.__module__ in families]
    assert "reshape" in ops and "argmax" in ops and "reduce_sum" in ops
    assert [op for op in ops if op not in KERNELS] == []
