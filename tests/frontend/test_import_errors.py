"""Bad models and bad shape bindings: each refused with one clear IRCError."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.errors import InputError, ModelError, UnsupportedOpError
from irc.frontend.onnx import import_onnx


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def _relu_model(shape=("N", 4)):
    return _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", list(shape))], [_vi("y", list(shape))])


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_onnx(tmp_path / "nope.onnx")


def test_truncated_file(tmp_path):
    data = _relu_model((2, 4)).SerializeToString()
    p = tmp_path / "t.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not an ONNX model|invalid"):
        import_onnx(p)


def test_random_bytes():
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(ModelError):
        import_onnx(data)


def test_protobuf_that_is_not_a_model():
    tensor = numpy_helper.from_array(np.ones(3, np.float32), "t").SerializeToString()
    with pytest.raises(ModelError, match="not an ONNX model"):
        import_onnx(tensor)


def test_empty_bytes():
    with pytest.raises(ModelError, match="empty"):
        import_onnx(b"")


def test_every_unsupported_op_is_listed_in_one_error():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Bernoulli", ["a"], ["b"], name="coin1"),
        helper.make_node("Det", ["x"], ["c"], name="det1"),
        helper.make_node("Bernoulli", ["x"], ["d"], name="coin2"),
    ]
    outs = [_vi("b", None), _vi("c", None), _vi("d", None)]
    m = _model(nodes, [_vi("x", [3, 3])], outs)
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "Bernoulli (nodes: coin1, coin2)" in msg and "Det (nodes: det1)" in msg


def test_custom_domain_is_unsupported():
    n = helper.make_node("Frob", ["x"], ["y"], domain="com.example")
    m = _model([n], [_vi("x", [2])], [_vi("y", [2])])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match="com.example.Frob"):
        import_onnx(m)


def test_cycle_is_refused():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second")]
    m = _model(nodes, [_vi("x", [2])], [_vi("b", [2])])
    with pytest.raises(ModelError):
        import_onnx(m)


def test_dangling_input_is_refused():
    m = _model([helper.make_node("Add", ["x", "ghost"], ["y"], name="adder")], [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(ModelError, match="ghost"):
        import_onnx(m)


def test_dynamic_shape_needs_binding():
    with pytest.raises(InputError, match="dynamic shape \\[N,4\\]"):
        import_onnx(_relu_model())
    g = import_onnx(_relu_model(), {"x": (3, 4)})
    assert g.inputs[0].shape == (3, 4)
    assert import_onnx(_relu_model(), dynamic_default=1).inputs[0].shape == (1, 4)


def test_shape_that_contradicts_the_model():
    with pytest.raises(InputError, match="contradicts the model's \\[N,4\\]"):
        import_onnx(_relu_model(), {"x": (3, 5)})
    with pytest.raises(InputError, match="contradicts"):
        import_onnx(_relu_model(), {"x": (3, 4, 1)})
    with pytest.raises(InputError, match="unknown input"):
        import_onnx(_relu_model(), {"z": (3, 4)})


def test_declared_output_shape_must_agree():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2, 4])], [_vi("y", [2, 5])])
    with pytest.raises(ModelError, match="output 'y' is declared f32\\[2,5\\] but computes to f32\\[2,4\\]"):
        import_onnx(m)


def test_unsupported_element_type():
    m = _model([helper.make_node("Identity", ["x"], ["y"])], [_vi("x", [2], TensorProto.STRING)],
               [_vi("y", [2], TensorProto.STRING)])
    with pytest.raises(UnsupportedOpError, match="STRING"):
        import_onnx(m)


def test_old_opset_is_converted():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x", [2])], [_vi("y", [2])], opset=9)
    g = import_onnx(m)
    assert [n.op for n in g.nodes] == ["relu"]


def test_initializers_become_parameters_and_constants_fold():
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    nodes = [helper.make_node("Neg", ["w"], ["nw"]), helper.make_node("Add", ["x", "nw"], ["y"])]
    g = import_onnx(_model(nodes, [_vi("x", [4])], [_vi("y", [4])], inits=[w]))
    assert [n.op for n in g.nodes] == ["add"]
    (p,) = g.params
    assert p.name == "nw"
    np.testing.assert_array_equal(g.params[p], -np.arange(4, dtype=np.float32))


def test_graph_output_that_is_an_input_gets_an_identity():
    m = _model([], [_vi("x", [2])], [_vi("x", [2])])
    g = import_onnx(m)
    assert [n.op for n in g.nodes] == ["identity"]
    assert isinstance(onnx.ModelProto(), onnx.ModelProto)


def test_unknown_op_type_is_listed_not_a_checker_error():
    m = _model([helper.make_node("Frobnicate", ["x"], ["y"], name="f1")], [_vi("x", [2])], [_vi("y", [2])])
    with pytest.raises(UnsupportedOpError, match="Frobnicate \\(nodes: f1\\)"):
        import_onnx(m)
