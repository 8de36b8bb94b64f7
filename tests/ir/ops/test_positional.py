"""The numpy references of the positional ops against onnxruntime on hypothesis-chosen shapes,
attributes and in-range indices (ONNX leaves out-of-range and, for plain scatters, repeated
indices undefined; irc's own definitions of those are checked here directly), and the shape
rules' refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper, numpy_helper

from irc.errors import ShapeError
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType
from tests.support.oracle import ort_run

SETTINGS = settings(max_examples=6, deadline=None)


def _ort(op_type, inputs, attrs=None, consts=(), n_out=1, opset=18):
    """onnxruntime's outputs of one ``op_type`` node over ``inputs`` (graph inputs) and ``consts``
    (initializers, after them)."""
    ins = [helper.make_tensor_value_info(f"x{i}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for i, a in enumerate(inputs)]
    names = [f"x{i}" for i in range(len(inputs))] + [f"c{i}" for i in range(len(consts))]
    inits = [numpy_helper.from_array(np.asarray(c), f"c{i}") for i, c in enumerate(consts)]
    outs = [helper.make_empty_tensor_value_info(f"y{i}") for i in range(n_out)]
    node = helper.make_node(op_type, names, [o.name for o in outs], **(attrs or {}))
    g = helper.make_graph([node], "t", ins, outs, initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return ort_run(model, {f"x{i}": a for i, a in enumerate(inputs)})


def _ref(op, arrays, attrs):
    d = get_op(op)
    attrs, _ = d.type_check([TensorType.of(a) for a in arrays], attrs)
    return d.evaluate(arrays, attrs)


def _same(got, want):
    for a, e in zip(got, want):
        assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6, equal_nan=True)


floats = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.floats(-20, 20, width=32) | st.sampled_from([np.nan, np.inf, -np.inf]))


@SETTINGS
@given(x=floats)
def test_isnan_isinf(x):
    _same(_ref("isnan", [x], {}), _ort("IsNaN", [x]))
    for neg, pos in ((0, 1), (1, 0), (1, 1)):
        attrs = {"detect_negative": neg, "detect_positive": pos}
        _same(_ref("isinf", [x], attrs), _ort("IsInf", [x], attrs))


@SETTINGS
@given(dt=st.sampled_from([np.int32, np.int64, np.float32]), fmod=st.integers(0, 1),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), seed=st.integers(0, 99))
def test_mod(dt, fmod, shape, seed):
    rng = np.random.default_rng(seed)
    a = (rng.uniform(-30, 30, shape)).astype(dt)
    b = rng.choice([-7, -3, -2, 2, 3, 5], shape[-1:]).astype(dt)
    if np.dtype(dt).kind == "f" and not fmod:
        return  # onnxruntime refuses fmod=0 on floats (newer ONNX allows it; the conformance cases cover it)
    _same(_ref("mod", [a, b], {"fmod": fmod}), _ort("Mod", [a, b], {"fmod": fmod}))


@st.composite
def gather_nd_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    b = draw(st.integers(0, len(shape) - 1))
    q = draw(st.integers(1, len(shape) - b))
    mid = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    dims = np.array(shape[b:b + q])
    idx = rng.integers(-dims, dims, shape[:b] + mid + (q,)).astype(np.int64)
    return rng.standard_normal(shape).astype(np.float32), idx, b


@SETTINGS
@given(case=gather_nd_case())
def test_gather_nd(case):
    x, idx, b = case
    _same(_ref("gather_nd", [x, idx], {"batch_dims": b}), _ort("GatherND", [x, idx], {"batch_dims": b}))


@SETTINGS
@given(reduction=st.sampled_from(["none", "add", "mul", "max", "min"]), data=st.data())
def test_scatter_nd(reduction, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    q = data.draw(st.integers(1, len(shape)))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    n = int(np.prod(shape[:q]))
    flat = rng.permutation(n)[:rng.integers(1, n + 1)] if reduction == "none" else rng.integers(0, n, 5)
    idx = np.stack(np.unravel_index(flat, shape[:q]), axis=-1).astype(np.int64)
    x = rng.standard_normal(shape).astype(np.float32)
    upd = rng.standard_normal((len(idx),) + shape[q:]).astype(np.float32)
    _same(_ref("scatter_nd", [x, idx, upd], {"reduction": reduction}),
          _ort("ScatterND", [x, idx, upd], {"reduction": reduction}))


@SETTINGS
@given(reduction=st.sampled_from(["none", "add", "mul", "max", "min"]), data=st.data())
def test_scatter_elements(reduction, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    ishape = tuple(int(rng.integers(1, d + 1)) for d in shape)
    if reduction == "none":
        idx = np.argsort(rng.random(shape), axis=axis)[tuple(slice(0, m) for m in ishape)]
    else:
        idx = rng.integers(-shape[axis], shape[axis], ishape)
    x = rng.standard_normal(shape).astype(np.float32)
    upd = rng.standard_normal(ishape).astype(np.float32)
    attrs = {"axis": axis, "reduction": reduction}
    _same(_ref("scatter_elements", [x, idx.astype(np.int64), upd], attrs),
          _ort("ScatterElements", [x, idx.astype(np.int64), upd], attrs))


def test_repeated_and_out_of_range_indices_as_irc_defines_them():
    x = np.zeros((3,), np.float32)
    idx = np.array([[1], [1], [5], [-1]], np.int64)
    upd = np.array([1, 2, 9, 4], np.float32)
    np.testing.assert_array_equal(_ref("scatter_nd", [x, idx, upd], {"reduction": "none"})[0], [0, 2, 4])
    np.testing.assert_array_equal(_ref("scatter_nd", [x, idx, upd], {"reduction": "add"})[0], [0, 3, 4])
    got = _ref("gather_nd", [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[1, 2], [2, 0], [-1, -3]])], {})
    np.testing.assert_array_equal(got[0], [5, 0, 3])


@SETTINGS
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=st.floats(-9, 9, width=32)),
       exclusive=st.integers(0, 1), reverse=st.integers(0, 1), data=st.data())
def test_cumsum(x, exclusive, reverse, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    attrs = {"exclusive": exclusive, "reverse": reverse}
    want = _ort("CumSum", [x], attrs, consts=[np.array(axis, np.int64)])
    got = _ref("cumsum", [x], {"axis": axis, **attrs})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=6), upper=st.integers(0, 1), k=st.integers(-7, 7))
def test_trilu(shape, upper, k):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    _same(_ref("trilu", [x], {"upper": upper, "k": k}), _ort("Trilu", [x], {"upper": upper}, [np.array(k, np.int64)]))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), depth=st.integers(1, 6),
       data=st.data())
def test_one_hot(shape, depth, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    idx = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-depth, depth, shape).astype(np.int64)
    values = np.array([0.5, 3], np.float32)
    _same(_ref("one_hot", [idx, values], {"depth": depth, "axis": axis}),
          _ort("OneHot", [idx], {"axis": axis}, [np.array(depth, np.int64), values]))


@SETTINGS
@given(dt=st.sampled_from([np.float32, np.int64]), largest=st.integers(0, 1),
       shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), data=st.data())
def test_topk(dt, largest, shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    k = data.draw(st.integers(0, shape[axis]))
    x = np.random.default_rng(data.draw(st.integers(0, 99))).integers(-3, 4, shape).astype(dt)  # ties
    attrs = {"axis": axis, "largest": largest, "sorted": 1}
    _same(_ref("topk", [x], {"k": k, **attrs}), _ort("TopK", [x], attrs, [np.array([k], np.int64)], n_out=2))


@pytest.mark.parametrize("op, types, attrs, message", [
    ("gather_nd", [TensorType((2, 3), DType.f32), TensorType((3, 1), DType.i64)], {"batch_dims": 1}, "must agree"),
    ("gather_nd", [TensorType((2, 3), DType.f32), TensorType((1, 3), DType.i64)], {}, "address 3 axes"),
    ("gather_nd", [TensorType((2, 3), DType.f32), TensorType((1, 1), DType.f32)], {}, "i32 or i64"),
    ("scatter_nd", [TensorType((2, 3), DType.f32), TensorType((4, 1), DType.i64), TensorType((4, 2), DType.f32)], {},
     r"must have shape \[4, 3\]"),
    ("scatter_nd", [TensorType((2,), DType.bool), TensorType((1, 1), DType.i64), TensorType((1,), DType.bool)],
     {"reduction": "add"}, "needs numeric data"),
    ("scatter_elements", [TensorType((2, 3), DType.f32), TensorType((2, 4), DType.i64), TensorType((2, 4), DType.f32)],
     {"axis": 0}, "fit inside"),
    ("topk", [TensorType((2, 3), DType.f32)], {"k": 4}, r"k = 4 must be in \[0, 3\]"),
    ("one_hot", [TensorType((2,), DType.i64), TensorType((3,), DType.f32)], {"depth": 3}, "two elements"),
    ("trilu", [TensorType((3,), DType.f32)], {}, "rank >= 2"),
    ("cumsum", [TensorType((3,), DType.bool)], {}, "numeric"),
    ("mod", [TensorType((3,), DType.f32), TensorType((3,), DType.i32)], {}, "one element type"),
    ("isnan", [TensorType((3,), DType.i32)], {}, "float"),
])
def test_shape_rules_refuse(op, types, attrs, message):
    with pytest.raises(ShapeError, match=message):
        get_op(op).type_check(types, attrs)
