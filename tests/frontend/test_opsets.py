"""Models of every opset from 7 to the newest the installed onnx defines, each written in the
operator forms of its own opset (Clip's bounds and Slice's starts as attributes or inputs,
Softmax over the flattened trailing axes before opset 13 and over one axis from it on), import
and compute what those definitions say.

The expected values are computed here with numpy: onnx's reference evaluator applies the
opset-13 Softmax to every opset."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import irc
from irc.errors import ModelError
from irc.frontend.onnx.opset import MIN_OPSET, changed_ops, upgrade
from tests.support.marks import params

NEWEST = onnx.defs.onnx_opset_version()


def _model(opset: int) -> onnx.ModelProto:
    """x[2,3,4] -> Softmax(axis 1) -> Clip -> Slice -> Pad -> ReduceSum -> Squeeze -> Unsqueeze -> Add,
    each op written the way ``opset`` defines it."""
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def ints_in(attr, name, value, since):
        """Attribute ``attr`` before opset ``since``, an int64 input from it on."""
        return ({attr: value}, []) if opset < since else ({}, [const(name, np.array(value, np.int64))])

    nodes.append(helper.make_node("Softmax", ["x"], ["s"], axis=1))
    if opset < 11:
        nodes.append(helper.make_node("Clip", ["s"], ["c"], min=0.05, max=0.3))
    else:
        nodes.append(helper.make_node("Clip", ["s", const("lo", np.float32(0.05)), const("hi", np.float32(0.3))], ["c"]))
    if opset < 10:
        nodes.append(helper.make_node("Slice", ["c"], ["sl"], starts=[0], ends=[3], axes=[2]))
    else:
        bounds = [const(k, np.array([v], np.int64)) for k, v in (("st", 0), ("en", 3), ("ax", 2))]
        nodes.append(helper.make_node("Slice", ["c", *bounds], ["sl"]))
    pads = [0, 0, 1, 0, 0, 1]
    if opset < 11:
        nodes.append(helper.make_node("Pad", ["sl"], ["p"], pads=pads, value=0.5))
    else:
        pad_in = [const("pads", np.array(pads, np.int64)), const("pv", np.float32(0.5))]
        nodes.append(helper.make_node("Pad", ["sl", *pad_in], ["p"]))
    attrs, extra = ints_in("axes", "raxes", [1], 13)
    nodes.append(helper.make_node("ReduceSum", ["p", *extra], ["r"], keepdims=1, **attrs))
    attrs, extra = ints_in("axes", "saxes", [1], 13)
    nodes.append(helper.make_node("Squeeze", ["r", *extra], ["q"], **attrs))
    attrs, extra = ints_in("axes", "uaxes", [0], 13)
    nodes.append(helper.make_node("Unsqueeze", ["q", *extra], ["u"], **attrs))
    nodes.append(helper.make_node("Add", ["u", const("bias", np.linspace(-1, 1, 5, dtype=np.float32))], ["y"]))
    g = helper.make_graph(nodes, f"opset{opset}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=7 if opset < 15 else 8)


def _expected(x: np.ndarray, opset: int) -> np.ndarray:
    z = x.reshape(2, 12) if opset < 13 else x  # Softmax(axis=1): over axes 1.. before 13, axis 1 from it on
    e = np.exp(z - z.max(axis=1, keepdims=True))
    s = (e / e.sum(axis=1, keepdims=True)).reshape(2, 3, 4)
    p = np.pad(np.clip(s, 0.05, 0.3)[:, :, 0:3], [(0, 0), (0, 0), (1, 1)], constant_values=0.5)
    return p.sum(axis=1)[None] + np.linspace(-1, 1, 5, dtype=np.float32)


@pytest.mark.parametrize("opset", params(range(7, NEWEST + 1), fast={"7", "10", "12", "13", str(NEWEST)}))
def test_opset_imports_and_matches_the_reference(opset):
    model = _model(opset)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(opset).standard_normal((2, 3, 4)).astype(np.float32)
    got = irc.compile(model, "interp")(x)
    np.testing.assert_allclose(got, _expected(x, opset), rtol=1e-5, atol=1e-6)


def test_unchanged_ops_are_relabelled_and_changed_ones_converted():
    old = _model(9)
    assert changed_ops(old) == ["Add", "Clip", "Pad", "ReduceSum", "Slice", "Softmax", "Squeeze", "Unsqueeze"]
    up = upgrade(old)
    assert up.opset_import[0].version == MIN_OPSET
    assert "Clip" in [n.op_type for n in up.graph.node]
    assert not any(a.name == "min" for n in up.graph.node for a in n.attribute)  # Clip's bounds became inputs

    g = helper.make_graph([helper.make_node("And", ["a", "b"], ["y"])], "and7",
                          [helper.make_tensor_value_info(n, TensorProto.BOOL, [3]) for n in "ab"],
                          [helper.make_tensor_value_info("y", TensorProto.BOOL, [3])])
    and7 = helper.make_model(g, opset_imports=[helper.make_opsetid("", 7)], ir_version=7)
    assert changed_ops(and7) == []
    up = upgrade(and7)
    assert up.opset_import[0].version == MIN_OPSET and up.graph == and7.graph
    assert and7.opset_import[0].version == 7  # the caller's model is left as it was
    a, b = np.array([True, True, False]), np.array([True, False, False])
    np.testing.assert_array_equal(irc.compile(and7, "interp")(a, b), a & b)


def test_a_failed_conversion_is_a_model_error_naming_the_op():
    # BatchNormalization before opset 9 could normalize per activation (spatial=0); later opsets cannot
    names = ["x", "scale", "b", "mean", "var"]
    g = helper.make_graph([helper.make_node("BatchNormalization", names, ["y"], spatial=0)], "bn8",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])]
                          + [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 4]) for n in names[1:]],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 8)], ir_version=7)
    with pytest.raises(ModelError, match="from opset 8 to 13.*BatchNormalization.*spatial must have value 1"):
        irc.compile(model, "interp")
