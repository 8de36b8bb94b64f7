"""conv and conv_transpose: inferred shapes and numpy references against onnxruntime on
hypothesis-chosen configurations (1-3 spatial axes, strides, pads, dilations, groups), ONNX's
implicit padding made explicit at import, and the errors bad shapes give."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import helper

from irc.errors import IRCError, ShapeError
from irc.frontend.onnx import import_onnx
from irc.ir import interpret
from irc.ir.builder import GraphBuilder
from irc.ir.ops import get_op
from irc.ir.types import DType, TensorType

RTOL, ATOL = 1e-4, 1e-5


def _model(op_type, inputs, attrs, opset=17):
    """A one-node model whose inputs are all graph inputs (i0, i1, ...), output rank like i0."""
    ins = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in enumerate(inputs)]
    node = helper.make_node(op_type, [f"i{k}" for k in range(len(inputs))], ["y"], **attrs)
    out = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(inputs[0].dtype),
                                        [f"d{i}" for i in range(inputs[0].ndim)])
    return helper.make_model(helper.make_graph([node], "t", ins, [out]), opset_imports=[helper.make_opsetid("", opset)])


def _ort(model, inputs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {f"i{k}": a for k, a in enumerate(inputs)})[0]


def _check_against_ort(op_type, inputs, attrs):
    """Import, check the inferred output type against what onnxruntime produces, then the values."""
    m = _model(op_type, inputs, attrs)
    want = _ort(m, inputs)
    g = import_onnx(m)
    assert g.outputs[0].type == TensorType(want.shape, DType.f32)
    got = interpret(g, inputs)[0]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    return g


@st.composite
def conv_configs(draw, transpose: bool):
    n = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 2, 3]))
    c_per, m_per = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    strides = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    dilations = draw(st.lists(st.integers(1, 2), min_size=n, max_size=n))
    pads = draw(st.lists(st.integers(0, 2), min_size=2 * n, max_size=2 * n))
    size = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    attrs = {"strides": strides, "dilations": dilations, "pads": pads, "group": group}
    if transpose:
        # onnxruntime requires output_padding < stride.
        attrs["output_padding"] = [draw(st.integers(0, s - 1)) for s in strides]
        assume(all(s * (i - 1) + op + (k - 1) * d + 1 - pads[a] - pads[n + a] >= 1
                   for a, (s, i, op, k, d) in enumerate(zip(strides, size, attrs["output_padding"], kernel, dilations))))
        w_shape = (group * c_per, m_per, *kernel)
    else:
        assume(all(i + pads[a] + pads[n + a] >= (k - 1) * d + 1 for a, (i, k, d) in enumerate(zip(size, kernel, dilations))))
        w_shape = (group * m_per, c_per, *kernel)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), group * c_per, *size)).astype(np.float32)
    inputs = [x, rng.standard_normal(w_shape).astype(np.float32)]
    if draw(st.booleans()):
        inputs.append(rng.standard_normal(group * m_per).astype(np.float32))
    return inputs, attrs


@settings(max_examples=80, deadline=None)
@given(conv_configs(transpose=False))
def test_conv_matches_onnxruntime(case):
    inputs, attrs = case
    g = _check_against_ort("Conv", inputs, attrs)
    assert g.nodes[0].op == "conv" and g.nodes[0].attrs["pads"] == tuple(attrs["pads"])


@settings(max_examples=80, deadline=None)
@given(conv_configs(transpose=True))
def test_conv_transpose_matches_onnxruntime(case):
    inputs, attrs = case
    _check_against_ort("ConvTranspose", inputs, attrs)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]), st.integers(1, 2), st.integers(1, 3),
       st.lists(st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=3),
       st.integers(0, 2**16))
def test_conv_auto_pad_is_made_explicit(auto_pad, cin, cout, axes, seed):
    # onnxruntime refuses dilations with SAME_*, so these use dilation 1.
    size, kernel, strides = zip(*axes)
    assume(auto_pad != "VALID" or all(i >= k for i, k in zip(size, kernel)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, cin, *size)).astype(np.float32)
    w = rng.standard_normal((cout, cin, *kernel)).astype(np.float32)
    g = _check_against_ort("Conv", [x, w], {"auto_pad": auto_pad, "strides": list(strides), "kernel_shape": list(kernel)})
    if auto_pad != "VALID":
        assert g.outputs[0].shape[2:] == tuple(-(-i // s) for i, s in zip(size, strides))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(-2, 2),
       st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER"]), st.integers(0, 2**16))
def test_conv_transpose_output_shape_is_made_explicit(size, kernel, stride, dilation, out_pad, extra, auto_pad, seed):
    out_pad = min(out_pad, stride - 1)
    full = stride * (size - 1) + out_pad + (kernel - 1) * dilation + 1
    # onnxruntime accepts output lengths up to the full length + (stride - 1 - output_padding).
    out_len = full + min(extra, stride - 1 - out_pad)
    assume(out_len >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2, size)).astype(np.float32)
    w = rng.standard_normal((2, 3, kernel)).astype(np.float32)
    attrs = {"strides": [stride], "dilations": [dilation], "output_padding": [out_pad], "output_shape": [out_len]}
    if auto_pad != "NOTSET":
        attrs["auto_pad"] = auto_pad
    g = _check_against_ort("ConvTranspose", [x, w], attrs)
    assert g.outputs[0].shape == (1, 3, out_len)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("size,stride", [(3, 2), (4, 2), (5, 3), (2, 1)])
def test_conv_transpose_same_padding_gives_input_times_stride(auto_pad, size, stride):
    rng = np.random.default_rng(size * stride)
    x = rng.standard_normal((1, 1, size, size)).astype(np.float32)
    w = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    g = _check_against_ort("ConvTranspose", [x, w], {"auto_pad": auto_pad, "strides": [stride, stride]})
    assert g.outputs[0].shape == (1, 2, size * stride, size * stride)


def test_conv_small_example_by_hand():
    b = GraphBuilder()
    x = b.input("x", (1, 1, 4))
    w = b.param("w", np.array([[[1.0, 10.0]]], np.float32))
    y = b.op("conv", x, w, b.param("b", np.array([0.5], np.float32)), strides=(2,), pads=(1, 0))
    out = interpret(b.build(y), [np.array([[[1, 2, 3, 4]]], np.float32)])[0]
    # windows [pad, 1], [2, 3]: 0*1 + 1*10 + .5, 2*1 + 3*10 + .5
    np.testing.assert_array_equal(out, [[[10.5, 32.5]]])


def test_depthwise_conv_is_per_channel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    w = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    ref = get_op("conv").reference
    attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}
    together = ref(x, w, group=4, **attrs)
    for c in range(4):
        alone = ref(x[:, c:c + 1], w[c:c + 1], group=1, **attrs)
        np.testing.assert_allclose(together[:, c:c + 1], alone, rtol=1e-6)


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x, w), y> == <x, conv_transpose(y, w)> for the same strides, pads and dilations.
    rng = np.random.default_rng(1)
    attrs = {"strides": (2, 3), "pads": (1, 0, 2, 1), "dilations": (2, 1), "group": 2}
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    y = get_op("conv").reference(x, w, **attrs)
    r = rng.standard_normal(y.shape)
    out_pad = tuple(xs - o for xs, o in zip(x.shape[2:], get_op("conv_transpose").infer(
        TensorType(y.shape, DType.f64), TensorType(w.shape, DType.f64), **attrs, output_padding=(0, 0)).shape[2:]))
    back = get_op("conv_transpose").reference(r, w, **attrs, output_padding=out_pad)
    assert back.shape == x.shape
    assert np.isclose(np.vdot(y, r), np.vdot(x, back), rtol=1e-10)


def test_half_precision_keeps_its_type():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    attrs = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
    out = get_op("conv").reference(x.astype(np.float16), w.astype(np.float16), **attrs)
    assert out.dtype == np.float16
    # float16 inputs and output each round by up to 2**-11 relative; 18-term sums of products ~ 1 in size.
    np.testing.assert_allclose(out, get_op("conv").reference(x, w, **attrs), rtol=1e-2, atol=1e-2)


def _types(*shapes):
    return [TensorType(s, DType.f32) for s in shapes]


@pytest.mark.parametrize("shapes,attrs,message", [
    ([(1, 4, 5, 5), (6, 3, 3, 3)], {"group": 2}, "2 group.*expected 2"),
    ([(1, 4, 5, 5), (6, 2, 3, 3)], {"group": 3}, "group 3 must divide"),
    ([(1, 4, 5, 5), (6, 4, 3, 3), (5,)], {}, r"bias .* must have shape \[6\]"),
    ([(1, 4, 2, 5), (6, 4, 3, 3)], {}, "kernel extent 3 exceeds"),
    ([(1, 4, 5, 5), (6, 4, 3, 3)], {"dilations": (3, 3)}, "kernel extent 7 exceeds"),
    ([(1, 4, 5, 5), (6, 4, 3, 3)], {"strides": (1, 1, 1)}, "strides .* must have 2 entries"),
    ([(1, 4, 5, 5), (6, 4, 3, 3)], {"pads": (1, 1)}, "pads .* must have 4 entries"),
    ([(1, 4, 5, 5), (6, 4, 3, 3)], {"strides": (0, 1)}, "must all be >= 1"),
    ([(4, 5), (6, 4, 3)], {}, "at least one spatial axis"),
    ([(1, 4, 5, 5), (6, 4, 3)], {}, "of rank 4"),
])
def test_conv_errors_name_what_was_expected(shapes, attrs, message):
    with pytest.raises(ShapeError, match=message):
        get_op("conv").type_check(_types(*shapes), attrs)


@pytest.mark.parametrize("shapes,attrs,message", [
    ([(1, 4, 5, 5), (3, 2, 3, 3)], {}, "must have 4 input channels first"),
    ([(1, 4, 5, 5), (4, 2, 3, 3)], {"group": 3}, "group 3 must divide"),
    ([(1, 4, 1, 1), (4, 2, 1, 1)], {"pads": (1, 0, 0, 0)}, "leave no output"),
    ([(1, 4, 5, 5), (4, 2, 3, 3)], {"output_padding": (1,)}, "output_padding .* must have 2 entries"),
    ([(1, 4, 5, 5), (4, 2, 3, 3), (3,)], {"group": 2}, r"bias .* must have shape \[4\]"),
])
def test_conv_transpose_errors_name_what_was_expected(shapes, attrs, message):
    with pytest.raises(ShapeError, match=message):
        get_op("conv_transpose").type_check(_types(*shapes), attrs)


def test_integer_conv_is_refused():
    with pytest.raises(ShapeError, match="float"):
        get_op("conv").type_check([TensorType((1, 1, 3), DType.i32), TensorType((1, 1, 1), DType.i32)], {})


def test_onnx_channel_mismatch_is_reported_at_the_node():
    x = np.zeros((1, 3, 5, 5), np.float32)
    w = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(IRCError, match=r"node 'y' \(conv\).*expected 3"):
        import_onnx(_model("Conv", [x, w], {}))
