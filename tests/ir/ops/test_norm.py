"""batch_norm, instance_norm, layer_norm, lrn, softmax and log_softmax: references against
onnxruntime on hypothesis-chosen shapes and attributes, numerical stability, and the errors bad
shapes give."""

import numpy as np
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
from irc.ir.types import DType, TensorType

RTOL, ATOL = 1e-4, 1e-5


def _model(op_type, inputs, attrs, opset=17):
    ins = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in enumerate(inputs)]
    node = helper.make_node(op_type, [f"i{k}" for k in range(len(inputs))], ["y"], **attrs)
    out = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(inputs[0].dtype), inputs[0].shape)
    return helper.make_model(helper.make_graph([node], "t", ins, [out]), opset_imports=[helper.make_opsetid("", opset)])


def _check_against_ort(op_type, inputs, attrs, rtol=RTOL, atol=ATOL):
    m = _model(op_type, inputs, attrs)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {f"i{k}": a for k, a in enumerate(inputs)})[0]
    got = interpret(import_onnx(m), inputs)[0]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return got


shapes = hnp.array_shapes(min_dims=2, max_dims=5, max_side=5)
seeds = st.integers(0, 2**16)


@settings(max_examples=60, deadline=None)
@given(shapes, st.sampled_from([1e-5, 1e-3, 0.5]), seeds)
def test_batch_norm_matches_onnxruntime(shape, epsilon, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    scale, bias, mean = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.1, 2.0, c).astype(np.float32)
    _check_against_ort("BatchNormalization", [x, scale, bias, mean, var], {"epsilon": epsilon})


@settings(max_examples=60, deadline=None)
@given(hnp.array_shapes(min_dims=3, max_dims=5, min_side=2, max_side=5), st.sampled_from([1e-5, 1e-2]), seeds)
def test_instance_norm_matches_onnxruntime(shape, epsilon, seed):
    # Sides >= 2: onnxruntime's one-pass variance E[x^2] - E[x]^2 is off by rounding where the true
    # variance is 0 (a single spatial element), which epsilon 1e-5 does not hide; irc's is exactly 0.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    scale, bias = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    _check_against_ort("InstanceNormalization", [x, scale, bias], {"epsilon": epsilon})


@settings(max_examples=80, deadline=None)
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), st.data(), st.booleans(), st.booleans(), seeds)
def test_layer_norm_matches_onnxruntime(shape, data, with_bias, full_scale, seed):
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    normalized = shape[axis % rank:]
    # Scale and bias are the normalized shape, or a trailing part of it (broadcast one way).
    pshape = normalized if full_scale else normalized[data.draw(st.integers(0, len(normalized))):]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 - 1).astype(np.float32)
    inputs = [x, rng.standard_normal(pshape).astype(np.float32)]
    if with_bias:
        inputs.append(rng.standard_normal(pshape).astype(np.float32))
    _check_against_ort("LayerNormalization", inputs, {"axis": axis, "epsilon": 1e-5})


@settings(max_examples=60, deadline=None)
@given(hnp.array_shapes(min_dims=4, max_dims=4, max_side=6), st.sampled_from([1, 3, 5]),
       st.floats(1e-4, 1.0), st.floats(0.5, 1.0), st.floats(0.5, 2.0), seeds)
def test_lrn_matches_onnxruntime(shape, size, alpha, beta, bias, seed):
    # onnxruntime takes 4-D inputs and odd sizes only; irc also takes others (tested below).
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    _check_against_ort("LRN", [x], {"size": size, "alpha": alpha, "beta": beta, "bias": bias})


