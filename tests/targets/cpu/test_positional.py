"""CPU kernels of the positional and classifying ops (isnan, isinf, mod, gather_nd, scatter_nd,
scatter_elements, cumsum, trilu, one_hot, topk) against the interpreter, on shapes, attributes and
indices hypothesis picks; out-of-range indices included (they read 0 or write nothing, never
outside a buffer)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from irc.ir import GraphBuilder
from irc.ir.types import DType, TensorType
from tests.targets.cpu.arrays import FLOAT_DTYPES, INT_DTYPES, sample, tolerance
from tests.targets.harness import assert_matches_interp, one_op_graph

NUMERIC = FLOAT_DTYPES + INT_DTYPES
FAST = settings(max_examples=3, deadline=None)
MORE = settings(max_examples=60, deadline=None)


def check(op, xs, attrs, **options):
    dt = DType.from_numpy(xs[0].dtype)
    tol = tolerance(dt) if dt in (DType.f16, DType.bf16) else {}
    assert_matches_interp(one_op_graph(op, [TensorType.of(x) for x in xs], attrs), xs, **tol, **options)


def _indices(draw, n_rows, dims, it, slack=2):
    """An (n_rows, len(dims)) index array, each column in [-d - slack, d + slack)."""
    cols = [np.array(draw(st.lists(st.integers(-d - slack, d + slack - 1), min_size=n_rows, max_size=n_rows)),
                     np.int64) for d in dims]
    return np.stack(cols, axis=-1).astype(it) if cols else np.zeros((n_rows, 0), it)


def test_isnan_isinf_on_specials():
    """isnan and every isinf variant of every float type, as outputs of one graph."""
    b = GraphBuilder("classify")
    xs, outs = [], []
    for dt in FLOAT_DTYPES:
        x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -3.0, 65504.0], dt.numpy)
        v = b.input(f"x_{dt.value}", TensorType.of(x))
        xs.append(x)
        outs += [b.op("isnan", v)] + [b.op("isinf", v, detect_negative=n, detect_positive=p)
                                      for n in (0, 1) for p in (0, 1)]
    assert_matches_interp(b.build(*outs), xs)


@st.composite
def mod_case(draw):
    dt = draw(st.sampled_from(NUMERIC))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    bshape = shape[draw(st.integers(0, len(shape))):]
    a, b = sample(shape, dt, seed=1), sample(bshape, dt, seed=2, lo=-7, hi=7)
    if dt.is_float:
        b = np.where(np.abs(b.astype(np.float32)) < 0.5, 2, b).astype(dt.numpy)  # (x mod ~0 is ill-conditioned)
    else:
        b.reshape(-1)[:1] = 0  # a remainder by zero is defined as 0
    return "mod", [a, b], {"fmod": draw(st.integers(0, 1))}


def test_mod_edges():
    a = np.array([0, -0.0, -3, 3, -1, 1, np.inf, 1, np.nan, 5.5, -5.5], np.float32)
    b = np.array([-2, 2, np.inf, np.inf, -np.inf, -np.inf, 2, 0, 2, -2, 2], np.float32)
    for fmod in (0, 1):
        check("mod", [a, b], {"fmod": fmod})
    ints = np.array([-128, -128, 127, -7, 7, 0], np.int8), np.array([-1, 0, -1, 3, -3, -5], np.int8)
    for fmod in (0, 1):
        check("mod", list(ints), {"fmod": fmod})


@st.composite
def gather_nd_case(draw):
    dt = draw(st.sampled_from(NUMERIC))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    b = draw(st.integers(0, len(shape) - 1))
    q = draw(st.integers(1, len(shape) - b))
    mid = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    rows = int(np.prod(shape[:b], dtype=np.int64) * np.prod(mid, dtype=np.int64))
    it = draw(st.sampled_from([np.int32, np.int64]))
    idx = _indices(draw, rows, shape[b:b + q], it).reshape(shape[:b] + mid + (q,))
    return "gather_nd", [sample(shape, dt), idx], {"batch_dims": b}


@st.composite
def scatter_nd_case(draw):
    dt = draw(st.sampled_from(NUMERIC + [DType.bool]))
    reduction = "none" if dt is DType.bool else draw(st.sampled_from(["none", "add", "mul", "max", "min"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    q = draw(st.integers(1, len(shape)))
    mid = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4))
    idx = _indices(draw, int(np.prod(mid)), shape[:q], np.int64).reshape(mid + (q,))
    updates = sample(mid + shape[q:], dt, seed=3, lo=-3, hi=3)
    return "scatter_nd", [sample(shape, dt, lo=-3, hi=3), idx, updates], {"reduction": reduction}


@st.composite
def scatter_elements_case(draw):
    dt = draw(st.sampled_from(NUMERIC))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    axis = draw(st.integers(0, len(shape) - 1))
    ishape = tuple(draw(st.integers(0, d)) if k != axis else draw(st.integers(0, 6)) for k, d in enumerate(shape))
    n = shape[axis]
    idx = np.array(draw(st.lists(st.integers(-n - 2, n + 1), min_size=int(np.prod(ishape)),
                                 max_size=int(np.prod(ishape)))), np.int32).reshape(ishape)
    updates = sample(ishape, dt, seed=4, lo=-3, hi=3)
    attrs = {"axis": axis, "reduction": draw(st.sampled_from(["none", "add", "mul", "max", "min"]))}
    return "scatter_elements", [sample(shape, dt, lo=-3, hi=3), idx, updates], attrs


@st.composite
def cumsum_case(draw):
    dt = draw(st.sampled_from([DType.f32, DType.f64, DType.i32, DType.i64, DType.u8]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    attrs = {"axis": draw(st.integers(-len(shape), len(shape) - 1)), "exclusive": draw(st.integers(0, 1)),
             "reverse": draw(st.integers(0, 1))}
    return "cumsum", [sample(shape, dt, lo=-5, hi=5)], attrs


@pytest.mark.slow
def test_cumsum_long_rows_in_parallel():
    check("cumsum", [sample((64, 700, 3), DType.f32, lo=-1, hi=1)], {"axis": 1, "exclusive": 1, "reverse": 1},
          threads=2)


@st.composite
def trilu_case(draw):
    dt = draw(st.sampled_from([DType.f32, DType.i64, DType.bool, DType.bf16]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6))
    return "trilu", [sample(shape, dt)], {"upper": draw(st.integers(0, 1)), "k": draw(st.integers(-7, 7))}


@st.composite
def one_hot_case(draw):
    it = draw(st.sampled_from([DType.i64, DType.i32, DType.f32, DType.u8]))
    vt = draw(st.sampled_from([DType.f32, DType.i64]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    depth = draw(st.integers(1, 6))
    idx = sample(shape, it, seed=5, lo=-depth - 2, hi=depth + 2)
    if it is DType.f32:
        idx.reshape(-1)[:1] = np.nan
    attrs = {"depth": depth, "axis": draw(st.integers(-len(shape) - 1, len(shape)))}
    return "one_hot", [idx, np.array([2, 7], vt.numpy)], attrs


@st.composite
def topk_case(draw):
    dt = draw(st.sampled_from([DType.f32, DType.f16, DType.i32, DType.u8, DType.i64]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    x = sample(shape, dt, lo=-4, hi=4)  # few distinct values: ties everywhere
    if dt.is_float:
        x = np.round(x).astype(dt.numpy)
        x.reshape(-1)[::5] = np.nan
    attrs = {"k": draw(st.integers(0, shape[axis])), "axis": axis, "largest": draw(st.integers(0, 1)), "sorted": 1}
    return "topk", [x], attrs


@pytest.mark.parametrize("rows", [pytest.param(1, marks=pytest.mark.slow), 300])
def test_topk_sorted_input_is_the_worst_case_and_runs_in_parallel(rows):
    x = np.tile(np.arange(500, dtype=np.float32), (rows, 1))
    check("topk", [x], {"k": 40, "axis": 1, "largest": 1, "sorted": 1}, threads=2)


CASES = {"mod": mod_case, "gather_nd": gather_nd_case, "scatter_nd": scatter_nd_case,
         "scatter_elements": scatter_elements_case, "cumsum": cumsum_case, "trilu": trilu_case,
         "one_hot": one_hot_case, "topk": topk_case}


@pytest.mark.parametrize("op", sorted(CASES))
@FAST
@given(data=st.data())
def test_op_matches_interp(op, data):
    check(*data.draw(CASES[op]()))


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(CASES))
@MORE
@given(data=st.data())
def test_op_matches_interp_on_many_cases(op, data):
    check(*data.draw(CASES[op]()))
