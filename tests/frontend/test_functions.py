"""ONNX function ops without an import rule are imported as their function bodies. Each test
removes the op's rule (where one exists) so that the body is what runs, and checks it against
numpy."""

import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.frontend.onnx.functions import expand
from irc.frontend.onnx.rules import IMPORT_RULES


def _model(node, inputs, out_shape, opset, inits=(), out_type=TensorProto.FLOAT):
    g = helper.make_graph([node], "m", inputs, [helper.make_tensor_value_info("y", out_type, out_shape)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _gelu_model():
    return _model(helper.make_node("Gelu", ["x"], ["y"]), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
                  [3, 5], 20)


def test_an_op_with_a_rule_keeps_it():
    model = _gelu_model()
    assert "Gelu" in IMPORT_RULES and expand(model) is model


def test_a_function_op_without_a_rule_runs_as_its_body(monkeypatch):
    monkeypatch.delitem(IMPORT_RULES, "Gelu")
    model = _gelu_model()
    assert "Gelu" not in [n.op_type for n in expand(model).graph.node]
    x = np.linspace(-3, 3, 15, dtype=np.float32).reshape(3, 5)
    want = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(irc.compile(model, "interp")(x), want, rtol=1e-5, atol=1e-6)


def test_a_body_built_for_the_node_types_and_attributes(monkeypatch):
    """NegativeLogLikelihoodLoss's body depends on its attributes and on whether weights are given."""
    monkeypatch.delitem(IMPORT_RULES, "NegativeLogLikelihoodLoss", raising=False)
    node = helper.make_node("NegativeLogLikelihoodLoss", ["x", "t", "w"], ["y"], reduction="mean", ignore_index=1)
    model = _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3]),
                          helper.make_tensor_value_info("t", TensorProto.INT64, [4]),
                          helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])], [], 22)
    rng = np.random.default_rng(0)
    x, t, w = rng.standard_normal((4, 3)).astype(np.float32), np.array([0, 2, 1, 2]), np.array([0.5, 2, 1.5], np.float32)
    keep = t != 1
    want = -(x[np.arange(4), t] * w[t])[keep].sum() / w[t][keep].sum()
    np.testing.assert_allclose(irc.compile(model, "interp")(x, t, w), want, rtol=1e-5)


def test_attributes_left_at_their_default_reach_the_body(monkeypatch):
    """HannWindow's body reads periodic and output_datatype, which the node leaves out."""
    monkeypatch.delitem(IMPORT_RULES, "HannWindow", raising=False)
    size = numpy_helper.from_array(np.array(8, np.int32), "n")
    model = _model(helper.make_node("HannWindow", ["n"], ["y"]), [], [8], 17, [size])
    want = np.sin(np.pi * np.arange(8) / 8) ** 2  # periodic: the window of size 9 without its last point
    np.testing.assert_allclose(irc.compile(model, "interp")(), want, rtol=1e-5, atol=1e-6)
