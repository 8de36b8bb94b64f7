"""Layer mapping: every supported layer kind becomes its block; every unsupported one is refused
in ONE error that names each layer with its usual replacement."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from irc.errors import UnsupportedOpError
from irc.ir.builder import GraphBuilder
from irc.passes.pipeline import run_pipeline
from irc.targets.dneuro.layers import Shape
from irc.targets.dneuro.mapping import map_graph, map_onnx, unsupported

from .support import PREPARE, float_graph, quantized_graph

RNG = np.random.default_rng(0)


def _w(*shape):
    return (RNG.standard_normal(shape) * 0.2).astype(np.float32)


def _net(build, shape=(1, 4, 8, 8)):
    """A float graph: input -> build(b, x) -> output."""
    b = GraphBuilder("t")
    x = b.input("x", shape)
    return run_pipeline(b.build(build(b, x)), PREPARE)


def _blocks(g):
    lg = map_graph(g)
    return [(ly.kind, ly.shape) for ly in lg.layers[1:]], lg


def test_conv_strided_padded_and_relu_folded():
    blocks, lg = _blocks(_net(lambda b, x: b.op("relu", b.op("conv", x, b.param("w", _w(6, 4, 3, 3)),
                                                          strides=(2, 2), pads=(1, 1, 1, 1)))))
    assert blocks == [("conv", Shape(6, 4, 4))]
    conv = lg.layers[1]
    assert conv.attrs["stride"] == (2, 2) and conv.attrs["pads"] == (1, 1, 1, 1) and conv.attrs["activation"] == "relu"


def test_grouped_and_depthwise_conv_keep_their_groups():
    g = _net(lambda b, x: b.op("conv", b.op("conv", x, b.param("w", _w(8, 2, 3, 3)), group=2, pads=(1,) * 4),
                               b.param("w", _w(8, 1, 3, 3)), group=8, pads=(1,) * 4))
    blocks, lg = _blocks(g)
    assert [ly.attrs["group"] for ly in lg.layers[1:]] == [2, 8]
    assert blocks == [("conv", Shape(8, 8, 8)), ("conv", Shape(8, 8, 8))]


def test_pad_is_merged_into_the_next_conv():
    g = _net(lambda b, x: b.op("conv", b.op("pad", x, pads=(0, 0, 2, 1, 0, 0, 0, 3)), b.param("w", _w(2, 4, 3, 3))))
    blocks, lg = _blocks(g)
    assert blocks == [("conv", Shape(2, 8, 10))] and lg.layers[1].attrs["pads"] == (2, 1, 0, 3)


def test_batchnorm_after_conv_is_merged_elsewhere_refused():
    def bn(b, x):
        return b.op("batch_norm", x, *(b.param(n, np.abs(_w(4)) + 0.5) for n in ("g", "b", "m", "v")))

    blocks, lg = _blocks(_net(lambda b, x: bn(b, b.op("conv", x, b.param("w", _w(4, 4, 1, 1))))))
    assert blocks == [("conv", Shape(4, 8, 8))] and len(lg.layers[1].nodes) == 2
    with pytest.raises(UnsupportedOpError, match="BatchNormalization directly after a Conv"):
        map_graph(_net(lambda b, x: bn(b, b.op("max_pool", x, kernel_shape=(2, 2), strides=(2, 2)))))


def test_fc_is_a_conv_over_the_whole_frame():
    def f(b, x):
        flat = b.op("reshape", b.op("max_pool", x, kernel_shape=(2, 2), strides=(2, 2)), shape=(1, 64))
        return b.op("gemm", flat, b.param("w", _w(10, 64)), b.param("c", _w(10)), trans_b=1)

    blocks, lg = _blocks(_net(f))
    assert blocks == [("maxpool", Shape(4, 4, 4)), ("conv", Shape(10, 1, 1))]
    assert lg.layers[2].attrs["kernel"] == (4, 4) and lg.layers[2].attrs["source"] == "fc"


def test_pools_eltwise_concat_resize_sigmoid_and_softmax():
    blocks, lg = _blocks(float_graph("mixed"))
    kinds = [k for k, _ in blocks]
    assert kinds == ["conv", "conv", "maxpool", "concat", "conv", "lut", "upsample", "conv", "conv", "conv", "argmax"]
    assert blocks[6] == ("upsample", Shape(8, 16, 16)) and lg.layers[-3].attrs["source"] == "global_average_pool"
    g = _net(lambda b, x: b.op("relu", b.op("add", x, b.op("global_max_pool", x))), shape=(1, 4, 1, 1))
    assert [k for k, _ in _blocks(g)[0]] == ["maxpool", "eltwise"]


def test_quantized_graphs_carry_integer_parameters():
    lg = map_graph(quantized_graph("small_resnet"))
    assert lg.quantized and lg.host["input_scale"] > 0
    convs = [ly for ly in lg if ly.kind == "conv"]
    assert all(ly.arrays["weight"].dtype == np.int8 and ly.arrays["multiplier"].dtype == np.int32 for ly in convs)
    assert [ly.kind for ly in lg].count("eltwise") == 3
    mixed = map_graph(quantized_graph("mixed"))
    assert {"lut", "concat", "upsample", "argmax"} <= {ly.kind for ly in mixed}
    assert all(ly.arrays["table"].shape == (256,) for ly in mixed if ly.kind == "lut")


def test_float_layer_graph_has_no_integer_parameters():
    lg = map_graph(float_graph("lenet5"))
    assert not lg.quantized and lg.output.kind == "conv"


def _onnx_model(nodes, inits, out_shape=(1, 4, 8, 8)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))
    g = helper.make_graph(nodes, "bad", [x], [y], [numpy_helper.from_array(a, n) for n, a in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_every_unsupported_layer_in_one_error_with_its_replacement():
    nodes = [helper.make_node("LRN", ["x"], ["a"], name="norm1", size=3),
             helper.make_node("Tanh", ["a"], ["b"], name="act1"),
             helper.make_node("Softplus", ["b"], ["c"], name="act2"),
             helper.make_node("ConvTranspose", ["c", "wt"], ["d"], name="up1", strides=[1, 1]),
             helper.make_node("AveragePool", ["d"], ["e"], name="pool1", kernel_shape=[2, 2], strides=[1, 1],
                              pads=[0, 0, 1, 1]),
             helper.make_node("Conv", ["e", "w"], ["y"], name="conv1")]
    model = _onnx_model(nodes, {"wt": _w(4, 4, 1, 1), "w": _w(4, 4, 1, 1)})
    with pytest.raises(UnsupportedOpError) as e:
        map_onnx(model, {"x": (1, 4, 8, 8)})
    msg = str(e.value)
    assert msg.startswith("5 layer(s) have no DNeuro block")
    for name, rep in [("norm1", "BatchNormalization"), ("act1", "clipped ReLU"), ("act2", "ReLU"),
                      ("up1", "nearest Resize"), ("pool1", "MaxPool")]:
        assert f"'{name}'" in msg and rep in msg.split(f"'{name}'")[1].split(";")[0]
    assert "then retrain" in msg and "conv1" not in msg


def test_layers_irc_cannot_import_are_refused_with_the_others():
    nodes = [helper.make_node("MaxUnpool", ["x", "idx"], ["a"], name="unpool", kernel_shape=[1, 1]),
             helper.make_node("Tanh", ["a"], ["y"], name="t")]
    model = _onnx_model(nodes, {"idx": np.zeros((1, 4, 8, 8), np.int64)})
    with pytest.raises(UnsupportedOpError, match=r"2 layer\(s\).*'unpool' \(MaxUnpool\) -> a nearest Resize.*'t' \(Tanh\)"):
        map_onnx(model, {"x": (1, 4, 8, 8)})


def test_structural_refusals_name_the_reason():
    g = _net(lambda b, x: b.op("softmax", b.op("conv", x, b.param("w", _w(4, 4, 3, 3)), dilations=(2, 2)), axis=1))
    refusals = unsupported(g)
    assert [r.op for r in refusals] == ["conv", "softmax"]
    assert "dilations" in refusals[0].why and "undilated" in refusals[0].replacement
    g = _net(lambda b, x: b.op("resize", x, mode="linear", scales=(1.0, 1.0, 2.0, 2.0)))
    assert "nearest Resize by whole factors" in str(unsupported(g)[0])
    with pytest.raises(UnsupportedOpError, match="one image input"):
        b = GraphBuilder("two")
        b2 = b.op("add", b.input("a", (1, 2, 2, 2)), b.input("c", (1, 2, 2, 2)))
        map_graph(b.build(b2))


def test_layer_graph_json_round_trips_the_structure():
    import json

    lg = map_graph(quantized_graph("lenet5"))
    d = json.loads(lg.to_json({ly.name: (1, 1) for ly in lg}))
    assert [e["kind"] for e in d["layers"]] == [ly.kind for ly in lg]
    conv = d["layers"][1]
    assert conv["tables"]["weight"] == {"dtype": "int8", "shape": [6, 1, 5, 5]} and conv["parallelism"] == {"pi": 1, "po": 1}
    assert onnx  # the module is used above for model building
