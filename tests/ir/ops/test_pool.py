"""max_pool, average_pool and the global pools: inferred shapes and numpy references against
onnxruntime on hypothesis-chosen windows (strides, pads, dilations, ceil_mode, count_include_pad),
auto_pad made explicit at import, and the errors bad attributes give."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from irc.errors import ShapeError
from irc.frontend.onnx import import_onnx
from irc.ir import interpret
from irc.ir.ops import get_op
from irc.ir.ops.conv import window_count
from irc.ir.types import DType, TensorType

RTOL, ATOL = 1e-4, 1e-5


def _model(op_type, x, attrs, opset=19):
    # Opset 19: AveragePool takes dilations from there on.
    dt = helper.np_dtype_to_tensor_dtype(x.dtype)
    node = helper.make_node(op_type, ["x"], ["y"], **attrs)
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", dt, x.shape)],
                          [helper.make_tensor_value_info("y", dt, [f"d{i}" for i in range(x.ndim)])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _check_against_ort(op_type, x, attrs):
    m = _model(op_type, x, attrs)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    g = import_onnx(m)
    assert g.outputs[0].type == TensorType(want.shape, DType.from_numpy(x.dtype))
    got = interpret(g, [x])[0]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    return g


@st.composite
def windows(draw):
    n = draw(st.integers(1, 3))
    kernel = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    strides = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    dilations = draw(st.lists(st.integers(1, 2), min_size=n, max_size=n))
    # onnxruntime requires each pad to be smaller than the kernel.
    pads = [draw(st.integers(0, k - 1)) for k in kernel * 2]
    size = draw(st.lists(st.integers(1, 7), min_size=n, max_size=n))
    assume(all(i + pads[a] + pads[n + a] >= (k - 1) * d + 1 for a, (i, k, d) in enumerate(zip(size, kernel, dilations))))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((draw(st.integers(1, 2)), 2, *size))
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "pads": pads,
             "ceil_mode": draw(st.integers(0, 1))}
    return x.astype(np.float32), attrs


@settings(max_examples=100, deadline=None)
@given(windows())
def test_max_pool_matches_onnxruntime(case):
    x, attrs = case
    _check_against_ort("MaxPool", x, attrs)


@settings(max_examples=100, deadline=None)
@given(windows(), st.integers(0, 1))
def test_average_pool_matches_onnxruntime(case, count_include_pad):
    x, attrs = case
    _check_against_ort("AveragePool", x, {**attrs, "count_include_pad": count_include_pad})


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["MaxPool", "AveragePool"]), st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]),
       st.lists(st.tuples(st.integers(1, 9), st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=3),
       st.integers(0, 2**16))
def test_auto_pad_is_made_explicit(op_type, auto_pad, axes, seed):
    # Dilation 1: with dilations, onnxruntime's SAME padding ignores them (irc follows the ONNX spec).
    # Strides up to the kernel size: beyond, onnxruntime computes negative SAME pads and fails
    # (irc pads by 0 there).
    size, kernel, strides = zip(*axes)
    assume(auto_pad != "VALID" or all(i >= k for i, k in zip(size, kernel)))
    assume(auto_pad == "VALID" or all(s <= k for k, s in zip(kernel, strides)))
    x = np.random.default_rng(seed).standard_normal((1, 3, *size)).astype(np.float32)
    g = _check_against_ort(op_type, x, {"auto_pad": auto_pad, "kernel_shape": list(kernel), "strides": list(strides)})
    if auto_pad != "VALID":
        assert g.outputs[0].shape[2:] == tuple(-(-i // s) for i, s in zip(size, strides))
    assert len(g.nodes[0].attrs["pads"]) == 2 * len(size)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16, np.float64])
def test_max_pool_keeps_other_element_types(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    rng = np.random.default_rng(3)
    x = (rng.integers(info.min, info.max, (1, 2, 5, 6)) if info else rng.standard_normal((1, 2, 5, 6))).astype(dtype)
    _check_against_ort("MaxPool", x, {"kernel_shape": [2, 3], "pads": [1, 1, 0, 1], "strides": [2, 2]})


@pytest.mark.parametrize("op_type", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 6), (2, 2, 2, 3, 4)])
def test_global_pools_match_onnxruntime(op_type, shape):
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    g = _check_against_ort(op_type, x, {})
    assert g.outputs[0].shape == (*shape[:2], *(1,) * (len(shape) - 2))


@pytest.mark.parametrize("size,k,s,pads,ceil,expected", [
    (9, 2, 3, (0, 0), 1, 3),  # ceil would give 4, but the 4th window would start at 9, past the input
    (5, 4, 3, (0, 0), 1, 2),  # the second window starts inside and hangs over the end
    (5, 3, 3, (1, 1), 1, 2),  # the third would start on the right padding only
    (5, 3, 3, (1, 1), 0, 2),
    (7, 3, 2, (0, 0), 0, 3),
    (7, 3, 2, (0, 0), 1, 3),
    (8, 3, 2, (0, 0), 1, 4),
])
def test_ceil_mode_drops_a_window_starting_past_the_input(size, k, s, pads, ceil, expected):
    assert window_count(size, k, s, *pads, 1, bool(ceil)) == expected


def test_average_pool_partial_windows_by_hand():
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 5)
    ref = get_op("average_pool").reference
    kw = {"kernel_shape": (3,), "strides": (3,), "pads": (1, 1), "dilations": (1,), "ceil_mode": 1}
    # windows [pad, 0, 1] and [2, 3, 4]; padding counts only with count_include_pad
    np.testing.assert_allclose(ref(x, **kw, count_include_pad=0), [[[0.5, 3.0]]])
    np.testing.assert_allclose(ref(x, **kw, count_include_pad=1), [[[1 / 3, 3.0]]])
    # window [3, 4, past the end]: the overhang never counts
    kw = {**kw, "kernel_shape": (3,), "strides": (3,), "pads": (0, 0)}
    np.testing.assert_allclose(ref(x, **kw, count_include_pad=1), [[[1.0, 3.5]]])


@pytest.mark.parametrize("op,attrs,shape,message", [
    ("max_pool", {"kernel_shape": (2,)}, (1, 1, 4, 4), "kernel_shape .* must have 2 entries"),
    ("max_pool", {"kernel_shape": (5, 1)}, (1, 1, 4, 4), "window extent 5 exceeds"),
    ("max_pool", {"kernel_shape": (2, 2), "dilations": (3, 3)}, (1, 1, 3, 3), "window extent 4 exceeds"),
    ("average_pool", {"kernel_shape": (2, 2), "pads": (1, 1)}, (1, 1, 4, 4), "pads .* must have 4 entries"),
    ("average_pool", {"kernel_shape": (0, 2)}, (1, 1, 4, 4), "must all be >= 1"),
    ("average_pool", {"kernel_shape": (2,)}, (1, 4), "at least one spatial axis"),
    ("global_max_pool", {}, (3, 4), "at least one spatial axis"),
])
def test_pool_errors_name_what_was_expected(op, attrs, shape, message):
    with pytest.raises(ShapeError, match=message):
        get_op(op).type_check([TensorType(shape, DType.f32)], attrs)


def test_average_pool_refuses_integers():
    with pytest.raises(ShapeError, match="float"):
        get_op("average_pool").type_check([TensorType((1, 1, 4), DType.i32)], {"kernel_shape": (2,)})
