"""Element-wise ops: broadcasting inference against numpy, references against onnxruntime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from irc.errors import ShapeError
from irc.frontend.onnx import import_onnx
from irc.ir import interpret
from irc.ir.ops import get_op
from irc.ir.ops.registry import broadcast_shapes
from irc.ir.types import DType, TensorType


@given(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=5, max_side=4))
def test_broadcast_matches_numpy(shapes):
    assert broadcast_shapes(*shapes.input_shapes) == shapes.result_shape


@given(st.lists(st.integers(2, 4), min_size=1, max_size=3), st.integers(5, 7))
def test_incompatible_shapes_are_refused(shape, other):
    with pytest.raises(ShapeError, match="do not broadcast"):
        broadcast_shapes(shape, shape[:-1] + [other])


def _one_node(op_type, inputs, attrs=None, out_type=onnx.TensorProto.FLOAT, opset=17):
    out_shape = np.broadcast_shapes(*(a.shape for a in inputs))
    ins = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in enumerate(inputs)]
    node = helper.make_node(op_type, [f"i{k}" for k in range(len(inputs))], ["y"], **(attrs or {}))
    g = helper.make_graph([node], "t", ins, [helper.make_tensor_value_info("y", out_type, out_shape)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model, inputs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {f"i{k}": a for k, a in enumerate(inputs)})[0]


def _irc(model, inputs):
    return interpret(import_onnx(model), list(inputs))[0]


UNARY = {
    "Neg": {}, "Abs": {}, "Sqrt": {}, "Exp": {}, "Log": {}, "Erf": {}, "Reciprocal": {}, "Floor": {}, "Ceil": {},
    "Round": {}, "Sign": {}, "Sin": {}, "Cos": {}, "Tanh": {}, "Sigmoid": {}, "Softplus": {}, "Softsign": {},
    "Relu": {}, "HardSwish": {}, "LeakyRelu": {"alpha": 0.2}, "Elu": {"alpha": 0.7}, "Selu": {},
    "HardSigmoid": {"alpha": 0.3, "beta": 0.4}, "Identity": {},
}
POSITIVE = {"Sqrt", "Log"}
floats = hnp.arrays(np.float32, hnp.array_shapes(max_dims=4, max_side=5),
                    elements=st.floats(-20, 20, width=32, allow_subnormal=False))


@pytest.mark.parametrize("op_type", sorted(UNARY))
@settings(max_examples=10, deadline=None)
@given(x=floats)
def test_unary_matches_onnxruntime(op_type, x):
    if op_type in POSITIVE:
        x = np.abs(x) + np.float32(0.5)
    if op_type == "Round":
        x = np.round(x * 4) / 4  # exact halves: both sides round half to even
    m = _one_node(op_type, [x], UNARY[op_type])
    np.testing.assert_allclose(_irc(m, [x]), _ort(m, [x]), rtol=1e-5, atol=1e-6)


BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"]


@pytest.mark.parametrize("op_type", BINARY)
@settings(max_examples=10, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4), data=st.data())
def test_binary_broadcast_matches_onnxruntime(op_type, shapes, data):
    a_shape, b_shape = shapes.input_shapes
    if op_type == "PRelu":  # slope broadcasts unidirectionally to x
        a_shape = shapes.result_shape
    elems = st.floats(0.5, 3, width=32) if op_type == "Pow" else st.floats(-10, 10, width=32)
    a = data.draw(hnp.arrays(np.float32, a_shape, elements=elems))
    b = data.draw(hnp.arrays(np.float32, b_shape, elements=elems))
    if op_type == "Div":
        b = np.where(np.abs(b) < 0.1, np.float32(1), b)
    m = _one_node(op_type, [a, b])
    np.testing.assert_allclose(_irc(m, [a, b]), _ort(m, [a, b]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_comparisons(op_type):
    rng = np.random.default_rng(1)
    a = rng.integers(-2, 3, (3, 4)).astype(np.float32)
    b = rng.integers(-2, 3, (4,)).astype(np.float32)
    m = _one_node(op_type, [a, b], out_type=onnx.TensorProto.BOOL)
    np.testing.assert_array_equal(_irc(m, [a, b]), _ort(m, [a, b]))


def test_integer_division_truncates_toward_zero():
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    m = _one_node("Div", [a, b], out_type=onnx.TensorProto.INT32)
    np.testing.assert_array_equal(_irc(m, [a, b]), [3, -3, -3, 3])
    np.testing.assert_array_equal(_irc(m, [a, b]), _ort(m, [a, b]))


def test_sigmoid_does_not_overflow():
    ref = get_op("sigmoid").reference
    x = np.array([-1000, -50, 0, 50, 1000], np.float32)
    with np.errstate(over="raise"):
        y = ref(x)
    np.testing.assert_allclose(y, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-4)


def test_clip_bounds_clamp_to_integer_range():
    y = get_op("clip").reference(np.array([-128, 0, 127], np.int8), min=float("-inf"), max=100.0)
    np.testing.assert_array_equal(y, [-128, 0, 100])


def test_float_only_ops_refuse_integers():
    with pytest.raises(ShapeError, match="float tensor"):
        get_op("exp").type_check([TensorType((2,), DType.i32)], {})
    with pytest.raises(ShapeError, match="one element type"):
        get_op("add").type_check([TensorType((2,), DType.i32), TensorType((2,), DType.f32)], {})
    with pytest.raises(ShapeError, match="must be bool"):
        get_op("where").type_check([TensorType((2,), DType.f32)] * 3, {})
