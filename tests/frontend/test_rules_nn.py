"""ONNX rules of the neural-network ops: export round trips through onnxruntime, what import makes
explicit, the variants refused and why, and the ONNX conformance cases that need their
first output of LayerNormalization to run in irc."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from irc.errors import IRCError, ModelError, UnsupportedOpError
from irc.frontend.onnx import export_onnx, import_onnx
from irc.frontend.onnx.importer import _Importer
from irc.ir import interpret
from irc.ir.builder import GraphBuilder
from tests.onnx_cases import all_cases, excluded

RNG = np.random.default_rng(0)


def _f32(*shape, low=None):
    a = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(a) + low if low is not None else a


def _model(op_type, inputs, attrs=None, *, consts=None, opset=17, out_rank=None, n_outputs=1):
    """One node. ``inputs`` become graph inputs i0, i1...; ``consts`` (name -> array, or None for
    an omitted input) follow them as initializers, in order."""
    ins = [helper.make_tensor_value_info(f"i{k}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for k, a in enumerate(inputs)]
    names = [f"i{k}" for k in range(len(inputs))]
    inits = []
    for name, value in (consts or {}).items():
        names.append(name if value is not None else "")
        if value is not None:
            inits.append(numpy_helper.from_array(value, name))
    outs = ["y"] + [f"y{k}" for k in range(1, n_outputs)]
    node = helper.make_node(op_type, names, outs, **(attrs or {}))
    rank = out_rank if out_rank is not None else inputs[0].ndim
    out_vis = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(inputs[0].dtype),
                                             [f"d{i}" for i in range(rank)]) for o in outs]
    g = helper.make_graph([node], "t", ins, out_vis, initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model, inputs):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), inputs)})


ROUND_TRIPS = {
    "gemm": ("Gemm", [_f32(3, 4), _f32(5, 4)], {"transB": 1, "alpha": 0.5, "beta": 2.0}, {"c": _f32(5)}),
    "matmul": ("MatMul", [_f32(2, 3, 4), _f32(4, 5)], {}, {}),
    "conv": ("Conv", [_f32(1, 4, 7, 6)], {"group": 2, "strides": [2, 1], "pads": [1, 0, 0, 2], "dilations": [1, 2]},
             {"w": _f32(6, 2, 3, 2), "b": _f32(6)}),
    "conv_same": ("Conv", [_f32(1, 2, 7)], {"auto_pad": "SAME_LOWER", "strides": [2]}, {"w": _f32(3, 2, 4)}),
    "conv_transpose": ("ConvTranspose", [_f32(1, 4, 3, 5)],
                       {"group": 2, "strides": [2, 3], "output_padding": [1, 2], "pads": [1, 0, 0, 1]},
                       {"w": _f32(4, 3, 3, 2)}),
    "conv_transpose_shape": ("ConvTranspose", [_f32(1, 2, 4)], {"strides": [2], "output_shape": [9]},
                             {"w": _f32(2, 1, 3)}),
    "max_pool": ("MaxPool", [_f32(2, 3, 7, 8)],
                 {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1], "ceil_mode": 1, "dilations": [1, 2]},
                 {}),
    "average_pool": ("AveragePool", [_f32(1, 2, 7, 5)],
                     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1,
                      "ceil_mode": 1}, {}),
    "global_average_pool": ("GlobalAveragePool", [_f32(2, 3, 4, 5)], {}, {}),
    "global_max_pool": ("GlobalMaxPool", [_f32(2, 3, 4)], {}, {}),
    "batch_norm": ("BatchNormalization", [_f32(2, 3, 4, 4)], {"epsilon": 1e-3},
                   {"s": _f32(3), "b": _f32(3), "m": _f32(3), "v": _f32(3, low=0.5)}),
    "instance_norm": ("InstanceNormalization", [_f32(2, 3, 5)], {"epsilon": 1e-4}, {"s": _f32(3), "b": _f32(3)}),
    "layer_norm": ("LayerNormalization", [_f32(2, 3, 4)], {"axis": -2}, {"s": _f32(3, 4), "b": _f32(4)}),
    "layer_norm_no_bias": ("LayerNormalization", [_f32(2, 6)], {}, {"s": _f32(6)}),
    "lrn": ("LRN", [_f32(1, 5, 3, 3)], {"size": 3, "alpha": 0.01, "beta": 0.5, "bias": 2.0}, {}),
    "softmax": ("Softmax", [_f32(2, 3, 4)], {"axis": 1}, {}),
    "log_softmax": ("LogSoftmax", [_f32(2, 3, 4)], {}, {}),
    "resize_nearest_scales": ("Resize", [_f32(1, 2, 3, 4)], {"nearest_mode": "floor", "mode": "nearest",
                                                            "coordinate_transformation_mode": "asymmetric"},
                              {"roi": None, "scales": np.array([1, 1, 1.7, 0.6], np.float32)}),
    "resize_linear_sizes": ("Resize", [_f32(1, 2, 3, 4)], {"mode": "linear"},
                            {"roi": None, "scales": None, "sizes": np.array([1, 2, 7, 3], np.int64)}),
    "resize_half_pixel_symmetric": ("Resize", [_f32(1, 1, 4, 4)],
                                    {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
                                    {"roi": None, "scales": np.array([1, 1, 2, 0.5], np.float32)}),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_export_round_trip_matches_onnxruntime(name):
    op_type, inputs, attrs, consts = ROUND_TRIPS[name]
    opset = 19 if op_type == "Resize" else 17
    model = _model(op_type, inputs, attrs, consts=consts, opset=opset)
    want = _ort(model, inputs)[0]
    g = import_onnx(model)
    exported = export_onnx(g)
    assert exported.opset_import[0].version == 17
    got = _ort(exported, inputs)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(interpret(g, inputs)[0], want, rtol=1e-4, atol=1e-5)


def test_import_makes_padding_explicit():
    model = _model("Conv", [_f32(1, 2, 7, 8)], {"auto_pad": "SAME_UPPER", "strides": [2, 3], "kernel_shape": [3, 4]},
                   consts={"w": _f32(3, 2, 3, 4)})
    node = import_onnx(model).nodes[0]
    # out = ceil(7/2) = 4, ceil(8/3) = 3; total pads (4-1)*2+3-7 = 2 and (3-1)*3+4-8 = 2, odd half at the end
    assert node.attrs == {"strides": (2, 3), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    model = _model("ConvTranspose", [_f32(1, 2, 4)], {"strides": [2], "output_shape": [10]}, consts={"w": _f32(2, 1, 3)})
    node = import_onnx(model).nodes[0]
    # full length 2*3 + 3 = 9: one more output, added as output_padding
    assert node.attrs["pads"] == (0, 0) and node.attrs["output_padding"] == (1,)


@pytest.mark.parametrize("attrs,pads", [
    # The ONNX spec pads for the dilated kernel: ceil(10/2) = 5 windows of extent 5 need (5-1)*2+5-10 = 3.
    ({"auto_pad": "SAME_UPPER", "kernel_shape": [3], "strides": [2], "dilations": [2]}, (1, 2)),
    ({"auto_pad": "SAME_LOWER", "kernel_shape": [3], "strides": [2], "dilations": [2]}, (2, 1)),
    # Strides longer than the kernel would need negative padding: none is added.
    ({"auto_pad": "SAME_UPPER", "kernel_shape": [1], "strides": [3]}, (0, 0)),
    ({"auto_pad": "VALID", "kernel_shape": [3], "strides": [2]}, (0, 0)),
])
def test_pool_auto_pad_follows_the_onnx_spec(attrs, pads):
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    g = import_onnx(_model("MaxPool", [x], attrs))
    assert g.nodes[0].attrs["pads"] == pads
    if attrs["auto_pad"] != "VALID":
        assert g.outputs[0].shape == (1, 1, 4 if attrs["strides"] == [3] else 5)


def test_batch_norm_statistics_are_cast_to_the_input_type():
    x = _f32(1, 2, 3).astype(np.float16)
    consts = {"s": _f32(2), "b": _f32(2), "m": _f32(2), "v": _f32(2, low=0.5)}
    model = _model("BatchNormalization", [x], {}, consts=consts, opset=15)
    g = import_onnx(model)
    assert g.nodes[-1].op == "batch_norm" and all(v.dtype == g.inputs[0].dtype for v in g.nodes[-1].inputs)
    # float16 output: one rounding step is 2**-11 relative (about 5e-4).
    np.testing.assert_allclose(interpret(g, [x])[0], _ort(model, [x])[0], rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("op_type,inputs,attrs,consts,error,message", [
    ("BatchNormalization", [_f32(2, 3)], {"training_mode": 1},
     {"s": _f32(3), "b": _f32(3), "m": _f32(3), "v": _f32(3)}, UnsupportedOpError, "training_mode=1"),
    ("Resize", [_f32(1, 1, 2, 2)], {"mode": "cubic"}, {"roi": None, "scales": np.array([1, 1, 2, 2], np.float32)},
     UnsupportedOpError, "mode 'cubic' is not supported"),
    ("Resize", [_f32(1, 1, 2, 2)], {"coordinate_transformation_mode": "tf_crop_and_resize"},
     {"roi": np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32), "scales": np.array([1, 1, 2, 2], np.float32)},
     UnsupportedOpError, "tf_crop_and_resize"),
    ("Resize", [_f32(1, 1, 4, 4)], {"mode": "linear", "antialias": 1},
     {"roi": None, "scales": np.array([1, 1, 0.5, 0.5], np.float32)}, UnsupportedOpError, "antialias"),
    ("Resize", [_f32(1, 1, 4, 4)], {}, {"roi": None, "scales": np.array([1, 1, 2, 2], np.float32),
                                        "sizes": np.array([1, 1, 8, 8], np.int64)}, ModelError, "exactly one of"),
    ("Resize", [_f32(1, 1, 4, 4)], {"axes": [2, 3]}, {"roi": None, "scales": np.array([1, 1, 2, 2], np.float32)},
     ModelError, "one entry per axis in"),
    ("Conv", [_f32(1, 2, 5)], {"kernel_shape": [2]}, {"w": _f32(3, 2, 3)}, ModelError, "does not match the weights"),
    ("Conv", [_f32(1, 2, 5)], {"auto_pad": "VALID", "pads": [1, 1]}, {"w": _f32(3, 2, 3)}, ModelError,
     "cannot both be given"),
    ("MaxPool", [_f32(1, 2, 5)], {}, {}, ModelError, "attribute 'kernel_shape' is"),
])
def test_refused_variants_say_why(op_type, inputs, attrs, consts, error, message):
    opset = 19 if op_type == "Resize" else 17
    with pytest.raises(error, match=message):
        import_onnx(_model(op_type, inputs, attrs, consts=consts, opset=opset))


def test_resize_scales_must_be_constant():
    model = _model("Resize", [_f32(1, 1, 2, 2), np.zeros(0, np.float32), np.array([1, 1, 2, 2], np.float32)])
    with pytest.raises(UnsupportedOpError, match="'scales' must be a constant"):
        import_onnx(model)


def test_antialias_is_accepted_where_it_changes_nothing():
    # Upsampling: antialiased linear weights equal the plain ones.
    x = _f32(1, 1, 3, 3)
    model = _model("Resize", [x], {"mode": "linear", "antialias": 1},
                   consts={"roi": None, "scales": np.array([1, 1, 2, 1.5], np.float32)}, opset=19)
    np.testing.assert_allclose(interpret(import_onnx(model), [x])[0], _ort(model, [x])[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op_type,attrs,consts,n_outputs", [
    ("MaxPool", {"kernel_shape": [2]}, {}, 2),
    ("LayerNormalization", {}, {"s": _f32(5)}, 3),
])
def test_extra_outputs_are_refused_when_read(op_type, attrs, consts, n_outputs):
    model = _model(op_type, [_f32(1, 2, 5)], attrs, consts=consts, n_outputs=n_outputs)
    with pytest.raises(UnsupportedOpError, match="output 1 .* is not supported"):
        import_onnx(model)
    del model.graph.output[1:]
    x = _f32(1, 2, 5)
    np.testing.assert_allclose(interpret(import_onnx(model), [x])[0], _ort(model, [x])[0], rtol=1e-4, atol=1e-5)


def _graph_of(op, x_shape, *params, **attrs):
    b = GraphBuilder()
    x = b.input("x", x_shape)
    y = b.op(op, x, *(b.param(f"p{i}", p) for i, p in enumerate(params)), **attrs)
    return b.build(y)


@pytest.mark.parametrize("graph,message", [
    (lambda: _graph_of("gemm", (2, 3), _f32(3, 4), act="relu"), "epilogue activation 'relu' has no ONNX Gemm form"),
    (lambda: _graph_of("average_pool", (1, 1, 6), kernel_shape=(2,), dilations=(2,)), "needs ONNX opset 19"),
    (lambda: _graph_of("resize", (1, 1, 3), mode="nearest", coordinate_transformation_mode="half_pixel_symmetric",
                       scales=(1.0, 1.0, 1.7)), "half_pixel_symmetric"),
    (lambda: _graph_of("resize", (1, 1, 3), coordinate_transformation_mode="tf_half_pixel_for_nearest",
                       scales=(1.0, 1.0, 2.0)), "tf_half_pixel_for_nearest"),
    (lambda: _graph_of("resize", (1, 1, 6), sizes=(1, 1, 5), scales=(1.0, 1.0, 0.9)), "cannot be written"),
])
def test_export_refuses_what_opset_17_cannot_say(graph, message):
    with pytest.raises(UnsupportedOpError, match=message) as e:
        export_onnx(graph())
    assert e.value.node is not None


def test_upsample_reaching_import_is_an_asymmetric_floor_resize():
    # Models older than opset 13 are converted (Upsample becomes Resize); a node that still
    # arrives is read with Upsample's own semantics: out[i] = in[floor(i / scale)].
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", 1, x.shape)],
                          [helper.make_tensor_value_info("y", 1, [1, 1, 4, 7])],
                          initializer=[numpy_helper.from_array(np.array([1, 1, 2, 2.5], np.float32), "scales")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    graph = _Importer(model, {}, None).run()
    (n,) = graph.nodes
    assert n.op == "resize" and n.attrs["coordinate_transformation_mode"] == "asymmetric"
    want = x[:, :, [0, 0, 1, 1]][..., [0, 0, 0, 1, 1, 2, 2]]
    np.testing.assert_array_equal(interpret(graph, [x])[0], want)


# ----------------------------------------------------------------------------------------
# Conformance cases irc's report excludes because they read LayerNormalization's statistics
# outputs, run here on the first output.


def _expected(case):
    return [numpy_helper.to_array(e) if isinstance(e, onnx.TensorProto) else e for e in case.data_sets[0][1]]


LAYER_NORM = [c for c in all_cases() if "Mean/InvStdDev" in excluded().get(c.name, "")]


def test_the_excluded_cases_are_found():
    assert len(LAYER_NORM) >= 19


@pytest.mark.parametrize("case", LAYER_NORM, ids=lambda c: c.name)
def test_layer_norm_conformance_on_its_first_output(case):
    model = copy.deepcopy(case.model)
    del model.graph.output[1:]
    inputs = [numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else a for a in case.data_sets[0][0]]
    got = interpret(import_onnx(model), inputs)[0]
    np.testing.assert_allclose(got, _expected(case)[0], rtol=case.rtol, atol=case.atol)


def test_errors_are_located_at_the_onnx_node():
    model = _model("Gemm", [_f32(2, 3), _f32(4, 5)])
    with pytest.raises(IRCError, match=r"node 'y' \(gemm\): inner dimensions differ"):
        import_onnx(model)
