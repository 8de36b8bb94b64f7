"""Inputs that set a shape inside the model (Reshape's shape, Slice's starts...) given at run
time: the model is specialized on their values, through irc.compile and the unmodified
onnx.backend interface."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import irc
from irc.backend import prepare
from irc.errors import InputError, ShapeError, UnsupportedOpError
from irc.frontend.onnx import value_inputs
from irc.frontend.onnx.importer import import_onnx


def _out(rank: int):
    """Output y of the given rank, its dimensions set by the run-time values."""
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"d{i}" for i in range(rank)])


def _model(nodes, inputs, outputs, opset=18):
    g = helper.make_graph(nodes, "m", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _reshape_model():
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                   helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                  [_out(2)])


def _slice_model():
    return _model([helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6]),
                   helper.make_tensor_value_info("starts", TensorProto.INT64, [1]),
                   helper.make_tensor_value_info("ends", TensorProto.INT64, [1]),
                   helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
                  [_out(2)])


X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


def test_reshape_shape_as_graph_input_through_the_backend():
    rep = prepare(_reshape_model())
    (y,) = rep.run([X, np.array([4, 6], np.int64)])
    np.testing.assert_array_equal(y, X.reshape(4, 6))
    assert rep.compiled.value_inputs == ["shape"]


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_new_value_recompiles_and_same_value_hits_the_cache(target):
    m = irc.compile(_slice_model(), target)
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    one, four, axis1 = np.array([1], np.int64), np.array([4], np.int64), np.array([1], np.int64)
    np.testing.assert_array_equal(m(x, one, four, axis1), x[:, 1:4])
    first = m.executable
    np.testing.assert_array_equal(m(x, np.array([2], np.int64), four, axis1), x[:, 2:4])  # new starts: recompiled
    assert m.executable is not first and len(m._cache) == 2
    np.testing.assert_array_equal(m(x + 1, one, four, axis1), x[:, 1:4] + 1)  # same value: cached
    assert m.executable is first and len(m._cache) == 2
    np.testing.assert_array_equal(m(x=x, starts=one, ends=four, axes=np.array([0], np.int64)), x[1:4])
    assert len(m._cache) == 3


def test_value_inputs_learnt_from_the_import_refusal():
    """The import rule's refusal names the ONNX input; every node of that op is covered at once."""
    model = _model([helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("Reshape", ["a", "s2"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                    helper.make_tensor_value_info("s1", TensorProto.INT64, [2]),
                    helper.make_tensor_value_info("s2", TensorProto.INT64, [3])],
                   [_out(3)])
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(model)
    assert value_inputs.refused_input(e.value) == "shape"
    assert value_inputs.needed_inputs(model, e.value) == {"s1", "s2"}
    m = irc.compile(model, "interp")
    np.testing.assert_array_equal(m(X, np.array([6, 4], np.int64), np.array([4, 3, 2], np.int64)), X.reshape(4, 3, 2))
    assert m.value_inputs == ["s1", "s2"]


def test_shape_of_a_data_input_is_not_frozen():
    """A shape computed from Shape(x) and a graph input freezes the graph input only, not x."""
    model = _model([helper.make_node("Shape", ["x"], ["sx"], end=1),
                    helper.make_node("Concat", ["sx", "rest"], ["shape"], axis=0),
                    helper.make_node("Reshape", ["x", "shape"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                    helper.make_tensor_value_info("rest", TensorProto.INT64, [2])],
                   [_out(3)])
    m = irc.compile(model, "interp")
    np.testing.assert_array_equal(m(X, np.array([4, 3], np.int64)), X.reshape(2, 4, 3))
    assert m.value_inputs == ["rest"]
    np.testing.assert_array_equal(m(X + 1, np.array([4, 3], np.int64)), X.reshape(2, 4, 3) + 1)
    assert len(m._cache) == 1


def test_errors_name_the_value_input():
    m = irc.compile(_reshape_model(), "interp")
    with pytest.raises(InputError, match="input\\(s\\) shape set shapes inside the model.*for their values when first run"):
        _ = m.executable
    with pytest.raises(InputError, match="'shape' has dtype float32"):
        m(X, np.array([4.0, 6.0], np.float32))
    with pytest.raises(InputError, match="'shape' has shape \\[3\\]; the model declares \\[2\\]"):
        m(X, np.array([4, 6, 1], np.int64))
    with pytest.raises(ShapeError, match="cannot reshape f32\\[2,3,4\\] \\(24 elements\\) to \\[5, 6\\]"):
        m(X, np.array([5, 6], np.int64))  # a value that does not fit the data


def test_prepare_still_refuses_an_unsupported_op_before_the_first_run():
    model = _model([helper.make_node("Reshape", ["x", "shape"], ["r"]),
                    helper.make_node("Foo", ["r"], ["y"], domain="example.ops")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                    helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                   [_out(2)])
    model.opset_import.append(helper.make_opsetid("example.ops", 1))
    with pytest.raises(UnsupportedOpError, match="example.ops.Foo"):
        prepare(model)


def test_an_input_refused_for_another_reason_is_not_frozen():
    err = UnsupportedOpError("element type STRING is not supported", node="n", op="Reshape")
    assert value_inputs.refused_input(err) is None
    assert value_inputs.needed_inputs(onnx.ModelProto(), err) == set()
