"""gemm and matmul: shape inference against numpy, references against onnxruntime on
hypothesis-chosen shapes and attributes, gemm's epilogue, and the errors bad shapes give."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from irc.errors import ModelError, ShapeError
from irc.frontend.onnx import import_onnx
from irc.ir import interpret
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType

RTOL, ATOL = 1e-4, 1e-5


def _model(op_type, inputs, attrs, out_rank):
    ins = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in enumerate(inputs)]
    node = helper.make_node(op_type, [f"i{k}" for k in range(len(inputs))], ["y"], **attrs)
    out = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(inputs[0].dtype),
                                        [f"d{i}" for i in range(out_rank)])
    return helper.make_model(helper.make_graph([node], "t", ins, [out]), opset_imports=[helper.make_opsetid("", 17)])


def _check_against_ort(op_type, inputs, attrs, out_rank):
    m = _model(op_type, inputs, attrs, out_rank)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {f"i{k}": a for k, a in enumerate(inputs)})[0]
    g = import_onnx(m)
    assert g.outputs[0].type == TensorType(want.shape, DType.from_numpy(want.dtype))
    got = interpret(g, inputs)[0]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def _types(*shapes, dtype=DType.f32):
    return [TensorType(s, dtype) for s in shapes]


@settings(max_examples=200)
@given(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=4))
def test_matmul_shape_inference_matches_numpy(shapes):
    a, b = shapes.input_shapes
    want = np.matmul(np.zeros(a), np.zeros(b)).shape
    _, (out,) = get_op("matmul").type_check(_types(a, b), {})
    assert out.shape == want


@settings(max_examples=60, deadline=None)
@given(hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=4), st.integers(0, 2**16))
def test_matmul_matches_onnxruntime(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes.input_shapes)
    _check_against_ort("MatMul", [a, b], {}, len(shapes.result_shape))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_matmul_other_element_types(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.integers(-9, 9, (2, 3, 4)).astype(dtype), rng.integers(-9, 9, (4, 5)).astype(dtype)
    out = get_op("matmul").reference(a, b)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, a @ b)


C_SHAPES = ["none", "scalar", "row", "vector", "column", "matrix", "one"]


def _c_shape(kind, m, n):
    return {"scalar": (), "row": (1, n), "vector": (n,), "column": (m, 1), "matrix": (m, n), "one": (1,)}[kind]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.booleans(), st.booleans(),
       st.sampled_from([1.0, 0.5, -2.0]), st.sampled_from([1.0, 0.0, 0.25]), st.sampled_from(C_SHAPES),
       st.integers(0, 2**16))
def test_gemm_matches_onnxruntime(m, k, n, trans_a, trans_b, alpha, beta, c_kind, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    inputs = [a, b] + ([] if c_kind == "none" else [rng.standard_normal(_c_shape(c_kind, m, n)).astype(np.float32)])
    attrs = {"transA": int(trans_a), "transB": int(trans_b), "alpha": alpha, "beta": beta}
    _check_against_ort("Gemm", inputs, attrs, 2)


def test_gemm_epilogue_applies_the_named_activation():
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    gemm = get_op("gemm").reference
    kw = dict(alpha=1.0, beta=1.0, trans_a=0, trans_b=0, act_alpha=0.0, act_beta=0.0)
    plain = gemm(a, b, c, act="none", **kw)
    np.testing.assert_allclose(plain, a @ b + c)
    relu = gemm(a, b, c, act="relu", **kw)
    np.testing.assert_array_equal(relu, np.maximum(plain, 0))
    leaky = gemm(a, b, c, act="leaky_relu", **{**kw, "act_alpha": 0.01})
    np.testing.assert_allclose(leaky, np.where(plain >= 0, plain, 0.01 * plain))


@pytest.mark.parametrize("act", ["add", "softmax", "bogus"])
def test_gemm_epilogue_must_be_an_activation(act):
    with pytest.raises(ModelError, match="attribute 'act'"):
        get_op("gemm").type_check(_types((2, 3), (3, 4)), {"act": act})


@pytest.mark.parametrize("shapes,attrs,message", [
    ([(2, 3), (4, 5)], {}, "A is 2x3 and B is 4x5; expected B to have 3 rows"),
    ([(2, 3), (4, 5)], {"trans_a": 1}, r"A\^T is 3x2"),
    ([(2, 3), (3, 4), (3,)], {}, r"must broadcast to the result shape \[2, 4\]"),
    ([(2, 3), (3, 4), (1, 2, 4)], {}, "must broadcast"),
    ([(2, 2, 3), (3, 4)], {}, "matrices"),
])
def test_gemm_errors_name_what_was_expected(shapes, attrs, message):
    with pytest.raises(ShapeError, match=message):
        get_op("gemm").type_check(_types(*shapes), attrs)


@pytest.mark.parametrize("shapes,message", [
    ([(2, 3), (4, 5)], "expected the second operand's second-to-last dimension to be 3"),
    ([(2, 3), (4,)], "expected the second operand's length to be 3"),
    ([(), (3,)], "rank >= 1"),
    ([(2, 2, 3), (3, 3, 4)], "do not broadcast"),
])
def test_matmul_errors_name_what_was_expected(shapes, message):
    with pytest.raises(ShapeError, match=message):
        get_op("matmul").type_check(_types(*shapes), {})


def test_mixed_element_types_are_refused():
    with pytest.raises(ShapeError, match="one element type"):
        get_op("matmul").type_check([TensorType((2, 3), DType.f32), TensorType((3, 2), DType.f64)], {})