def test_lrn_even_size_window_by_hand():
    x = np.arange(1, 5, dtype=np.float64).reshape(1, 4, 1)
    # size 2: channel c sums squares over [c, c + 1] (floor((2-1)/2) = 0 before, ceil = 1 after)
    y = get_op("lrn").reference(x, size=2, alpha=2.0, beta=1.0, bias=1.0)
    sq = np.array([1 + 4, 4 + 9, 9 + 16, 16])
    np.testing.assert_allclose(y.ravel(), x.ravel() / (1 + 2.0 / 2 * sq))


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@settings(max_examples=40, deadline=None)
@given(hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), st.data(), st.sampled_from([1.0, 1000.0]), seeds)
def test_softmaxes_match_onnxruntime(op_type, shape, data, magnitude, seed):
    # magnitude 1000: exp would overflow without subtracting the maximum first.
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * magnitude).astype(np.float32)
    got = _check_against_ort(op_type, [x], {"axis": axis})
    assert np.isfinite(got).all() or op_type == "LogSoftmax"
    if op_type == "Softmax":
        np.testing.assert_allclose(got.sum(axis=axis), 1, rtol=1e-5)


def test_log_softmax_stays_finite_where_softmax_underflows():
    x = np.array([[0.0, -200.0, 200.0]], np.float32)
    y = get_op("log_softmax").reference(x, axis=1)
    np.testing.assert_allclose(y, [[-200.0, -400.0, 0.0]], rtol=1e-6)


def test_default_axes_are_resolved():
    t = TensorType((2, 3, 4), DType.f32)
    assert get_op("softmax").type_check([t], {})[0] == {"axis": 2}
    attrs, _ = get_op("layer_norm").type_check([t, TensorType((4,), DType.f32)], {"axis": -2})
    assert attrs == {"axis": 1, "epsilon": 1e-5}


def _types(*shapes):
    return [TensorType(s, DType.f32) for s in shapes]


@pytest.mark.parametrize("op,shapes,attrs,message", [
    ("batch_norm", [(2, 3, 4), (3,), (3,), (4,), (3,)], {}, r"mean f32\[4\] must have shape \[3\]"),
    ("batch_norm", [(3,), (3,), (3,), (3,), (3,)], {}, "rank >= 2"),
    ("instance_norm", [(2, 3, 4), (2,), (3,)], {}, r"scale f32\[2\] must have shape \[3\]"),
    ("instance_norm", [(2, 3), (3,), (3,)], {}, "at least one spatial axis"),
    ("layer_norm", [(2, 3, 4), (3,)], {}, r"must broadcast to x .*usually shape \[4\]"),
    ("layer_norm", [(2, 3, 4), (4,)], {"axis": 3}, "axis 3 is out of range for rank 3"),
    ("lrn", [(2, 3)], {"size": 3}, "rank >= 3"),
    ("lrn", [(2, 3, 4)], {"size": 0}, "size must be >= 1"),
    ("softmax", [(2, 3)], {"axis": -3}, "axis -3 is out of range"),
    ("log_softmax", [()], {"axis": 0}, "rank >= 1"),
])
def test_norm_errors_name_what_was_expected(op, shapes, attrs, message):
    with pytest.raises(ShapeError, match=message):
        get_op(op).type_check(_types(*shapes), attrs)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "layer_norm", "instance_norm", "batch_norm", "lrn"])
def test_half_precision_keeps_its_type(op):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4))
    vec = np.abs(rng.standard_normal(3)) + 0.5
    args = {"softmax": ([], {"axis": 1}), "log_softmax": ([], {"axis": 1}),
            "layer_norm": ([rng.standard_normal(4)], {"axis": 2, "epsilon": 1e-5}),
            "instance_norm": ([vec, vec], {"epsilon": 1e-5}), "batch_norm": ([vec] * 4, {"epsilon": 1e-5}),
            "lrn": ([], {"size": 3, "alpha": 1e-4, "beta": 0.75, "bias": 1.0})}[op]
    ref = get_op(op).reference
    wide = ref(x, *args[0], **args[1])
    half = ref(x.astype(np.float16), *(a.astype(np.float16) for a in args[0]), **args[1])
    assert half.dtype == np.float16
    # float16 keeps 11 significant bits: inputs and result each round by up to 2**-11 relative.
    np.testing.assert_allclose(half, wide, rtol=5e-3, atol=5e-3)
